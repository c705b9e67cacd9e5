"""The ``/bin/sh -c`` script a task's container runs instead of its image's command.

It downloads the project archive through a presigned GET (``curl``, else ``wget``, else
``python3``: whatever the image has; no AWS CLI and no credentials), unpacks it, runs
the command in the working directory with every argument quoted, archives the io
directory and uploads it through a presigned PUT, prints the end-of-log marker and
exits with the command's code. SIGTERM (``stop_task``) is passed on to the command, so
a stopped task still sends back what it wrote.

The script has two parts: a loader (fetch and unpack) and a body (run and send back).
When the container override would pass ECS's 8192-character limit, the body travels
in the archive as ``offload/main.sh`` and the loader sources it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence

#: Exit code of the script when offload's own steps fail before the command runs.
SETUP_FAILED = 125

_FUNCTIONS = r"""offload_fetch() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL --retry 5 --retry-delay 1 -o "$2" "$1"
  elif command -v wget >/dev/null 2>&1; then
    wget -q -O "$2" "$1"
  elif command -v python3 >/dev/null 2>&1; then
    python3 -c 'import shutil, sys, urllib.request
with urllib.request.urlopen(sys.argv[1]) as r, open(sys.argv[2], "wb") as f: shutil.copyfileobj(r, f)' "$1" "$2"
  else
    echo "offload: the image has none of curl, wget, python3 to fetch the project" >&2; return 127
  fi
}
offload_put() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS --retry 5 --retry-delay 1 -H 'Content-Type: application/octet-stream' -T "$1" "$2" >/dev/null
  elif command -v wget >/dev/null 2>&1 && wget --help 2>&1 | grep -q -- --method; then
    wget -q -O /dev/null --method=PUT --header='Content-Type: application/octet-stream' --body-file="$1" "$2"
  elif command -v python3 >/dev/null 2>&1; then
    python3 -c 'import sys, urllib.request
data = open(sys.argv[1], "rb").read()
req = urllib.request.Request(sys.argv[2], data=data, method="PUT", headers={"Content-Type": "application/octet-stream"})
urllib.request.urlopen(req).read()' "$1" "$2"
  else
    echo "offload: the image has none of curl, wget (with --method), python3 to send the output back" >&2; return 127
  fi
}
"""

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def q(value: str) -> str:
    """One shell word, whatever ``value`` holds."""
    return shlex.quote(value)


def loader(get_url: str, body: str | None) -> str:
    """The part that fetches and unpacks the archive; ``body`` inline, or ``None`` to source it."""
    lines = [
        "set -u",
        _FUNCTIONS,
        'offload_root=$(mktemp -d 2>/dev/null) || { offload_root=/tmp/offload.$$; mkdir -p "$offload_root"; }',
        f'cd "$offload_root" || exit {SETUP_FAILED}',
        f"offload_fetch {q(get_url)} project.tgz || {{ echo 'offload: cannot download the project archive' >&2; exit {SETUP_FAILED}; }}",
        f"tar -xzf project.tgz || {{ echo 'offload: cannot unpack the project archive' >&2; exit {SETUP_FAILED}; }}",
        "rm -f project.tgz",
    ]
    lines.append(body if body is not None else '. "$offload_root/offload/main.sh"')
    return "\n".join(lines) + "\n"


def body(argv: Sequence[str], workdir: str, io_dir: str, put_url: str, marker: str) -> str:
    """The part that runs the command and sends the io directory back."""
    command = " ".join(q(arg) for arg in argv)
    return "\n".join(
        [
            f'cd "$offload_root/project" || exit {SETUP_FAILED}',
            f"mkdir -p {q(io_dir)}",
            'if [ -f "$offload_root/offload/env.sh" ]; then . "$offload_root/offload/env.sh"; fi',
            "offload_child=",
            'trap \'if [ -n "$offload_child" ]; then kill -TERM "$offload_child" 2>/dev/null; fi\' TERM INT HUP',
            f"( cd {q(workdir)} && exec {command} ) &",
            "offload_child=$!",
            'wait "$offload_child"; offload_code=$?',
            'while kill -0 "$offload_child" 2>/dev/null; do wait "$offload_child"; offload_code=$?; done',
            "trap - TERM INT HUP",
            f'if cd "$offload_root/project/"{q(io_dir)} && tar -czf "$offload_root/output.tgz" . ; then',
            f"  offload_put \"$offload_root/output.tgz\" {q(put_url)} || echo 'offload: cannot upload the output archive' >&2",
            "else",
            "  echo 'offload: cannot archive the io directory' >&2",
            "fi",
            'cd / && rm -rf "$offload_root"',
            f"echo {q(marker)}",
            'exit "$offload_code"',
        ]
    )


def env_script(env: Mapping[str, str]) -> str:
    """``env`` as ``export`` lines, for when it travels in the archive."""
    bad = sorted(name for name in env if not _NAME.match(name))
    if bad:
        raise ValueError(f"environment variable names {', '.join(map(repr, bad))} cannot be exported by /bin/sh")
    return "".join(f"export {name}={q(value)}\n" for name, value in sorted(env.items()))


def env_file(env: Mapping[str, str]) -> str | None:
    """``env`` as an ECS environment file, or ``None`` when a value cannot be written in one."""
    if any("\n" in value or "\r" in value for value in env.values()) or any(not _NAME.match(n) for n in env):
        return None
    return "".join(f"{name}={value}\n" for name, value in sorted(env.items()))
