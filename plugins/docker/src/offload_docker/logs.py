"""Reading a container's log from where the previous poll stopped.

The cursor is the engine's nanosecond timestamp of the last line returned, plus how
many lines carried exactly that timestamp, so it survives a driver restart (it lives in
the handle) and never repeats or skips a line: the engine's ``since`` is inclusive and
only microsecond-precise, so lines at or before the cursor are dropped here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


@attrs.frozen
class LogCursor:
    last_ns: int = 0
    same: int = 0

    def to_state(self) -> dict[str, int]:
        return {"log_ns": self.last_ns, "log_same": self.same}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LogCursor:
        return cls(int(state.get("log_ns", 0)), int(state.get("log_same", 0)))


def parse_timestamp_ns(text: str) -> int:
    """``2024-05-01T10:00:00.123456789Z`` -> nanoseconds since the epoch."""
    main, _, frac = text.rstrip("Z").partition(".")
    seconds = int((dt.datetime.fromisoformat(main).replace(tzinfo=dt.timezone.utc) - _EPOCH).total_seconds())
    return seconds * 1_000_000_000 + int((frac + "000000000")[:9])


def parse_engine_time(text: str | None) -> float | None:
    """An engine time (``StartedAt``) as epoch seconds; ``None`` for the zero time."""
    if not text or text.startswith("0001-"):
        return None
    return parse_timestamp_ns(text) / 1e9


def read_new_lines(api: Any, container_id: str, cursor: LogCursor) -> tuple[list[str], LogCursor]:
    """Lines of stdout and stderr logged after ``cursor``, and the cursor after them."""
    # A millisecond early: a float cannot hold nanoseconds, and earlier lines are dropped below.
    since = (cursor.last_ns - 1_000_000) / 1e9 if cursor.last_ns else None
    raw = api.logs(container_id, stdout=True, stderr=True, timestamps=True, since=since)
    entries: list[tuple[int, str]] = []
    for entry in raw.decode("utf-8", errors="replace").splitlines():
        stamp, _, text = entry.partition(" ")
        try:
            entries.append((parse_timestamp_ns(stamp), text.rstrip("\r")))
        except ValueError:
            entries.append((entries[-1][0] if entries else cursor.last_ns, entry))  # keep, never lose a line
    # The engine sends stdout's lines, then stderr's: their timestamps give the real order.
    entries.sort(key=lambda item: item[0])
    lines: list[str] = []
    last_ns, same = cursor.last_ns, cursor.same
    skip_same = cursor.same
    for ns, text in entries:
        if ns < cursor.last_ns:
            continue
        if ns == cursor.last_ns and skip_same > 0:
            skip_same -= 1
            continue
        if ns == last_ns:
            same += 1
        else:
            last_ns, same = ns, 1
        lines.append(text)
    return lines, LogCursor(last_ns, same)
