#!/usr/bin/env bash
# The README's test command: installs everything the tests need on a fresh machine
# (Python and pip are enough to start), then runs the whole suite, linters included.
#   bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
venv=${OFFLOAD_VENV:-$root/.venv}

# Ruby runs the rb> tests (Debian's package; the machine may not have it yet).
if ! command -v ruby >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ruby >/dev/null
  else
    echo "ruby is missing and cannot be installed here (needs apt-get as root)" >&2
  fi
fi

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
py="$venv/bin/python"
# Every distribution of the workspace, editable, plus what the tests use.
dists=(-e core -e plugins/local -e examples/offload-nice)
for d in plugins/s3 plugins/gcs plugins/docker plugins/ecs plugins/kubernetes; do
  [ -f "$d/pyproject.toml" ] && dists+=(-e "$d")
done
"$py" -m pip install --quiet --disable-pip-version-check "${dists[@]}" -r requirements-test.txt

# The Docker Engine and the offline base image, when the Docker backend is in the tree.
# Stop at the end only an engine that this run started (setup_docker.sh leaves a marker
# with the pid of the dockerd it started; an engine someone else started is left alone).
if [ -f scripts/setup_docker.sh ]; then
  marker="${OFFLOAD_DOCKER_STATE:-/var/run/offload-docker}/started-by-setup"
  before=$(cat "$marker" 2>/dev/null || true)
  bash scripts/setup_docker.sh
  after=$(cat "$marker" 2>/dev/null || true)
  if [ -n "$after" ] && [ "$after" != "$before" ]; then
    trap 'bash scripts/stop_docker.sh || true' EXIT
  fi
fi

# kube-apiserver, kube-controller-manager and kube-scheduler for the Kubernetes tests' own
# control plane: built once into a cache outside the repository, then only checked.
if [ -f scripts/setup_kubernetes.sh ]; then
  bash scripts/setup_kubernetes.sh
fi

# Headless Chromium (Debian's package) for the tests that look at `offload report`'s page.
if [ -f scripts/setup_chromium.sh ]; then
  bash scripts/setup_chromium.sh
fi

echo "== ruff"; "$venv/bin/ruff" check .
echo "== mypy"; "$venv/bin/mypy"
echo "== pytest"
set +e
"$py" -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$status"
