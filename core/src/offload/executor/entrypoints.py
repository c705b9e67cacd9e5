"""The entry points of a group, found without importing :mod:`importlib.metadata`.

Importing :mod:`importlib.metadata` (the ``email`` package, ``zipfile``, ``csv``...)
costs tens of milliseconds, far more than reading the entry points, and every
``offload`` command would pay it. Where ``sys.path`` holds only directories and the
standard path finder is the only finder of distributions (a virtualenv, the system or
user site, editable installs), :func:`entry_points` reads the ``entry_points.txt`` of
each ``*.dist-info`` and ``*.egg-info`` directory itself, in the order
:mod:`importlib.metadata` reads them, keeping only the first distribution of each name
as it does. Anything else (a zip file or an egg on ``sys.path``, another finder of
distributions, an odd ``.DIST-INFO``) is left to :mod:`importlib.metadata`, and so is
every lookup once that module is loaded: it costs nothing more then (and tests replace
its ``entry_points``).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from importlib import import_module
from importlib.machinery import PathFinder
from typing import Any

#: What ``importlib.metadata.EntryPoint`` accepts as a value (``module:attr [extras]``).
_VALUE = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$")
_INFO_SUFFIXES = (".dist-info", ".egg-info")
#: The errors ``importlib.metadata`` takes for "no such file" when it reads a distribution's file.
_UNREADABLE = (FileNotFoundError, IsADirectoryError, KeyError, NotADirectoryError, PermissionError)


class EntryPoint:
    """One entry point: its ``name``, and how to load it and name its distribution."""

    __slots__ = ("_distribution", "_load", "name", "value")

    def __init__(self, name: str, value: str, load: Callable[[], Any], distribution: Callable[[], tuple[str, str]]) -> None:
        self.name = name
        self.value = value
        self._load = load
        self._distribution = distribution

    def load(self) -> Any:
        """Import the entry point's module and return the object it names."""
        return self._load()

    def distribution(self) -> tuple[str, str]:
        """The name and version of the distribution that declares it (``"?"`` when unknown)."""
        return self._distribution()

    def __repr__(self) -> str:
        return f"EntryPoint(name={self.name!r}, value={self.value!r})"


def entry_points(group: str) -> list[EntryPoint]:
    """The entry points of ``group`` of the installed distributions, as
    ``importlib.metadata.entry_points(group=group)`` lists them."""
    if "importlib.metadata" not in sys.modules:
        found = scan(group)
        if found is not None:
            return found
    return from_importlib(group)


def from_importlib(group: str) -> list[EntryPoint]:
    """The entry points of ``group`` through :mod:`importlib.metadata`."""
    import importlib.metadata

    def distribution_of(ep: importlib.metadata.EntryPoint) -> Callable[[], tuple[str, str]]:
        def named() -> tuple[str, str]:
            dist = ep.dist
            return (dist.metadata["Name"], dist.version) if dist is not None else ("?", "?")

        return named

    return [EntryPoint(ep.name, ep.value, ep.load, distribution_of(ep)) for ep in importlib.metadata.entry_points(group=group)]


def scan(group: str) -> list[EntryPoint] | None:
    """The entry points of ``group`` read from the ``sys.path`` directories, or ``None``
    when ``sys.path`` or the finders hold anything this scan does not read."""
    if any(getattr(finder, "find_distributions", None) is not None and finder is not PathFinder for finder in sys.meta_path):
        return None
    infos = _distribution_dirs()
    if infos is None:
        return None
    found: list[EntryPoint] = []
    for path in infos:
        text = _read(path, "entry_points.txt")
        if text and f"[{group}]" in text:
            found += [_entry_point(name, value, group, path) for name, value in _pairs(text, group)]
    return found


def _normalize(name: str) -> str:
    """``importlib.metadata.Prepared.normalize``: PEP 503, with underscores."""
    return re.sub(r"[-_.]+", "-", name).lower().replace("-", "_")


def _distribution_dirs() -> list[str] | None:
    """Every distribution's metadata directory on ``sys.path``, first of each name only,
    in ``importlib.metadata``'s order; ``None`` when a path entry is not a plain directory."""
    seen: set[str] = set()
    dirs: list[str] = []
    entries: list[object] = list(sys.path)  # str, in practice
    for entry in entries:
        if not isinstance(entry, str):
            return None
        root = entry or "."
        if os.path.basename(entry).lower().endswith(".egg"):
            return None  # an egg: its EGG-INFO is found another way
        try:
            children = os.listdir(root)
        except OSError:
            if os.path.exists(root):
                return None  # a zip file, or a directory it cannot list: importlib.metadata knows what to do
            continue
        by_name: dict[str, list[str]] = {}
        for child in children:
            low = child.lower()
            if not low.endswith(_INFO_SUFFIXES):
                continue
            if not child.endswith(_INFO_SUFFIXES):
                return None  # ".DIST-INFO": importlib.metadata names it from its metadata instead
            name = _normalize(low.rpartition(".")[0].partition("-")[0])
            by_name.setdefault(name, []).append(os.path.join(entry, child))
        for name, paths in by_name.items():
            for path in paths:
                if name not in seen:
                    seen.add(name)
                    dirs.append(path)
    return dirs


def _read(path: str, filename: str) -> str | None:
    try:
        with open(os.path.join(path, filename), encoding="utf-8") as f:
            return f.read()
    except _UNREADABLE:
        return None


def _pairs(text: str, group: str) -> list[tuple[str, str]]:
    """``name = value`` lines of section ``group`` (``importlib.metadata.Sectioned``'s rules)."""
    pairs = []
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line.strip("[]")
            continue
        if section == group:
            name, value = line.split("=", 1)
            pairs.append((name.strip(), value.strip()))
    return pairs


def _entry_point(name: str, value: str, group: str, path: str) -> EntryPoint:
    def load() -> Any:
        match = _VALUE.match(value)
        if match is None:  # let importlib.metadata say what it says of it
            import importlib.metadata

            return importlib.metadata.EntryPoint(name, value, group).load()
        obj: Any = import_module(match.group("module"))
        for attr in filter(None, (match.group("attr") or "").split(".")):
            obj = getattr(obj, attr)
        return obj

    return EntryPoint(name, value, load, lambda: _name_and_version(path))


def _name_and_version(path: str) -> tuple[str, str]:
    """``Name`` and ``Version`` from the headers of the distribution's metadata file."""
    text = _read(path, "METADATA") or _read(path, "PKG-INFO") or ""
    headers: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the headers end at the first empty line; the description follows
        key, sep, value = line.partition(":")
        if sep and not line[:1].isspace():
            headers.setdefault(key.strip().lower(), value.strip())
    return headers.get("name", "?"), headers.get("version", "?")
