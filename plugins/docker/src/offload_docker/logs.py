"""A container's log as the engine sends it, turned back into offload's lines.

With ``timestamps=1`` the engine sends one multiplexed frame per logged message: an
8-byte header (stream 1 is stdout, 2 stderr; the payload's length) and the payload
``<time, RFC 3339 with 9 decimals> <text>``. The logging driver cuts a line longer
than its buffer (16 KiB) into *partial* messages: a frame each, every one with the
time again and none but the last ending in a newline. :class:`Assembler` joins them,
so a long line arrives whole and no timestamp text ends up inside it; a line longer
than :data:`MAX_LINE` is handed out in pieces, as the local backend does, each piece
but the last ending with :data:`SPLIT_MARKER` and none ending inside a UTF-8 character.

Where the lines handed out so far end is a :class:`LogCursor`, kept in the handle, so a
driver that restarts reads on from exactly there, never repeating or losing a line.
The engine can only be asked for messages *since* a time, and the two streams are
written by two copiers whose times may cross by a little, so the cursor keeps a
position per stream (the time of its last frame handed out, and how many frames had
exactly that time: all partial messages of one line share the time of the first),
and reads start a little before the earliest position still needed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from offload import LOG_SPLIT_MARKER as SPLIT_MARKER
from offload import MAX_LOG_LINE as MAX_LINE
from offload import utf8_boundary

#: How far before the cursor a read starts: more than stdout and stderr times cross.
OVERLAP_NS = 100_000_000
STDOUT, STDERR = 1, 2

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def parse_timestamp_ns(text: str) -> int:
    """``2024-05-01T10:00:00.123456789Z`` (UTC, as the engine writes) -> nanoseconds since the epoch."""
    main, _, frac = text.rstrip("Z").partition(".")
    seconds = int((dt.datetime.fromisoformat(main).replace(tzinfo=dt.timezone.utc) - _EPOCH).total_seconds())
    return seconds * 1_000_000_000 + int((frac + "000000000")[:9])


def parse_engine_time(text: str | None) -> float | None:
    """An engine time (``StartedAt``) as epoch seconds; ``None`` for the zero time."""
    if not text or text.startswith("0001-"):
        return None
    return parse_timestamp_ns(text) / 1e9


@attrs.frozen
class StreamPos:
    """How far one stream's frames have been handed out.

    ``open``: frames after this position were read but not handed out yet (a long line
    still being written), so the next read must start at or before ``ns``. ``carry``:
    the first bytes of a UTF-8 character that a split left for the next piece.
    """

    ns: int = 0
    same: int = 0
    open: bool = False
    carry: bytes = b""

    def to_state(self) -> list[Any]:
        return [self.ns, self.same, self.open, self.carry.hex()]

    @classmethod
    def from_state(cls, data: Any) -> StreamPos:
        ns, same, is_open, carry = data
        return cls(int(ns), int(same), bool(is_open), bytes.fromhex(str(carry)))


@attrs.frozen
class LogCursor:
    """Where the lines handed out end: ``seen_ns`` is the latest frame time handed out."""

    seen_ns: int = 0
    out: StreamPos = StreamPos()
    err: StreamPos = StreamPos()

    def since(self) -> str | None:
        """The engine's ``since`` parameter for the next read (``None``: from the start)."""
        start = min([self.seen_ns, *(p.ns for p in (self.out, self.err) if p.open)])
        if start <= 0:
            return None
        start = max(1, start - OVERLAP_NS)
        return f"{start // 1_000_000_000}.{start % 1_000_000_000:09d}"

    def to_state(self) -> dict[str, Any]:
        return {"log": {"seen": self.seen_ns, "out": self.out.to_state(), "err": self.err.to_state()}}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LogCursor:
        data = state.get("log")
        if isinstance(data, dict):
            return cls(int(data["seen"]), StreamPos.from_state(data["out"]), StreamPos.from_state(data["err"]))
        if state.get("log_ns"):  # a handle of an earlier version: one position for both streams
            ns = int(state["log_ns"])
            return cls(ns, StreamPos(ns, int(state.get("log_same", 0))), StreamPos(ns, int(state.get("log_same", 0))))
        return cls()


def _text(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace")
    return text[:-1] if text.endswith("\r") else text


class _Stream:
    """One stream's reassembly: the position handed out, and the frames read past it.

    Positions are ``(ns, same)`` tuples: plain tuples, as this runs once per frame.
    """

    def __init__(self, pos: StreamPos) -> None:
        self.committed = (pos.ns, pos.same)
        self.carry = pos.carry
        self.last = (0, 0)  # the position of the frame read last, and of the one before it
        self.prev = (0, 0)
        self.pending: list[bytes] = [pos.carry] if pos.carry else []
        self.pending_len = len(pos.carry)
        self.pending_frames = 0

    def take(self, carry: bytes = b"") -> bytes:
        data = b"".join(self.pending)
        self.pending, self.pending_len, self.pending_frames = [carry] if carry else [], len(carry), 0
        return data

    def position(self) -> StreamPos:
        return StreamPos(self.committed[0], self.committed[1], self.pending_frames > 0, self.carry)


class Assembler:
    """Frames in, lines out; :meth:`cursor` says where the lines handed out end."""

    def __init__(self, cursor: LogCursor) -> None:
        self.seen_ns = cursor.seen_ns
        self.streams = {STDOUT: _Stream(cursor.out), STDERR: _Stream(cursor.err)}

    def feed(self, stream: int, ns: int, data: bytes, out: list[str]) -> None:
        """Append to ``out`` the lines that one frame's text (after its time) completes."""
        state = self.streams.get(stream)
        if state is None:
            return
        state.prev = last = state.last
        state.last = last = (ns, last[1] + 1) if ns == last[0] else (ns, 1)
        if last <= state.committed:
            return  # handed out before the cursor
        complete = data.endswith(b"\n")
        if complete:
            data = data[:-1]
            if not state.pending and len(data) <= MAX_LINE:  # the common case: a whole short line
                out.append(_text(data))
                state.committed = last
                state.carry = b""
                if ns > self.seen_ns:
                    self.seen_ns = ns
                return
        if state.pending_frames and state.pending_len + len(data) > MAX_LINE:
            out.append(self._piece(state, state.prev))  # the frames before this one
        state.pending.append(data)
        state.pending_len += len(data)
        state.pending_frames += 1
        if state.pending_len > MAX_LINE:  # one frame longer than a line: not Docker's 16 KiB ones
            self._oversized(state, complete, out)
        elif complete:
            out.append(_text(state.take()))
            self._commit(state, last, b"")

    def _piece(self, state: _Stream, at: tuple[int, int]) -> str:
        """The pending frames as one piece of a split line, handed out up to ``at``."""
        data = state.take()
        cut = utf8_boundary(data)
        state.take(carry=data[cut:])
        self._commit(state, at, data[cut:])
        return _text(data[:cut]) + SPLIT_MARKER

    def _oversized(self, state: _Stream, complete: bool, out: list[str]) -> None:
        data = state.take()
        while len(data) > MAX_LINE:
            cut = utf8_boundary(data[:MAX_LINE]) or MAX_LINE
            out.append(_text(data[:cut]) + SPLIT_MARKER)
            data = data[cut:]
        if complete:
            out.append(_text(data))
            self._commit(state, state.last, b"")
        else:
            cut = utf8_boundary(data)
            if cut:
                out.append(_text(data[:cut]) + SPLIT_MARKER)
            state.take(carry=data[cut:])
            self._commit(state, state.last, data[cut:])

    def _commit(self, state: _Stream, at: tuple[int, int], carry: bytes) -> None:
        state.committed, state.carry = at, carry
        self.seen_ns = max(self.seen_ns, at[0])

    def finish(self, out: list[str]) -> None:
        """At the end of a stopped container's log: append the last lines, without a newline."""
        for state in self.streams.values():
            if state.pending_len or state.pending_frames:
                at = state.last if state.pending_frames else state.committed
                out.append(_text(state.take()))
                self._commit(state, at, b"")

    def cursor(self) -> LogCursor:
        """The position after the lines handed out so far."""
        return LogCursor(self.seen_ns, self.streams[STDOUT].position(), self.streams[STDERR].position())


def frames(buffer: bytearray) -> list[tuple[int, bytes]]:
    """The complete frames at the start of ``buffer`` (removed from it): stream and payload."""
    found = []
    pos, size = 0, len(buffer)
    while size - pos >= 8:
        length = int.from_bytes(buffer[pos + 4 : pos + 8], "big")
        end = pos + 8 + length
        if end > size:
            break
        found.append((buffer[pos], bytes(buffer[pos + 8 : end])))
        pos = end
    del buffer[:pos]
    return found


_seconds: dict[bytes, int] = {}


def split_payload(payload: bytes) -> tuple[int, bytes]:
    """A frame's payload as its time (ns) and its text.

    The engine writes times with exactly nine decimals and ``Z``; the whole-second part
    is looked up in a small cache, since consecutive frames nearly always share it.
    """
    if len(payload) >= 31 and payload[19:20] == b"." and payload[29:31] == b"Z ":
        head = payload[:19]
        seconds = _seconds.get(head)
        if seconds is None:
            if len(_seconds) > 4096:
                _seconds.clear()
            seconds = _seconds[head] = parse_timestamp_ns(head.decode() + "Z") // 1_000_000_000
        return seconds * 1_000_000_000 + int(payload[20:29]), payload[31:]
    stamp, _, text = payload.partition(b" ")
    return parse_timestamp_ns(stamp.decode("ascii", errors="replace")), text
