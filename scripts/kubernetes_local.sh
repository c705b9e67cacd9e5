#!/usr/bin/env bash
# A local Kubernetes cluster for trying the Kubernetes backend by hand: the tests' own control
# plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler v1.20.2 on 127.0.0.1)
# and their fake kubelet (node `fake-node`, pods run as Docker containers of the offline test
# image), in the background.
#   bash scripts/kubernetes_local.sh up [--runtime process] [--namespace NS]
#                                        # start; print the offload config to use
#   bash scripts/kubernetes_local.sh status
#   bash scripts/kubernetes_local.sh down  # stop every process it started, by pid
# `up` first runs scripts/setup_kubernetes.sh (builds the binaries once, ~10 min; then 0.1 s)
# and scripts/setup_docker.sh (starts an engine if none answers). State (pids, kubeconfig,
# logs): ${OFFLOAD_KUBE_STATE:-/tmp/offload-kubernetes}. Needs the venv of scripts/test.sh
# (the `kubernetes`, `cryptography` and `docker` packages): OFFLOAD_VENV, default ./.venv.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${OFFLOAD_VENV:-$(pwd)/.venv}
py="$venv/bin/python"

usage() { echo "usage: bash scripts/kubernetes_local.sh up|down|status [options]" >&2; exit 2; }
[ $# -ge 1 ] || usage
case "$1" in
  up)
    bash scripts/setup_kubernetes.sh >&2  # stdout is the config, for: up > offload.yml
    runtime=docker
    for arg in "$@"; do
      case "$arg" in --runtime=process) runtime=process ;; process) runtime=process ;; esac
    done
    if [ "$runtime" = docker ]; then
      bash scripts/setup_docker.sh >&2
    fi
    ;;
  down|status) ;;
  *) usage ;;
esac

if ! "$py" -c 'import kubernetes, cryptography, docker' 2>/dev/null; then
  echo "kubernetes_local: $py lacks the test packages; run: $py -m pip install -r requirements-test.txt (or bash scripts/test.sh)" >&2
  exit 1
fi
PYTHONPATH="$(pwd)/tests/kubernetes${PYTHONPATH:+:$PYTHONPATH}" exec "$py" -m k8s_harness "$@"
