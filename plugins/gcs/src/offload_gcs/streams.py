"""A file object as google-cloud-storage's uploads want it.

A resumable upload (anything over 8 MiB, or of unknown size) insists that the stream
start at position 0, and seeks back in it when GCS kept only part of a chunk. offload's
contract only says "a binary file open for reading", at whatever position: the bytes
from there on are what is stored. :class:`FromHere` shows a seekable file as if it
started where it is; a stream that cannot seek (a pipe) is read whole into memory.
"""

from __future__ import annotations

import os
import stat
from typing import IO


class FromHere:
    """``f`` seen from its current position on: ``tell()`` is 0 there, and ``seek`` is relative to it."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self._start = f.tell()

    def read(self, size: int = -1) -> bytes:
        return self._f.read(size)

    def tell(self) -> int:
        return self._f.tell() - self._start

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            return self._f.seek(self._start + max(0, offset)) - self._start
        return max(0, self._f.seek(offset, whence) - self._start)

    def seekable(self) -> bool:
        return True


def upload_source(f: IO[bytes]) -> tuple[FromHere | bytes, int | None]:
    """What to upload from ``f``: a seekable view with its size when known, else its bytes."""
    try:
        seekable = f.seekable() and f.tell() >= 0
    except (AttributeError, OSError, ValueError):
        seekable = False
    if not seekable:
        return f.read(), None
    view = FromHere(f)
    return view, _remaining(f)


def _remaining(f: IO[bytes]) -> int | None:
    """Bytes left in ``f`` when it is a regular file (a small one is then sent in one request)."""
    try:
        st = os.fstat(f.fileno())
    except (AttributeError, OSError, ValueError):  # not a real file (BytesIO)
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return max(0, st.st_size - f.tell())
