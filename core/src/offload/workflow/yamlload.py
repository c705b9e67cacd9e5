"""YAML as Digdag reads a workflow file: a duplicate key is an error, and only what Digdag
takes for a boolean, a number or null is one.

PyYAML's safe loader follows YAML 1.1: ``yes``/``no``/``on``/``off`` are booleans,
``10:00:00`` is the integer 36000 (base 60) and ``2026-01-31`` a date, and a key written
twice silently keeps the last value. Digdag's loader keeps all of those as strings (only
``true``/``false`` are booleans) and refuses a duplicate key, so a workflow moved from
Digdag means the same here.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode


class DigdagLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with Digdag's implicit types and duplicate keys refused."""

    yaml_implicit_resolvers: dict[Any, Any] = {}

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
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
        return super().construct_mapping(node, deep=deep)


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
for _tag, _pattern, _first in _RESOLVERS:
    DigdagLoader.add_implicit_resolver(_tag, re.compile(_pattern, re.X), list(_first))


def load(text: str) -> Any:
    """The document in ``text``, read as Digdag reads it."""
    return yaml.load(text, Loader=DigdagLoader)  # a SafeLoader subclass: no arbitrary objects
