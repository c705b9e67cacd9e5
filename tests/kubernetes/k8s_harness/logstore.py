"""Container logs as the kubelet keeps them: one entry per line of output (stdout and stderr
interleaved, as written), each with the time it was read; a last line without a newline is an
entry too. Reading follows the kubelet's options: ``tailLines`` first, then ``sinceTime``,
``timestamps`` prefixes (RFC3339 with 9 fixed fraction digits), ``limitBytes`` counts what is
sent, timestamps included, and ``follow`` waits for new entries until the container has ended.
"""

from __future__ import annotations

import datetime
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

_TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")


def now_ns() -> int:
    return time.time_ns()


def rfc3339nano(ns: int) -> str:
    """``2006-01-02T15:04:05.000000000Z``: the kubelet's timestamp format (fixed 9 digits)."""
    seconds, frac = divmod(ns, 1_000_000_000)
    stamp = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{frac:09d}Z"


def rfc3339(ns: int | None = None) -> str:
    """Whole seconds, as the API's ``metav1.Time`` is serialised."""
    seconds = (now_ns() if ns is None else ns) // 1_000_000_000
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> int:
    """Nanoseconds since the epoch of an RFC3339 time (any fraction, ``Z`` or an offset)."""
    m = _TIME.match(text.strip())
    if not m:
        raise ValueError(f"not an RFC3339 time: {text!r}")
    y, mo, d, h, mi, s, frac, zone = m.groups()
    tz = datetime.timezone.utc
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        tz = datetime.timezone(sign * datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    base = datetime.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=tz)
    return int(base.timestamp()) * 1_000_000_000 + int((frac or "0").ljust(9, "0"))


@dataclass
class LogOptions:
    follow: bool = False
    timestamps: bool = False
    since_ns: int | None = None
    tail_lines: int | None = None
    limit_bytes: int | None = None


class ContainerLog:
    """The output of one run of one container. ``delay`` seconds: entries become readable late."""

    def __init__(self, delay: float = 0.0) -> None:
        self.entries: list[tuple[int, bytes]] = []
        self.delay_ns = int(delay * 1e9)
        self.finished = False
        self.closed = False
        self._visible = 0
        self._partial = b""
        self._cond = threading.Condition()

    def append(self, data: bytes, ts_ns: int | None = None) -> None:
        with self._cond:
            self.entries.append((now_ns() if ts_ns is None else ts_ns, data))
            self._cond.notify_all()

    def feed(self, chunk: bytes) -> None:
        """Raw output: complete lines become entries; the rest waits for its newline or :meth:`finish`."""
        data = self._partial + chunk
        *lines, self._partial = data.split(b"\n")
        for line in lines:
            self.append(line + b"\n")

    def finish(self) -> None:
        """The container has ended and all its output is here."""
        with self._cond:
            if self._partial:
                self.entries.append((now_ns(), self._partial))
                self._partial = b""
            self.finished = True
            self._cond.notify_all()

    def close(self) -> None:
        """The pod is gone: every reader stops."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def text(self) -> str:
        with self._cond:
            return b"".join(data for _, data in self.entries).decode(errors="replace")

    def _count_visible(self) -> int:
        if not self.delay_ns:
            return len(self.entries)
        limit = now_ns() - self.delay_ns
        while self._visible < len(self.entries) and self.entries[self._visible][0] <= limit:
            self._visible += 1
        return self._visible

    def stream(self, opts: LogOptions, write: Callable[[bytes], None], alive: Callable[[], bool] = lambda: True) -> None:
        """Write the log to ``write`` as the kubelet's ``/containerLogs`` would."""
        written = 0
        with self._cond:
            visible = self._count_visible()
            index = max(0, visible - opts.tail_lines) if opts.tail_lines is not None else 0
        while True:
            with self._cond:
                while True:
                    visible = self._count_visible()
                    if index < visible:
                        batch = self.entries[index:visible]
                        break
                    done = self.finished and visible == len(self.entries)
                    if done or self.closed or not opts.follow:
                        return
                    self._cond.wait(0.2 if self.delay_ns else 1.0)
                    if not alive():
                        return
            index += len(batch)
            out = []
            for ts, data in batch:
                if opts.since_ns is not None and ts < opts.since_ns:
                    continue
                piece = (rfc3339nano(ts).encode() + b" " + data) if opts.timestamps else data
                if opts.limit_bytes is not None and written + len(piece) >= opts.limit_bytes:
                    out.append(piece[: opts.limit_bytes - written])
                    write(b"".join(out))
                    return
                out.append(piece)
                written += len(piece)
            if out:
                write(b"".join(out))
