"""Digdag's Java ``.properties`` config: parsing, and turning dotted keys into a tree.

``agent.command_executor.ecs.name = digdag-test`` becomes
``{"command_executor": {"ecs": {"name": "digdag-test"}}}``. Keys outside
``agent.command_executor.`` (a Digdag server config holds many) are ignored.
"""

from __future__ import annotations

from typing import Any

from offload.models import Problem

_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
PREFIXES = ("agent.command_executor.", "command_executor.")


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Physical lines joined where one ends in an odd number of backslashes."""
    lines: list[tuple[int, str]] = []
    buffer = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.lstrip()
        if not buffer:
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
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "u" and i + 6 <= len(text):
                try:
                    out.append(chr(int(text[i + 2 : i + 6], 16)))
                    i += 6
                    continue
                except ValueError:
                    pass
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def parse_properties(text: str) -> list[tuple[int, str, str]]:
    """``(line number, key, value)`` for each entry, as java.util.Properties reads them."""
    entries = []
    for number, line in _logical_lines(text):
        i = 0
        while i < len(line):
            ch = line[i]
            if ch == "\\":
                i += 2
                continue
            if ch in "=: \t\f":
                break
            i += 1
        key = line[:i]
        rest = line[i:].lstrip(" \t\f")
        if rest[:1] in ("=", ":"):
            rest = rest[1:].lstrip(" \t\f")
        entries.append((number, _unescape(key), _unescape(rest)))
    return entries


def properties_to_tree(entries: list[tuple[int, str, str]], source: str) -> tuple[dict[str, Any], list[Problem]]:
    """Nest the ``command_executor`` entries by their dotted keys."""
    tree: dict[str, Any] = {}
    problems: list[Problem] = []
    for number, key, value in entries:
        prefix = next((p for p in PREFIXES if key.startswith(p)), None)
        if prefix is None:
            continue
        parts = ["command_executor", *key[len(prefix) :].split(".")]
        where = f"{source}:{number}: {key}"
        if any(not part for part in parts):
            problems.append(Problem(where, "empty key segment", fatal=True))
            continue
        node = tree
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                problems.append(Problem(where, f"conflicts with the value already given to {part!r}", fatal=True))
                break
            node = child
        else:
            if isinstance(node.get(parts[-1]), dict):
                problems.append(Problem(where, "conflicts with keys nested under it", fatal=True))
            else:
                node[parts[-1]] = value
    return tree, problems
