"""The ``/bin/sh -c`` script a remote task's container runs instead of its image's command.

It gets the project archive (through a presigned GET with ``curl``, else ``wget``, else
``python3``: whatever the image has, no cloud CLI and no credentials; or from a file the
engine mounted), unpacks it, runs the command in the working directory with every
argument quoted, archives the io directory and sends it back (a presigned PUT, or
printed in base64 after the end-of-log marker when there is no storage), prints the
end-of-log marker and exits with the command's code. SIGTERM (a stop) is passed on to
the command, so a stopped task still sends back what it wrote.

The script has two parts: a loader (fetch and unpack) and a body (run and send back).
When a backend's command would pass its engine's size limit (ECS: 8192 characters),
the body travels in the archive as ``offload/main.sh`` and the loader sources it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence

#: Exit code of the script when offload's own steps fail before the command runs.
SETUP_FAILED = 125
#: Exit code of a script asked to fail when the output cannot be sent back
#: (``failed_upload_fails``) after a command that exited 0.
UPLOAD_FAILED = 124
#: Retries of the download and of the upload unless a backend says otherwise.
DEFAULT_RETRIES = 5

#: The ``python3`` fallback of both transfers: ``get|put URL FILE RETRIES``, trying again
#: a second later after a network error or an HTTP 408, 429 or 5xx answer, as
#: ``curl --retry`` does.
_PYTHON = """import shutil, sys, time, urllib.request
op, url, path, left = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
while True:
    try:
        if op == "get":
            with urllib.request.urlopen(url) as r, open(path, "wb") as f: shutil.copyfileobj(r, f)
        else:
            data = open(path, "rb").read()
            urllib.request.urlopen(urllib.request.Request(url, data=data, method="PUT", headers={"Content-Type": "application/octet-stream"})).read()
        break
    except OSError as e:
        if left <= 0 or getattr(e, "code", 500) not in (408, 429, 500, 502, 503, 504): raise
        left -= 1; time.sleep(1)"""

# offload_fetch URL FILE RETRIES; offload_put FILE URL RETRIES [-f]: without -f, curl takes
# an HTTP error answer as sent and its text goes to the log (wget and python3 always fail on one).
_FUNCTIONS = (
    r"""offload_py='"""
    + _PYTHON
    + r"""'
offload_fetch() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL --retry "$3" --retry-delay 1 -o "$2" "$1"
  elif command -v wget >/dev/null 2>&1; then
    wget -q -O "$2" "$1"
  elif command -v python3 >/dev/null 2>&1; then
    python3 -c "$offload_py" get "$1" "$2" "$3"
  else
    echo "offload: the image has none of curl, wget, python3 to fetch the project" >&2; return 127
  fi
}
offload_put() {
  if command -v curl >/dev/null 2>&1; then
    if [ "${4:-}" = -f ]; then
      curl -fsS --retry "$3" --retry-delay 1 -H 'Content-Type: application/octet-stream' -T "$1" "$2" >/dev/null
    else
      curl -sS --retry "$3" --retry-delay 1 -H 'Content-Type: application/octet-stream' -T "$1" "$2" >&2
    fi
  elif command -v wget >/dev/null 2>&1 && wget --help 2>&1 | grep -q -- --method; then
    wget -q -O /dev/null --method=PUT --header='Content-Type: application/octet-stream' --body-file="$1" "$2"
  elif command -v python3 >/dev/null 2>&1; then
    python3 -c "$offload_py" put "$2" "$1" "$3"
  else
    echo "offload: the image has none of curl, wget (with --method), python3 to send the output back" >&2; return 127
  fi
}
"""
)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def quote_word(value: str) -> str:
    """One shell word, whatever ``value`` holds."""
    return shlex.quote(value)


def _check_retries(what: str, value: int) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be a count (0 or more), got {value!r}")
    return str(value)


def loader(get_url: str | None, body: str | None, archive_path: str | None = None, *, download_retries: int = DEFAULT_RETRIES) -> str:
    """The part that gets and unpacks the archive; ``body`` inline, or ``None`` to source it.

    The archive is downloaded from ``get_url``, or read from ``archive_path`` (a file the
    engine put in the container, such as a mounted ConfigMap) when there is no URL. A
    download that fails on the network or with an HTTP 408, 429 or 5xx answer is tried
    again up to ``download_retries`` times, a second apart (``curl --retry``; ``python3``
    alike; ``wget`` by its own rules)."""
    retries = _check_retries("download_retries", download_retries)
    if get_url is not None:
        fetch = (
            f"offload_fetch {quote_word(get_url)} project.tgz {retries} || {{ echo 'offload: cannot download the project archive' >&2; exit {SETUP_FAILED}; }}"
        )
        unpack = "project.tgz"
    elif archive_path is not None:
        fetch = f"[ -r {quote_word(archive_path)} ] || {{ echo 'offload: the project archive is not in the container' >&2; exit {SETUP_FAILED}; }}"
        unpack = archive_path
    else:
        raise ValueError("the loader needs a URL or a path to get the project archive from")
    lines = [
        "set -u",
        _FUNCTIONS,
        'offload_root=$(mktemp -d 2>/dev/null) || { offload_root=/tmp/offload.$$; mkdir -p "$offload_root"; }',
        f'cd "$offload_root" || exit {SETUP_FAILED}',
        fetch,
        f"tar -xzf {quote_word(unpack)} || {{ echo 'offload: cannot unpack the project archive' >&2; exit {SETUP_FAILED}; }}",
        "rm -f project.tgz",
    ]
    lines.append(body if body is not None else '. "$offload_root/offload/main.sh"')
    return "\n".join(lines) + "\n"


def _send_inline(marker: str, limit: int) -> list[str]:
    """Lines that print the io archive in base64 between ``marker:output`` and ``marker:end``.

    When the archive is larger than ``limit`` bytes only ``output.json`` is sent (the
    params the task sets), with a line in the log that says what was left behind."""
    archive = '"$offload_root/output.tgz"'
    return [
        f'if [ "$(wc -c < {archive})" -gt {limit} ]; then',
        f"  echo 'offload: the io directory is larger than {limit} bytes once compressed:"
        " only output.json comes back (configure a temporal storage for the rest)' >&2",
        f"  rm -f {archive}; if [ -f output.json ]; then tar -czf {archive} output.json; else tar -czf {archive} -T /dev/null; fi",
        "fi",
        f"echo {quote_word(marker + INLINE_BEGIN)}",
        f"if command -v base64 >/dev/null 2>&1; then base64 {archive}; else python3 -m base64 -e {archive}; fi",
        f"echo {quote_word(marker + INLINE_END)}",
    ]


#: What follows the end-of-log marker on the lines around an io archive sent in the log.
INLINE_BEGIN, INLINE_END = ":output", ":end"


def find_marker(line: str, marker: str) -> tuple[str, str | None]:
    """Whether a log line is one of the script's own: ``(text before it, which)``.

    ``which`` is ``"end"`` (the end-of-log marker), ``"output"`` or ``"output-end"`` (around
    an io archive in the log), or ``None`` for a line of the task. A command whose output
    does not end with a newline has its last text on the marker's line: that text is the
    task's, and is returned first."""
    for suffix, which in ((INLINE_BEGIN, "output"), (INLINE_END, "output-end"), ("", "end")):
        if line.endswith(marker + suffix):
            return line[: len(line) - len(marker + suffix)], which
    return line, None


def task_body(
    argv: Sequence[str],
    workdir: str,
    io_dir: str,
    put_url: str | None,
    marker: str,
    inline_limit: int = 0,
    *,
    upload_retries: int = DEFAULT_RETRIES,
    curl_fail: bool = True,
    failed_upload_fails: bool = False,
) -> str:
    """The part that runs the command and sends the io directory back.

    The io archive goes to ``put_url``; without one it is printed in base64 before the
    marker (:func:`_send_inline`, at most ``inline_limit`` bytes), for the driver to
    take from the log.

    :param upload_retries: tries again of an upload that fails on the network or with an
        HTTP 408, 429 or 5xx answer, a second apart.
    :param curl_fail: ``curl --fail``: an HTTP error answer is a failed upload. Without it
        curl takes any answer as sent, and the answer's text goes to the log.
    :param failed_upload_fails: when the io directory cannot be archived or uploaded, the
        script exits :data:`UPLOAD_FAILED` instead of 0 (a failing command keeps its code);
        else it says so in the log and exits with the command's code.
    """
    retries = _check_retries("upload_retries", upload_retries)
    command = " ".join(quote_word(arg) for arg in argv)
    fail = f'; [ "$offload_code" -ne 0 ] || offload_code={UPLOAD_FAILED}' if failed_upload_fails else ""
    if put_url is not None:
        flag = " -f" if curl_fail else ""
        put = f'offload_put "$offload_root/output.tgz" {quote_word(put_url)} {retries}{flag}'
        send = [f"  {put} || {{ echo 'offload: cannot upload the output archive' >&2{fail}; }}"]
    else:
        send = ["  " + line for line in _send_inline(marker, inline_limit)]
    return "\n".join(
        [
            f'cd "$offload_root/project" || exit {SETUP_FAILED}',
            f"mkdir -p {quote_word(io_dir)}",
            'if [ -f "$offload_root/offload/env.sh" ]; then . "$offload_root/offload/env.sh"; fi',
            "offload_child=",
            'trap \'if [ -n "$offload_child" ]; then kill -TERM "$offload_child" 2>/dev/null; fi\' TERM INT HUP',
            f"( cd {quote_word(workdir)} && exec {command} ) &",
            "offload_child=$!",
            'wait "$offload_child"; offload_code=$?',
            'while kill -0 "$offload_child" 2>/dev/null; do wait "$offload_child"; offload_code=$?; done',
            "trap - TERM INT HUP",
            f'if cd "$offload_root/project/"{quote_word(io_dir)} && tar -czf "$offload_root/output.tgz" . ; then',
            *send,
            "else",
            f"  echo 'offload: cannot archive the io directory' >&2{fail if put_url is not None else ''}",
            "fi",
            'cd / && rm -rf "$offload_root"',
            f"echo {quote_word(marker)}",
            'exit "$offload_code"',
        ]
    )


def env_script(env: Mapping[str, str]) -> str:
    """``env`` as ``export`` lines, for when it travels in the archive."""
    bad = sorted(name for name in env if not _NAME.match(name))
    if bad:
        raise ValueError(f"environment variable names {', '.join(map(repr, bad))} cannot be exported by /bin/sh")
    return "".join(f"export {name}={quote_word(value)}\n" for name, value in sorted(env.items()))


def env_file(env: Mapping[str, str]) -> str | None:
    """``env`` as an ECS environment file, or ``None`` when a value cannot be written in one."""
    if any("\n" in value or "\r" in value for value in env.values()) or any(not _NAME.match(n) for n in env):
        return None
    return "".join(f"{name}={value}\n" for name, value in sorted(env.items()))
