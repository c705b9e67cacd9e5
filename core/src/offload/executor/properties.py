"""Digdag's Java ``.properties`` config: parsing, and turning dotted keys into a tree.

``agent.command_executor.ecs.name = digdag-test`` becomes
``{"command_executor": {"ecs": {"name": "digdag-test"}}}``. Keys outside
``agent.command_executor.`` (a Digdag server config holds many) are ignored.
"""

from __future__ import annotations

import re
from typing import Any

from offload.executor.errors import ConfigError
from offload.executor.models import Problem

_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
PREFIXES = ("agent.command_executor.", "command_executor.")


#: java.util.Properties ends lines at \n, \r or \r\n only (not at \f, \v or U+2028)
_LINE_END = re.compile(r"\r\n|\r|\n")
#: ... and its whitespace is space, tab and form feed only
_BLANK = " \t\f"
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Physical lines joined where one ends in an odd number of backslashes."""
    lines: list[tuple[int, str]] = []
    buffer = ""
    start = 0
    for number, raw in enumerate(_LINE_END.split(text), start=1):
        line = raw.lstrip(_BLANK)
        if not buffer:  # a new logical line (Java: nothing read yet)
            start = number
            if not line or line[0] in "#!":
                continue
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:
            buffer += line[:-1]
            continue
        lines.append((start, buffer + line))
        buffer = ""
    if buffer:
        lines.append((start, buffer))
    return lines


def _unescape(text: str) -> str:
    """``text`` with Java's escapes replaced; raises ``ValueError`` on a malformed ``\\uXXXX``."""
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "u":
                digits = text[i + 2 : i + 6]
                if not _HEX4.fullmatch(digits):
                    raise ValueError(f"malformed \\uXXXX escape: {text[i : i + 6]!r}")
                out.append(chr(int(digits, 16)))
                i += 6
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def parse_properties(text: str, source: str = "") -> list[tuple[int, str, str]]:
    """``(line number, key, value)`` for each entry, as java.util.Properties reads them.

    A malformed ``\\uXXXX`` escape (an error for Java too) raises :class:`ConfigError`
    naming ``source``, the line and the escape; every such line is reported at once.
    """
    entries = []
    problems = []
    for number, line in _logical_lines(text):
        i = 0
        while i < len(line):
            ch = line[i]
            if ch == "\\":
                i += 2
                continue
            if ch in "=:" or ch in _BLANK:
                break
            i += 1
        key = line[:i]
        rest = line[i:].lstrip(_BLANK)
        if rest[:1] in ("=", ":"):
            rest = rest[1:].lstrip(_BLANK)
        try:
            entries.append((number, _unescape(key), _unescape(rest)))
        except ValueError as e:
            problems.append(Problem(f"{source}:{number}" if source else f"line {number}", str(e), fatal=True))
    if problems:
        raise ConfigError(problems)
    return entries


def properties_to_tree(entries: list[tuple[int, str, str]], source: str) -> tuple[dict[str, Any], list[Problem]]:
    """Nest the ``command_executor`` entries by their dotted keys.

    A key that is both a value and the parent of other keys (``a.b = 1`` and
    ``a.b.c = 2``) is reported with both lines. A key given twice keeps its last value,
    as in Java.
    """
    tree: dict[str, Any] = {}
    problems: list[Problem] = []
    #: key path -> (line, key) of the entry that first made it (a value or a parent)
    origin: dict[tuple[str, ...], tuple[int, str]] = {}
    for number, key, value in entries:
        prefix = next((p for p in PREFIXES if key.startswith(p)), None)
        if prefix is None:
            continue
        parts = ("command_executor", *key[len(prefix) :].split("."))
        where = f"{source}:{number}: {key}"
        if any(not part for part in parts):
            problems.append(Problem(where, "empty key segment", fatal=True))
            continue
        node = tree
        for depth, part in enumerate(parts[:-1], start=1):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                line, other = origin[parts[:depth]]
                problems.append(Problem(where, f"conflicts with {other!r} on line {line}, which gives it a value", fatal=True))
                break
            origin.setdefault(parts[:depth], (number, key))
            node = child
        else:
            if isinstance(node.get(parts[-1]), dict):
                line, other = origin[parts]
                problems.append(Problem(where, f"conflicts with {other!r} on line {line}, which puts keys under it", fatal=True))
            else:
                node[parts[-1]] = value
                origin.setdefault(parts, (number, key))
    return tree, problems
