"""Task keys: the part of a task id and io directory that names the task.

A task name (``+flow+load_data``) may hold any character, but a key must be safe in a
file name, a container name and a tag. The encoding is injective, so two different
names never share a key (hence never an io directory, a container or a journal row):
letters, digits and ``-`` stay as they are, ``+`` becomes ``.``, and every other
character becomes ``_`` plus the hex of its UTF-8 bytes (``_`` itself is ``_5f``).
The leading ``+`` that every task name has is dropped. A key longer than
:data:`MAX_LITERAL` is cut and ends with a hash of the whole name; since every such
key is longer than any literal key, the two kinds cannot meet.
"""

from __future__ import annotations

import hashlib

MAX_LITERAL = 120
_KEPT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")


def task_key(name: str) -> str:
    """The key of task ``name``: stable across runs and different for different names."""
    if not name.startswith("+"):
        raise ValueError(f"task names start with '+', got {name!r}")
    out = []
    for char in name[1:]:
        if char in _KEPT:
            out.append(char)
        elif char == "+":
            out.append(".")
        else:
            out.append("".join(f"_{byte:02x}" for byte in char.encode("utf-8")))
    key = "".join(out)
    if len(key) <= MAX_LITERAL:
        return key
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:24]
    return f"{key[: MAX_LITERAL - 24]}--{digest}"
