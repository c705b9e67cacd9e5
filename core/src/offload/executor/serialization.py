"""The one cattrs converter for every model, and JSON helpers around it."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from offload.executor.models import TaskRequest

converter = cattrs.Converter(forbid_extra_keys=True)
# A request's parsed settings belong to one process: a reader parses executor_config again.
# The hooks are made when a request is first (un)structured, not at import: most runs never do.
converter.register_unstructure_hook_factory(
    lambda cls: cls is TaskRequest, lambda cls: make_dict_unstructure_fn(TaskRequest, converter, settings=override(omit=True))
)
converter.register_structure_hook_factory(
    lambda cls: cls is TaskRequest,
    lambda cls: make_dict_structure_fn(TaskRequest, converter, _cattrs_forbid_extra_keys=True, settings=override(omit=True)),
)

T = TypeVar("T")


def to_dict(obj: Any) -> Any:
    """Unstructure a model (or a container of models) into JSON-able values."""
    return converter.unstructure(obj)


def from_dict(data: Any, cls: type[T]) -> T:
    """Structure JSON-able ``data`` into ``cls``; raises ``cattrs`` errors on bad data."""
    return converter.structure(data, cls)


def to_json(obj: Any) -> str:
    """A model (a :class:`Handle`, a :class:`Result`...) as compact JSON, to keep or send."""
    return json.dumps(to_dict(obj), sort_keys=True, separators=(",", ":"))


def from_json(text: str, cls: type[T]) -> T:
    """The model of type ``cls`` that :func:`to_json` wrote."""
    return from_dict(json.loads(text), cls)
