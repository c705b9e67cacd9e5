#!/usr/bin/env bash
# Make a headless Chromium exist for the browser tests (tests/e2e/test_cli_report.py); idempotent.
#
# Installs Debian's `chromium` (as root, --no-install-recommends) when no chromium is on the
# PATH; does nothing, quickly, when one is. It downloads no browser build of its own: the
# package comes from Debian's archive through apt-get. Where it cannot install (not root, no
# apt-get) it says so and fails only in CI (CI set): elsewhere the browser tests skip.
set -euo pipefail

say() { printf 'setup_chromium: %s\n' "$*" >&2; }

find_chromium() { command -v chromium || command -v chromium-browser || true; }

if [ -n "$(find_chromium)" ]; then
    say "$(find_chromium) present"
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "chromium is missing and cannot be installed here (needs apt-get as root); install Debian's chromium package"
    # the browser tests fail in CI without it, and are skipped elsewhere
    case "${CI:-}" in "" | 0 | false | no) exit 0 ;; *) exit 1 ;; esac
fi
say "installing chromium (once)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends chromium >/dev/null
if [ -z "$(find_chromium)" ]; then
    say "apt-get installed chromium but no chromium command is on the PATH"
    exit 1
fi
say "$(find_chromium) installed"
