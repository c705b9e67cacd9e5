"""Building the plugin manager: specs, built-ins, entry points, disabled plugins.

Built by :func:`make_plugin_manager`, never at import, so that importing ``offload``
stays cheap and tests can build managers with exactly the plugins they want.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterable
from typing import Any

import attrs
import pluggy

from offload import _builtin, hookspecs
from offload.backend import Backend, BackendRegistry

ENTRY_POINT_GROUP = "offload.backends"
DISABLE_ENV = "OFFLOAD_DISABLE_PLUGINS"


@attrs.frozen
class PluginLoadError:
    """A plugin that could not be loaded: its entry-point name, distribution and why."""

    name: str
    distribution: str
    error: str

    def __str__(self) -> str:
        return f"plugin {self.name!r} ({self.distribution}) failed to load: {self.error}"


@attrs.frozen
class PluginInfo:
    """What ``offload plugins`` shows of one registered plugin."""

    name: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]
    backends: tuple[str, ...]


class OffloadPluginManager(pluggy.PluginManager):
    """A pluggy manager that also keeps the backend registry and load failures."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.load_errors: list[PluginLoadError] = []
        self.backends = BackendRegistry()
        self.disabled: set[str] = set()
        #: plugin name -> (distribution name, version), for plugins loaded from entry points
        self.distributions: dict[str, tuple[str, str]] = {}

    def collect_backends(self) -> BackendRegistry:
        """Ask every plugin to register its backends (once per manager)."""
        registry = BackendRegistry()
        for impl in self.hook.offload_register_backends.get_hookimpls():
            origin = self.get_name(impl.plugin) or repr(impl.plugin)

            def register(cls: type[Backend], _origin: str = origin) -> None:
                registry.register(cls, _origin)

            impl.function(register=register)
        self.backends = registry
        return registry

    def plugin_infos(self) -> list[PluginInfo]:
        infos = []
        for name, plugin in sorted(self.list_name_plugin(), key=lambda item: str(item[0])):
            if plugin is None or name is None:
                continue
            hooks = tuple(sorted(caller.name for caller in self.get_hookcallers(plugin) or []))
            backends = tuple(n for n in self.backends.names() if self.backends.origin(n) == name)
            dist_name, version = self.distributions.get(name, (None, None))
            if name == "offload.builtin":
                from offload import __version__

                dist_name, version = "offload", __version__
            infos.append(PluginInfo(name, dist_name, version, hooks, backends))
        return infos


def disabled_from_env(environ: dict[str, str] | None = None) -> set[str]:
    """Plugin names listed in ``OFFLOAD_DISABLE_PLUGINS`` (comma or space separated)."""
    raw = (environ if environ is not None else os.environ).get(DISABLE_ENV, "")
    return {part.strip() for part in raw.replace(",", " ").split() if part.strip()}


def make_plugin_manager(
    plugins: Iterable[Any] = (),
    *,
    load_entry_points: bool = True,
    disabled: Iterable[str] | None = None,
) -> OffloadPluginManager:
    """A ready plugin manager with its backends registered.

    :param plugins: extra plugin objects (modules or instances) to register, as
        ``(name, plugin)`` pairs or bare objects.
    :param load_entry_points: load the ``offload.backends`` entry points.
    :param disabled: entry-point names not to load; default from ``OFFLOAD_DISABLE_PLUGINS``.

    A plugin that fails to import is recorded in ``load_errors`` with its name and
    distribution; the others still load.
    """
    pm = OffloadPluginManager()
    pm.add_hookspecs(hookspecs)
    pm.disabled = set(disabled) if disabled is not None else disabled_from_env()
    pm.register(_builtin, name="offload.builtin")
    if load_entry_points:
        _load_entry_points(pm)
    for item in plugins:
        if isinstance(item, tuple):
            name, plugin = item
            pm.register(plugin, name=name)
        else:
            pm.register(item)
    pm.check_pending()
    pm.collect_backends()
    return pm


def _load_entry_points(pm: OffloadPluginManager) -> None:
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in pm.disabled or pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        dist = ep.dist
        dist_name = dist.metadata["Name"] if dist is not None else "?"
        try:
            plugin = ep.load()
        except Exception as e:  # noqa: BLE001 - any import failure is reported, the rest load
            pm.load_errors.append(PluginLoadError(ep.name, dist_name, f"{type(e).__name__}: {e}"))
            continue
        pm.register(plugin, name=ep.name)
        if dist is not None:
            pm.distributions[ep.name] = (dist_name, dist.version)
