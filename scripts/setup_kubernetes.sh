#!/usr/bin/env bash
# Make kube-apiserver, kube-controller-manager and kube-scheduler v1.20.2 exist in a cache
# outside the repository, and etcd on PATH, for the tests' own control plane; idempotent.
#
# When the cache already holds the three binaries and kube-apiserver reports v1.20.2, this
# only prints where they are. Otherwise (Debian, as root, about 10 minutes on 2 cores):
#  1. installs golang-go, etcd-server, golang-github-modern-go-reflect2-dev, make, rsync and
#     openssl with apt-get when they are missing (no service is started: a temporary
#     policy-rc.d forbids it when the machine has none);
#  2. downloads Debian bookworm's source package `kubernetes` (1.20.5+really1.20.2) from the
#     machine's own Debian mirror with a private sources list and lists directory, so the
#     machine's apt configuration is left alone; the orig tarball is kept in the cache;
#  3. swaps the vendored reflect2 1.0.1 for Debian's 1.0.2 (1.0.1 makes the apiserver die
#     with `fatal error: fault` under Go >= 1.18) and builds with the tree's own `make`,
#     keeping the Go build cache in the cache directory;
#  4. moves the binaries into the cache and removes the build tree.
# It never starts etcd or any other long-running process; the tests start their own.
# See ../shared/reference/KUBERNETES-TEST-CLUSTER.md (beside the repository) for the recipe.
#
# Environment: OFFLOAD_K8S_CACHE (default /var/cache/offload/kubernetes-1.20.2; binaries
# in its bin/, logs in its logs/), OFFLOAD_K8S_MIRROR (default: the Debian mirror named in
# /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list).
# The step functions run through run_step and cleanup through trap, not by name:
# shellcheck disable=SC2317,SC2329
set -euo pipefail

VERSION=v1.20.2
SUITE=bookworm
SRC_PACKAGE=kubernetes
ORIG_TARBALL=kubernetes_1.20.5+really1.20.2.orig.tar.gz
TREE=kubernetes-1.20.2
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler)
PACKAGES=(golang-go etcd-server golang-github-modern-go-reflect2-dev make rsync openssl)
REFLECT2=/usr/share/gocode/src/github.com/modern-go/reflect2
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

CACHE="${OFFLOAD_K8S_CACHE:-/var/cache/offload/kubernetes-1.20.2}"
BIN="$CACHE/bin"
LOGS="$CACHE/logs"
SRC="$CACHE/src"
GOBUILDCACHE="$CACHE/go-build"

WORK=""
POLICY_RC=/usr/sbin/policy-rc.d
POLICY_CREATED=""

say() { printf 'setup_kubernetes: %s\n' "$*" >&2; }

cleanup() {
    if [ -n "$POLICY_CREATED" ]; then
        rm -f "$POLICY_RC"
    fi
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# run_step NAME LOG COMMAND...: runs COMMAND (a function is fine) with `set -e` in a
# subshell, output to LOG; on failure says which step failed and where its log is.
run_step() {
    local name="$1" log="$2" rc
    shift 2
    mkdir -p "$(dirname "$log")"
    set +e
    (set -e; "$@") >"$log" 2>&1 </dev/null
    rc=$?
    set -e
    if [ "$rc" != 0 ]; then
        say "FAILED: step '$name' (exit $rc); its log is $log; last lines:"
        tail -n 20 "$log" | sed 's/^/    /' >&2
        exit 1
    fi
}

binaries_ok() {
    local b out
    for b in "${BINARIES[@]}"; do
        [ -x "$BIN/$b" ] || return 1
    done
    out="$("$BIN/kube-apiserver" --version 2>/dev/null)" || return 1
    [ "$out" = "Kubernetes $VERSION" ]
}

need_root() {
    if [ "$(id -u)" != 0 ]; then
        say "$1 needs root; run this script as root (sudo bash $0)"
        exit 1
    fi
}

missing_packages() {
    local p
    for p in "${PACKAGES[@]}"; do
        # shellcheck disable=SC2016 # ${Status} is dpkg-query's, not the shell's
        if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
            printf '%s\n' "$p"
        fi
    done
}

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "$@"
}

# install_packages all|etcd-only
install_packages() {
    local missing=() p
    if [ "$1" = etcd-only ]; then
        command -v etcd >/dev/null 2>&1 || missing=(etcd-server)
    else
        while IFS= read -r p; do
            [ -n "$p" ] && missing+=("$p")
        done < <(missing_packages)
    fi
    if [ "${#missing[@]}" = 0 ]; then
        say "packages present: ${PACKAGES[*]}"
        return 0
    fi
    need_root "installing ${missing[*]}"
    # etcd-server's maintainer scripts would start a system etcd where invoke-rc.d is
    # allowed to; a policy-rc.d that says no, only for this install, prevents that.
    if [ ! -e "$POLICY_RC" ]; then
        printf '#!/bin/sh\n# setup_kubernetes.sh: no service starts during its install\nexit 101\n' >"$POLICY_RC"
        chmod 755 "$POLICY_RC"
        POLICY_CREATED=1
    fi
    say "installing ${missing[*]} with apt-get"
    run_step "apt-get install" "$LOGS/apt-install.log" apt_install "${missing[@]}"
    if [ -n "$POLICY_CREATED" ]; then
        rm -f "$POLICY_RC"
        POLICY_CREATED=""
    fi
}

# The first URI of the machine's Debian stanza for $SUITE (deb822, then one-line format).
debian_mirror() {
    local uri=""
    if [ -n "${OFFLOAD_K8S_MIRROR:-}" ]; then
        printf '%s\n' "$OFFLOAD_K8S_MIRROR"
        return 0
    fi
    if [ -r /etc/apt/sources.list.d/debian.sources ]; then
        uri="$(awk -v suite="$SUITE" '
            function flush() {
                if (uris != "" && (" " suites " ") ~ (" " suite " ")) { print uris; found = 1; exit }
                uris = ""; suites = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            tolower($1) == "uris:" { uris = $2 }
            tolower($1) == "suites:" { $1 = ""; suites = $0 }
            END { if (!found) flush() }
        ' /etc/apt/sources.list.d/debian.sources)"
    fi
    if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
        uri="$(sed -e 's/\[[^]]*\]//' /etc/apt/sources.list |
            awk -v suite="$SUITE" '$1 == "deb" && $3 == suite { print $2; exit }')"
    fi
    printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

fetch_source() {
    local mirror="$1" apt_dir="$WORK/apt" opts
    mkdir -p "$apt_dir/sources" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/dl"
    cat >"$apt_dir/sources/src.sources" <<EOF
Types: deb-src
URIs: $mirror
Suites: $SUITE
Components: main
Signed-By: $KEYRING
EOF
    # Let apt's unprivileged download user write where it downloads (no sandbox warning).
    if getent passwd _apt >/dev/null 2>&1; then
        chown -R _apt "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/dl"
    fi
    opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$apt_dir/sources"
        -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache")
    apt-get "${opts[@]}" update
    (cd "$apt_dir/dl" && apt-get "${opts[@]}" source --download-only "$SRC_PACKAGE")
    ls -l "$apt_dir/dl"
    if [ ! -f "$apt_dir/dl/$ORIG_TARBALL" ]; then
        echo "the source package has no $ORIG_TARBALL (another version in $SUITE?)" >&2
        exit 1
    fi
    mkdir -p "$SRC"
    mv -f "$apt_dir/dl/$ORIG_TARBALL" "$SRC/$ORIG_TARBALL.part"
    mv -f "$SRC/$ORIG_TARBALL.part" "$SRC/$ORIG_TARBALL"
}

unpack_source() {
    tar xzf "$SRC/$ORIG_TARBALL" -C "$WORK" || {
        rm -f "$SRC/$ORIG_TARBALL"
        echo "removed the unreadable $SRC/$ORIG_TARBALL; the next run downloads it again" >&2
        exit 1
    }
    test -f "$WORK/$TREE/Makefile"
}

swap_reflect2() {
    test -f "$REFLECT2/reflect2.go"
    rsync -a --delete "$REFLECT2/" "$WORK/$TREE/vendor/github.com/modern-go/reflect2/"
}

build() {
    cd "$WORK/$TREE"
    mkdir -p .go/src/k8s.io "$WORK/home" "$GOBUILDCACHE" _output/local/go
    ln -sfn ../../.. .go/src/k8s.io/kubernetes
    # hack/lib/golang.sh sets GOCACHE to _output/local/go/cache: point it into the cache.
    ln -sfn "$GOBUILDCACHE" _output/local/go/cache
    go version
    # GOPROXY/GOSUMDB off: everything comes from vendor/, nothing from the network.
    env -u GO111MODULE -u GOBIN GOPATH="$PWD/.go" CGO_ENABLED=0 HOME="$WORK/home" \
        GOFLAGS= GOPROXY=off GOSUMDB=off \
        make WHAT="${BINARIES[*]/#/cmd/}"
}

install_binaries() {
    local out b
    out="$WORK/$TREE/_output/local/bin/$(go env GOOS)/$(go env GOARCH)"
    for b in "${BINARIES[@]}"; do
        test -x "$out/$b"
        "$out/$b" --version
    done
    [ "$("$out/kube-apiserver" --version)" = "Kubernetes $VERSION" ]
    mkdir -p "$BIN"
    # Same filesystem (the build tree is under the cache): each mv is an atomic rename.
    # kube-apiserver last, so the cache never looks complete while it is not.
    for b in kube-controller-manager kube-scheduler kube-apiserver; do
        chmod 755 "$out/$b"
        mv -f "$out/$b" "$BIN/$b"
    done
}

report_etcd() {
    local etcd
    etcd="$(command -v etcd 2>/dev/null)" || {
        say "FAILED: etcd is not on PATH after installing etcd-server; see $LOGS/apt-install.log"
        exit 1
    }
    say "etcd on PATH: $etcd ($("$etcd" --version 2>/dev/null | head -n 1))"
}

report_binaries() {
    say "${BINARIES[*]} $VERSION in $BIN"
}

# ---- cached: nothing to do ------------------------------------------------------------
if binaries_ok; then
    report_binaries
    command -v etcd >/dev/null 2>&1 || install_packages etcd-only
    report_etcd
    exit 0
fi

# ---- build ----------------------------------------------------------------------------
say "no usable binaries in $BIN: building $VERSION (about 10 minutes on 2 cores)"
if ! mkdir -p "$CACHE" "$LOGS" 2>/dev/null || [ ! -w "$CACHE" ]; then
    say "cannot write $CACHE: run as root, or set OFFLOAD_K8S_CACHE to a writable directory"
    exit 1
fi
# One build at a time per cache; whoever waited rechecks the cache first.
exec 9>"$CACHE/.lock"
if ! flock -n 9; then
    say "another setup_kubernetes.sh holds $CACHE/.lock; waiting for it"
    flock 9
    if binaries_ok; then
        report_binaries
        report_etcd
        exit 0
    fi
fi

install_packages all
# A fixed build directory, not a random one: Go's build cache keys include each package's
# source directory, so only the same path lets a rebuild reuse $GOBUILDCACHE. It is under
# the cache (same filesystem as bin/, so the final mv is a rename); we hold the lock, and
# a tree left by a killed run is removed here.
WORK="$CACHE/build"
rm -rf "$WORK"
mkdir -m 755 "$WORK"

if [ -f "$SRC/$ORIG_TARBALL" ]; then
    say "source: cached $SRC/$ORIG_TARBALL"
else
    mirror="$(debian_mirror)"
    say "source: downloading Debian $SUITE source package $SRC_PACKAGE from $mirror (34 MB)"
    run_step "download source" "$LOGS/source.log" fetch_source "$mirror"
fi

say "unpacking $ORIG_TARBALL"
run_step "unpack source" "$LOGS/unpack.log" unpack_source

say "swapping vendored reflect2 for Debian's ($REFLECT2)"
run_step "reflect2 swap" "$LOGS/reflect2.log" swap_reflect2

say "building ${BINARIES[*]} with make, Go build cache in $GOBUILDCACHE"
started=$SECONDS
run_step "build" "$LOGS/build.log" build
elapsed=$((SECONDS - started))
say "build done in $((elapsed / 60))m $((elapsed % 60))s"

say "moving the binaries into $BIN"
run_step "install binaries" "$LOGS/install.log" install_binaries

say "removing the build tree $WORK"
rm -rf "$WORK"
WORK=""

binaries_ok || {
    say "FAILED: $BIN/kube-apiserver does not report $VERSION after the build; see $LOGS/install.log"
    exit 1
}
report_binaries
report_etcd
