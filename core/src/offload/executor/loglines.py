"""How every backend hands out log lines: one rule for a line too long to keep whole.

A backend hands out a line of at most :data:`MAX_LOG_LINE` bytes as it is; a longer one
in pieces of at most that size, each but the last ending with :data:`LOG_SPLIT_MARKER`,
and never cut inside a UTF-8 character (:func:`utf8_boundary`). So a user reads the same
marker whichever backend ran the task, and a tool can join the pieces again.
"""

from __future__ import annotations

#: The longest line, in bytes, a backend hands out whole.
MAX_LOG_LINE = 1 << 20

#: Ends each piece of a split line but the last.
LOG_SPLIT_MARKER = " [offload: line over 1 MiB split; continues on the next line]"


def utf8_boundary(data: bytes) -> int:
    """The length of the longest prefix of ``data`` that does not end inside a UTF-8 character.

    Bytes that are not UTF-8 are cut anywhere (they decode to replacement characters anyway).
    """
    n = len(data)
    for back in range(1, min(4, n) + 1):
        byte = data[n - back]
        if byte & 0xC0 == 0x80:
            continue  # a continuation byte: look further back for the lead byte
        return n if back >= _sequence_length(byte) else n - back
    return n


def _sequence_length(lead: int) -> int:
    if 0xC0 <= lead < 0xE0:
        return 2
    if 0xE0 <= lead < 0xF0:
        return 3
    if 0xF0 <= lead < 0xF8:
        return 4
    return 1
