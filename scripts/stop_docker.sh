#!/usr/bin/env bash
# Stop the Docker Engine that scripts/setup_docker.sh started, and nothing else.
set -euo pipefail

STATE="${OFFLOAD_DOCKER_STATE:-/var/run/offload-docker}"
MARKER="$STATE/started-by-setup"

say() { printf 'stop_docker: %s\n' "$*" >&2; }

if [ ! -f "$MARKER" ]; then
    say "no engine started by setup_docker.sh; nothing to stop"
    exit 0
fi
pid="$(cat "$MARKER")"
if ! kill -0 "$pid" 2>/dev/null; then
    say "dockerd $pid is not running any more"
    rm -f "$MARKER"
    exit 0
fi
say "stopping dockerd $pid"
kill -TERM "$pid"
for _ in $(seq 120); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$MARKER"; say "stopped"; exit 0; }
    sleep 0.25
done
say "dockerd $pid did not stop in 30 s; killing it"
kill -KILL "$pid" 2>/dev/null || true
rm -f "$MARKER"
