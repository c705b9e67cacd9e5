#!/usr/bin/env bash
# Make a Docker Engine answer and the offline test base image exist; idempotent.
#
#  1. installs docker.io and debootstrap (Debian, as root) when they are missing;
#  2. starts `dockerd --bridge=none --iptables=false` in the background when no engine
#     answers (overlay2 first, vfs when overlay2 cannot run here), and records that it
#     did, so that scripts/stop_docker.sh stops only an engine this script started;
#  3. builds `offload-test-base:bookworm` (debootstrap minbase with python3, ruby, curl,
#     then `docker import`) when it is absent. It never pulls from a registry.
#
# Environment: OFFLOAD_TEST_IMAGE (default offload-test-base:bookworm),
# OFFLOAD_DOCKER_STATE (default /var/run/offload-docker: pidfile, log, marker).
set -euo pipefail

IMAGE="${OFFLOAD_TEST_IMAGE:-offload-test-base:bookworm}"
STATE="${OFFLOAD_DOCKER_STATE:-/var/run/offload-docker}"
PIDFILE="$STATE/dockerd.pid"
LOG="$STATE/dockerd.log"
MARKER="$STATE/started-by-setup"
# dockerd may take a minute or more to start when it cleans up after many containers.
WAIT_SECONDS="${OFFLOAD_DOCKER_WAIT:-300}"

say() { printf 'setup_docker: %s\n' "$*" >&2; }

engine_answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

need_root() {
    if [ "$(id -u)" != 0 ]; then
        say "$1 needs root; run this script as root or start a Docker Engine yourself"
        exit 1
    fi
}

install_packages() {
    local missing=()
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    command -v docker >/dev/null 2>&1 || missing+=(docker.io)
    if [ "${#missing[@]}" -gt 0 ]; then
        need_root "installing ${missing[*]}"
        say "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

wait_for_engine() {
    local pid="$1" i
    for ((i = 0; i < WAIT_SECONDS * 4; i++)); do
        engine_answers && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.25
    done
    return 1
}

start_engine() {
    local driver="$1"
    mkdir -p "$STATE"
    say "starting dockerd (storage driver $driver), log in $LOG"
    # setsid: the engine outlives this script and the shell that ran it.
    setsid dockerd --bridge=none --iptables=false --ip-masq=false --storage-driver="$driver" \
        --pidfile="$PIDFILE" >>"$LOG" 2>&1 </dev/null &
    local pid=$!
    if wait_for_engine "$pid"; then
        echo "$pid" >"$MARKER"
        return 0
    fi
    say "dockerd with $driver did not answer; last lines of $LOG:"
    tail -n 5 "$LOG" >&2 || true
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
    return 1
}

ensure_engine() {
    if engine_answers; then
        return 0
    fi
    need_root "starting dockerd"
    if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        say "dockerd $(cat "$PIDFILE") is running but does not answer; waiting"
        wait_for_engine "$(cat "$PIDFILE")" && return 0
        say "it still does not answer: see $LOG"
        exit 1
    fi
    start_engine overlay2 || start_engine vfs || {
        say "no Docker Engine could be started here; see $LOG"
        exit 1
    }
}

ensure_image() {
    if docker image inspect "$IMAGE" >/dev/null 2>&1; then
        say "image $IMAGE present"
        return 0
    fi
    need_root "debootstrap"
    local dir
    dir="$(mktemp -d /var/tmp/offload-rootfs.XXXXXX)"
    trap 'rm -rf "$dir"' RETURN
    say "building $IMAGE with debootstrap (a few minutes, once)"
    debootstrap --variant=minbase --include=python3,ruby,curl,ca-certificates \
        bookworm "$dir" >"$STATE/debootstrap.log" 2>&1 || {
        say "debootstrap failed; last lines of $STATE/debootstrap.log:"
        tail -n 20 "$STATE/debootstrap.log" >&2
        exit 1
    }
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    tar -C "$dir" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/sh"]' - "$IMAGE" >/dev/null
    say "image $IMAGE built"
}

mkdir -p "$STATE"
install_packages
ensure_engine
say "engine $(docker version --format '{{.Server.Version}}') answers"
ensure_image
