"""Reading a task's log in bounded steps, without losing or cutting a line.

Each poll reads at most :data:`MAX_READ` (+ 1) bytes of each task's log, so one chatty task
cannot stall the poll loop; the cursor (a byte offset) lives in the task's handle.
A line is only handed out once its newline is there, except:

- a line longer than :data:`MAX_READ` is handed out in pieces of at most that size,
  each piece but the last ending with :data:`SPLIT_MARKER` (a piece never ends inside
  a UTF-8 character);
- once the task has finished, the last line is handed out even without a newline.

When the task has finished, the poll loop keeps reading until the log is drained up to
the size it had at that moment (``end``); only then does the task count as finished.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from offload import LOG_SPLIT_MARKER as SPLIT_MARKER
from offload import MAX_LOG_LINE, utf8_boundary

#: About this many bytes of one task's log are read per poll (one more, to see whether a
#: line of exactly this length ends there): the longest line handed out whole.
MAX_READ = MAX_LOG_LINE


class LogChunk(NamedTuple):
    """What one read found: the lines, the offset after them, and whether ``end`` was reached."""

    lines: tuple[str, ...]
    offset: int
    drained: bool


def size(log_path: str) -> int:
    """The current size of the log; 0 when the task wrote none."""
    try:
        return os.stat(log_path).st_size
    except FileNotFoundError:
        return 0


def read(log_path: str, offset: int, end: int | None = None) -> LogChunk:
    """The log lines after ``offset``, from one read of at most :data:`MAX_READ` + 1 bytes.

    :param end: the size of the log when the task finished, or ``None`` while it runs:
        bytes after ``end`` are never read, and the last line before it is complete.
    :return: ``drained`` says whether everything up to ``end`` was handed out (while
        the task runs: whether everything there was fitted in this read).
    """
    if end is None and size(log_path) <= offset:
        return LogChunk((), offset, True)  # nothing new: one stat, no open
    return _read(log_path, offset, end, final=False)[0]


def read_final(log_path: str, offset: int) -> tuple[LogChunk, int]:
    """The task has just been seen finished: its log's size now is its end (``log_end``);
    the first read towards it, and that end."""
    return _read(log_path, offset, None, final=True)


def _read(log_path: str, offset: int, end: int | None, final: bool) -> tuple[LogChunk, int]:
    try:
        fd = os.open(log_path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return LogChunk((), offset, True), 0
    try:
        now = os.fstat(fd).st_size
        if final:
            end = now
        limit = now if end is None else end
        if offset >= limit:
            return LogChunk((), offset, True), limit
        wanted = min(MAX_READ + 1, limit - offset)  # one more: is a line of exactly MAX_READ complete?
        data = os.pread(fd, wanted, offset)
    finally:
        os.close(fd)
    if end is None:
        lines, used = _lines(data, at_end=False)
        return LogChunk(lines, offset + used, limit - offset - used <= MAX_READ), limit
    at_end = len(data) < wanted or offset + len(data) >= end  # shorter: the file was truncated
    lines, used = _lines(data, at_end)
    return LogChunk(lines, offset + used, at_end and used == len(data)), end


def _lines(data: bytes, at_end: bool) -> tuple[tuple[str, ...], int]:
    """The lines in ``data`` and how many of its bytes they used (at most :data:`MAX_READ` + 1)."""
    if at_end and len(data) <= MAX_READ:
        return _decode(data), len(data)
    newline = data.rfind(b"\n")
    if newline >= 0:
        return _decode(data[: newline + 1]), newline + 1
    if len(data) <= MAX_READ:
        return (), 0  # a line still being written: wait for its newline
    cut = utf8_boundary(data[:MAX_READ])
    return (data[:cut].decode("utf-8", errors="replace") + SPLIT_MARKER,), cut


def _decode(data: bytes) -> tuple[str, ...]:
    """Lines split on ``\\n`` only (a ``\\r`` inside a line stays; ``\\r\\n`` ends one)."""
    if not data:
        return ()
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n")
    if text.endswith("\n"):
        text = text[:-1]
    return tuple(text.split("\n"))
