"""The one cattrs converter for every model, and JSON helpers around it."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import cattrs

converter = cattrs.Converter(forbid_extra_keys=True)

T = TypeVar("T")


def to_dict(obj: Any) -> Any:
    """Unstructure a model (or a container of models) into JSON-able values."""
    return converter.unstructure(obj)


def from_dict(data: Any, cls: type[T]) -> T:
    """Structure JSON-able ``data`` into ``cls``; raises ``cattrs`` errors on bad data."""
    return converter.structure(data, cls)


def to_json(obj: Any) -> str:
    return json.dumps(to_dict(obj), sort_keys=True, separators=(",", ":"))


def from_json(text: str, cls: type[T]) -> T:
    return from_dict(json.loads(text), cls)
