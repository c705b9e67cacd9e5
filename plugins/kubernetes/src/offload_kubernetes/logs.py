"""A pod's log, read on from where the handle stopped: never from the start, never a line twice.

The API gives a container's log with ``timestamps=true`` (each line begins with its
RFC 3339 time, nanoseconds, trailing zeros cut) from ``sinceTime`` (whole seconds). The
cursor in the handle is the time of the last line handed out and how many lines had
exactly that time: a read starts at that second and skips what was handed out.

A last line without a newline is held back while the container runs (it may be a long
line still being written) and handed out once the container has terminated.

The end-of-log marker ends the log: lines after it are not the task's. When the io
directory comes back in the log (no storage), the lines from ``<marker>:output`` to
``<marker>:end`` are its base64: they are skipped here and read again by :func:`inline_output`.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import attrs

from offload import LOG_SPLIT_MARKER, MAX_LOG_LINE, remote, utf8_boundary
from offload_kubernetes.client import Kube, KubeError
from offload_kubernetes.jobspec import CONTAINER

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def parse_time_ns(text: str) -> int:
    """``2026-11-23T18:04:31.12345Z`` (any number of decimals, ``Z`` or an offset) -> ns since the epoch."""
    main, _, rest = text.partition(".")
    frac, zone = "", "Z"
    if rest:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        frac, zone = rest[:digits], rest[digits:] or "Z"
    elif main.endswith("Z"):
        main, zone = main[:-1], "Z"
    elif len(main) > 19:
        main, zone = main[:19], main[19:]
    when = dt.datetime.fromisoformat(main + ("+00:00" if zone == "Z" else zone))
    seconds = int((when - _EPOCH).total_seconds())
    return seconds * 1_000_000_000 + int((frac + "000000000")[:9])


def since_time(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns // 1_000_000_000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@attrs.frozen
class LogCursor:
    """Where the lines handed out end; ``ended``: the end-of-log marker was read."""

    ns: int = 0
    same: int = 0
    ended: bool = False
    #: The position of ``<marker>:output`` (io directory in the log), for :func:`inline_output`.
    output_ns: int = 0
    in_output: bool = False

    def to_state(self) -> dict[str, Any]:
        return {"log": [self.ns, self.same, self.ended, self.output_ns, self.in_output]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LogCursor:
        data = state.get("log")
        if not data:
            return cls()
        ns, same, ended, output_ns, in_output = data
        return cls(int(ns), int(same), bool(ended), int(output_ns), bool(in_output))


def _split(text: str) -> list[str]:
    """A line longer than offload's limit, in pieces as the other backends cut it."""
    data = text.encode("utf-8", "surrogateescape")
    if len(data) <= MAX_LOG_LINE:
        return [text]
    pieces = []
    while len(data) > MAX_LOG_LINE:
        cut = utf8_boundary(data[:MAX_LOG_LINE]) or MAX_LOG_LINE
        pieces.append(data[:cut].decode("utf-8", "replace") + LOG_SPLIT_MARKER)
        data = data[cut:]
    pieces.append(data.decode("utf-8", "replace"))
    return pieces


def read(kube: Kube, namespace: str, pod: str, cursor: LogCursor, marker: str, terminated: bool) -> tuple[list[str], LogCursor]:
    """The task's lines after ``cursor``, and the cursor after them.

    :raises KubeError: when the log cannot be read (the pod is gone: 404).
    """
    query: dict[str, Any] = {"container": CONTAINER, "timestamps": True}
    if cursor.ns:
        query["sinceTime"] = since_time(cursor.ns)
    data: bytes = kube.request("GET", f"/api/v1/namespaces/{namespace}/pods/{pod}/log", query=query, raw=True)
    return take(data.decode("utf-8", "replace"), cursor, marker, terminated)


def take(text: str, cursor: LogCursor, marker: str, terminated: bool) -> tuple[list[str], LogCursor]:
    """The lines of a log reply (``timestamps=true``) after ``cursor``, and the cursor after them."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    elif lines and not terminated:
        lines.pop()  # a line still being written: next time
    out: list[str] = []
    ns, same, ended, output_ns, in_output = cursor.ns, cursor.same, cursor.ended, cursor.output_ns, cursor.in_output
    seen_at_cursor = 0  # lines with exactly the cursor's time: the first ``cursor.same`` were handed out
    for line in lines:
        if ended:
            break
        stamp, _, body = line.partition(" ")
        try:
            at = parse_time_ns(stamp)
        except ValueError:
            continue  # not a line of the log (a notice of the server)
        if at < cursor.ns:
            continue
        if at == cursor.ns:
            seen_at_cursor += 1
            if seen_at_cursor <= cursor.same:
                continue
        ns, same = (ns, same + 1) if at == ns else (at, 1)
        text, which = remote.find_marker(body.removesuffix("\r"), marker)
        if text and not in_output:
            out.extend(_split(text))
        if which == "output":
            in_output, output_ns = True, at
        elif which == "output-end":
            in_output = False
        elif which == "end":
            ended = True
    return out, LogCursor(ns, same, ended, output_ns, in_output)


def inline_output(kube: Kube, namespace: str, pod: str, cursor: LogCursor, marker: str) -> bytes | None:
    """The io archive the task printed in its log (no storage); ``None`` when it printed none."""
    if not cursor.output_ns:
        return None
    query = {"container": CONTAINER, "timestamps": True, "sinceTime": since_time(cursor.output_ns)}
    try:
        data: bytes = kube.request("GET", f"/api/v1/namespaces/{namespace}/pods/{pod}/log", query=query, raw=True)
    except KubeError:
        return None
    payload: list[str] = []
    inside = False
    for line in data.decode("utf-8", "replace").split("\n"):
        text, which = remote.find_marker(line.partition(" ")[2].removesuffix("\r"), marker)
        if which == "output":
            inside, payload = True, []
        elif which == "output-end" and inside:
            return base64.b64decode("".join(payload))
        elif inside:
            payload.append(text)
    return None
