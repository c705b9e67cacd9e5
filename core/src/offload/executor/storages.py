"""The storages of one run: a backend's storage section parsed, and the storage opened.

A backend hands the core a section in Digdag's shape and gets a :class:`StorageConfig`
back (at config time, so every wrong key is reported before anything runs), then opens
it when it needs it::

    temporal_storage:          # ECS; Kubernetes has config_storage.in / .out
      type: s3                 # the storage's name
      s3: {bucket: my-bucket}  # its keys, parsed by the storage plugin
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from offload.executor.config import STORAGE_INSTALL_HINTS
from offload.executor.errors import ConfigError
from offload.executor.models import Problem
from offload.executor.registry import Registry
from offload.executor.storage import Storage, StorageConfig


def _merged(defaults: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` over ``defaults``, mapping by mapping (a key in ``values`` wins)."""
    out = dict(defaults)
    for key, value in values.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


class Storages:
    """Parses storage sections with the registered storage classes and opens them once each."""

    def __init__(self, registry: Registry[type[Storage]] | None = None, disabled: frozenset[str] = frozenset()) -> None:
        self.registry: Registry[type[Storage]] = registry if registry is not None else Registry("storage")
        self.disabled = disabled
        #: every section parsed so far, by where it was written: what ``offload check`` reports
        self.configured: dict[str, StorageConfig] = {}
        self._open: dict[str, Storage] = {}

    def _known(self) -> list[str]:
        return sorted(set(self.registry.names()) | set(STORAGE_INSTALL_HINTS))

    def _unavailable(self, name: str) -> str:
        if name in self.disabled:
            return f"the {name} storage is disabled by OFFLOAD_DISABLE_PLUGINS"
        dist = STORAGE_INSTALL_HINTS.get(name)
        if dist:
            return f"the {name} storage is not installed (pip install {dist})"
        return f"unknown storage type {name!r} (known: {', '.join(self._known())})"

    def parse(
        self, section: Any, where: str, defaults: Mapping[str, Mapping[str, Any]] | None = None
    ) -> tuple[StorageConfig | None, list[Problem]]:
        """The storage ``section`` names, with its keys parsed by the storage's plugin.

        :param section: ``{type: NAME, NAME: {...keys}}``; ``type`` may be left out when
            the section has one storage's keys only. Sections of other storages are ignored
            (as Digdag ignores them); any other key is an error.
        :param where: the section's key path, for messages (``"offload.yml: command_executor.ecs.temporal_storage"``).
        :param defaults: per storage name, keys to use where the section has none (ECS
            passes its cluster's AWS credentials and endpoint for ``s3``).
        :return: the parsed config, or ``None`` with every problem (all fatal).
        """
        if not isinstance(section, Mapping):
            return None, [Problem(where, "must be a mapping with type and that storage's keys", fatal=True)]
        name = section.get("type")
        if name is None:
            others = [str(k) for k in section]
            if len(others) != 1:
                return None, [Problem(f"{where}.type", f"required: the storage to use (known: {', '.join(self._known())})", fatal=True)]
            name = others[0]
        if not isinstance(name, str) or not name.strip():
            return None, [Problem(f"{where}.type", f"must be a storage name, got {name!r}", fatal=True)]
        name = name.strip()
        problems = [
            Problem(f"{where}.{key}", f"unknown key (known keys: type, {', '.join(self._known())})", fatal=True)
            for key in sorted(str(k) for k in section)
            if key != "type" and key not in self._known()
        ]
        cls = self.registry.get(name)
        if cls is None:
            return None, [*problems, Problem(f"{where}.type", self._unavailable(name), fatal=True)]
        values = section.get(name)
        if values is None:
            values = {}
        if not isinstance(values, Mapping):
            return None, [*problems, Problem(f"{where}.{name}", "must be a mapping", fatal=True)]
        if defaults and isinstance(defaults.get(name), Mapping):
            values = _merged(defaults[name], values)
        config, found = cls.parse_config(values, f"{where}.{name}")
        problems += found
        if problems or config is None:
            return None, problems
        parsed = StorageConfig(name, config, where)
        self.configured[where] = parsed
        return parsed, []

    def open(self, config: StorageConfig) -> Storage:
        """The storage ``config`` describes: one instance per section for the run."""
        storage = self._open.get(config.where)
        if storage is None:
            cls = self.registry.get(config.type)
            if cls is None:  # the config was parsed with another registry
                raise ConfigError([Problem(f"{config.where}.type", self._unavailable(config.type), fatal=True)])
            storage = self._open[config.where] = cls(config.config)
        return storage

    def close(self) -> None:
        for storage in self._open.values():
            storage.close()
        self._open.clear()
