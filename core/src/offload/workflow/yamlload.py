"""YAML as Digdag reads a workflow file: a duplicate key is an error, and only what Digdag
takes for a boolean, a number or null is one.

PyYAML's safe loader follows YAML 1.1: ``yes``/``no``/``on``/``off`` are booleans,
``10:00:00`` is the integer 36000 (base 60) and ``2026-01-31`` a date, and a key written
twice silently keeps the last value. Digdag's loader keeps all of those as strings (only
``true``/``false`` are booleans) and refuses a duplicate key, so a workflow moved from
Digdag means the same here.

Digdag's ``!include : 'file.dig'`` key is replaced by the mapping in that file (relative to
the including file, inside the workflow's directory).
"""

from __future__ import annotations

import os
import re
from typing import Any

import yaml
import yaml.cyaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode

#: How deep ``!include`` may nest (a file that includes itself stops here).
MAX_INCLUDE_DEPTH = 20


class Include:
    """The key ``!include`` of a mapping (one object per key, so several may appear)."""


class _DigdagRules(yaml.constructor.SafeConstructor):
    """What a loader of Digdag's YAML adds to PyYAML's safe one: duplicate keys refused,
    ``!include`` replaced by the file's mapping."""

    #: the directory ``!include`` paths start from, the one they must stay in, and the depth
    base_dir: str | None = None
    root_dir: str | None = None
    depth: int = 0

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        mapping = self._construct_unique(node, deep)
        if not any(isinstance(key, Include) for key in mapping):
            return mapping
        out: dict[Any, Any] = {}
        for key, value in mapping.items():
            if not isinstance(key, Include):
                out[key] = value
                continue
            for included_key, included in self._include(value, node).items():
                if included_key in out or included_key in mapping:
                    raise ConstructorError(None, None, f"!include {value!r}: key {included_key!r} is also in the including mapping", node.start_mark)
                out[included_key] = included
        return out

    def _include(self, path: Any, node: MappingNode) -> dict[Any, Any]:
        if self.base_dir is None or self.root_dir is None:
            raise ConstructorError(None, None, "!include is only for workflow files", node.start_mark)
        if not isinstance(path, str) or not path:
            raise ConstructorError(None, None, f"!include needs a file name, got {path!r}", node.start_mark)
        target = os.path.normpath(os.path.join(self.base_dir, path))
        if os.path.commonpath([target, self.root_dir]) != self.root_dir:
            raise ConstructorError(None, None, f"!include {path!r} is outside the workflow's directory", node.start_mark)
        if self.depth >= MAX_INCLUDE_DEPTH:
            raise ConstructorError(None, None, f"!include {path!r}: nested more than {MAX_INCLUDE_DEPTH} deep (does a file include itself?)", node.start_mark)
        try:
            with open(target, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise ConstructorError(None, None, f"!include {path!r}: cannot read {target}: {getattr(e, 'strerror', None) or e}", node.start_mark) from None
        data = load(text, os.path.dirname(target), self.root_dir, self.depth + 1)
        if not isinstance(data, dict):
            raise ConstructorError(None, None, f"!include {path!r}: the file must hold a mapping", node.start_mark)
        return data

    def _construct_unique(self, node: MappingNode, deep: bool) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # an unhashable key: the base class says so
            line = key_node.start_mark.line + 1
            if first is not None:
                raise ConstructorError(None, None, f"duplicate key {key!r} (first at line {first}, again at line {line})", key_node.start_mark)
            seen[key] = line
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


_RESOLVERS = [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$", "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:merge", r"^(?:<<)$", ["<"]),
]


class DigdagLoader(_DigdagRules, yaml.SafeLoader):
    """``yaml.SafeLoader`` with Digdag's implicit types and duplicate keys refused."""

    yaml_implicit_resolvers: dict[Any, Any] = {}


def _fast_loader() -> Any:
    """:class:`DigdagLoader` on libyaml's parser (about ten times faster), when PyYAML has it."""
    parser: Any = getattr(yaml.cyaml, "CParser", None) if getattr(yaml, "__with_libyaml__", False) else None
    if parser is None:
        return None

    class FastDigdagLoader(_DigdagRules, parser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):  # type: ignore[misc]
        yaml_implicit_resolvers: dict[Any, Any] = {}

        def __init__(self, stream: str) -> None:  # as yaml.CSafeLoader's
            parser.__init__(self, stream)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

    return FastDigdagLoader


FastDigdagLoader: Any = _fast_loader()
for _loader in filter(None, (DigdagLoader, FastDigdagLoader)):
    for _tag, _pattern, _first in _RESOLVERS:
        _loader.add_implicit_resolver(_tag, re.compile(_pattern, re.X), list(_first))
    _loader.add_constructor("!include", lambda loader, node: Include())


def load(text: str, base_dir: str | None = None, root_dir: str | None = None, depth: int = 0) -> Any:
    """The document in ``text``, read as Digdag reads it; ``!include`` paths start at
    ``base_dir`` and stay inside ``root_dir`` (``base_dir`` when not given).

    Read with libyaml when PyYAML has it; a document libyaml finds malformed is read
    again by the pure-Python parser, whose messages say more (the character, not only
    the place)."""
    if FastDigdagLoader is not None:
        try:
            return _load(FastDigdagLoader, text, base_dir, root_dir, depth)
        except (yaml.scanner.ScannerError, yaml.parser.ParserError, yaml.composer.ComposerError, yaml.reader.ReaderError):
            pass
    return _load(DigdagLoader, text, base_dir, root_dir, depth)


def _load(cls: Any, text: str, base_dir: str | None, root_dir: str | None, depth: int) -> Any:
    loader = cls(text)  # safe constructors only: no arbitrary objects
    loader.base_dir = os.path.abspath(base_dir) if base_dir is not None else None
    loader.root_dir = os.path.abspath(root_dir or base_dir) if base_dir is not None else None
    loader.depth = depth
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
