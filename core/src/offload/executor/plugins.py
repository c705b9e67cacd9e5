"""Building the plugin manager: specs, built-ins, entry points, disabled plugins.

Built by :func:`make_plugin_manager`, never at import, so that importing ``offload``
stays cheap and tests can build managers with exactly the plugins they want.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import attrs
import pluggy

from offload.executor import builtin as _builtin
from offload.executor import hookspecs
from offload.executor.backend import Backend
from offload.executor.entrypoints import entry_points
from offload.executor.errors import PluginError
from offload.executor.registry import Registry
from offload.executor.storage import Storage

ENTRY_POINT_GROUP = "offload.backends"
DISABLE_ENV = "OFFLOAD_DISABLE_PLUGINS"
#: A project's own plugin, without packaging (as tox's ``toxfile.py``): beside the workflow.
PROJECT_PLUGIN_FILE = "offload_plugins.py"


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
    storages: tuple[str, ...] = ()


class OffloadPluginManager(pluggy.PluginManager):
    """A pluggy manager that also keeps the backend and storage registries and load failures."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.load_errors: list[PluginLoadError] = []
        self.backends: Registry[type[Backend]] = Registry("backend")
        self.storages: Registry[type[Storage]] = Registry("storage")
        self.disabled: set[str] = set()
        #: plugin name -> (distribution name, version), for plugins loaded from entry points
        self.distributions: dict[str, tuple[str, str]] = {}
        #: plugin name -> path, for a project's own ``offload_plugins.py``
        self.project_files: dict[str, str] = {}

    def collect_backends(self) -> Registry[type[Backend]]:
        """Ask every plugin to register its backends (once per manager); see :meth:`_collect`."""
        self.backends = self._collect(self.hook.offload_register_backends, Registry("backend"))
        return self.backends

    def collect_storages(self) -> Registry[type[Storage]]:
        """Ask every plugin to register its storages (once per manager); see :meth:`_collect`."""
        self.storages = self._collect(self.hook.offload_register_storages, Registry("storage"))
        return self.storages

    def _collect(self, caller: Any, registry: Registry[Any]) -> Registry[Any]:
        """Call a ``register`` hook of every plugin and fill ``registry``.

        A plugin loaded from an entry point whose registration fails is unregistered and
        recorded in ``load_errors``; the others still register. Two different classes
        under one name raise :class:`PluginError` naming both.
        """
        kind = registry.kind
        for impl in caller.get_hookimpls():
            origin = self.get_name(impl.plugin) or repr(impl.plugin)
            mine: list[type] = []

            def register(cls: type, _origin: str = origin, _mine: list[type] = mine) -> None:
                name = getattr(cls, "name", None)
                other = registry.get(name) if isinstance(name, str) else None
                if isinstance(name, str) and other is not None and other is not cls:
                    raise PluginError(
                        f"{kind} {name!r} is registered twice: by plugin {registry.origin(name)!r} "
                        f"({_qualname(other)}) and by plugin {_origin!r} ({_qualname(cls)})"
                    )
                _mine.append(cls)

            try:
                impl.function(register=register)
            except PluginError:
                raise
            except Exception as e:  # a broken plugin is reported, the rest load
                if origin not in self.distributions:
                    raise
                self._drop(origin, impl.plugin, f"{caller.name} failed: {type(e).__name__}: {e}")
                continue
            for cls in mine:
                registry.register(cls, origin)
        return registry

    def _drop(self, name: str, plugin: object, error: str) -> None:
        """Unregister a broken entry-point plugin and record why."""
        dist_name = self.distributions.pop(name, ("?", ""))[0]
        self.load_errors.append(PluginLoadError(name, dist_name, error))
        self.unregister(plugin, name=name)

    def plugin_infos(self) -> list[PluginInfo]:
        infos = []
        for name, plugin in sorted(self.list_name_plugin(), key=lambda item: str(item[0])):
            if plugin is None or name is None:
                continue
            hooks = tuple(sorted(caller.name for caller in self.get_hookcallers(plugin) or []))
            backends = tuple(n for n in self.backends.names() if self.backends.origin(n) == name)
            storages = tuple(n for n in self.storages.names() if self.storages.origin(n) == name)
            dist_name, version = self.distributions.get(name, (None, None))
            if name == "offload.builtin":
                from offload import __version__

                dist_name, version = "offload", __version__
            elif name in self.project_files:
                dist_name, version = self.project_files[name], None
            infos.append(PluginInfo(name, dist_name, version, hooks, backends, storages))
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
    project_dir: str | None = None,
) -> OffloadPluginManager:
    """A ready plugin manager with its backends and storages registered.

    :param plugins: extra plugin objects (modules or instances) to register, as
        ``(name, plugin)`` pairs or bare objects.
    :param load_entry_points: load the ``offload.backends`` entry points.
    :param disabled: entry-point names not to load; default from ``OFFLOAD_DISABLE_PLUGINS``.
    :param project_dir: load ``offload_plugins.py`` from this directory when it is there: a
        project's own hooks (a site policy, a backend) without packaging. An error in it
        is a :class:`offload.UsageError` naming the file and line.

    A plugin that fails to import is recorded in ``load_errors`` with its name and
    distribution; the others still load.
    """
    pm = OffloadPluginManager()
    pm.add_hookspecs(hookspecs)
    pm.disabled = set(disabled) if disabled is not None else disabled_from_env()
    pm.register(_builtin, name="offload.builtin")
    if load_entry_points:
        _load_entry_points(pm)
    if project_dir is not None:
        _load_project_plugin(pm, project_dir)
    for item in plugins:
        if isinstance(item, tuple):
            name, plugin = item
            pm.register(plugin, name=name)
        else:
            pm.register(item)
    pm.check_pending()
    pm.collect_backends()
    pm.collect_storages()
    return pm


def _load_entry_points(pm: OffloadPluginManager) -> None:
    for ep in entry_points(ENTRY_POINT_GROUP):
        if ep.name in pm.disabled or pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        dist_name, version = ep.distribution()
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as e:  # noqa: BLE001 - any import failure is reported, the rest load
            pm.load_errors.append(PluginLoadError(ep.name, dist_name, f"{type(e).__name__}: {e}"))
            continue
        pm.distributions[ep.name] = (dist_name, version)
        unknown = _unknown_hooks(pm, plugin)
        if unknown:
            pm._drop(ep.name, plugin, f"implements unknown hook(s): {', '.join(unknown)}")


def _load_project_plugin(pm: OffloadPluginManager, project_dir: str) -> None:
    path = os.path.join(os.path.abspath(project_dir), PROJECT_PLUGIN_FILE)
    if not os.path.isfile(path):
        return
    import importlib.util
    import traceback

    spec = importlib.util.spec_from_file_location(f"offload_project_plugins_{abs(hash(path)):x}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - the user's file: say where it failed, not offload's traceback
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == path]
        line = getattr(e, "lineno", None) if isinstance(e, SyntaxError) else (frames[-1].lineno if frames else None)
        at = f"{path}, line {line}" if line else path
        raise PluginError(f"{at}: cannot load the project's plugin file: {type(e).__name__}: {e}") from None
    name = f"project:{PROJECT_PLUGIN_FILE}"
    pm.register(module, name=name)
    pm.project_files[name] = path
    unknown = _unknown_hooks(pm, module)
    if unknown:
        pm.unregister(module, name=name)
        raise PluginError(f"{path}: implements unknown hook(s): {', '.join(unknown)} (see `offload plugins` for the hooks there are)")


def _unknown_hooks(pm: OffloadPluginManager, plugin: object) -> list[str]:
    """Hooks ``plugin`` implements that no spec declares (``check_pending`` would fail them all)."""
    unknown = []
    for caller in pm.get_hookcallers(plugin) or []:
        if caller.has_spec():
            continue
        if any(impl.plugin is plugin and not impl.optionalhook for impl in caller.get_hookimpls()):
            unknown.append(caller.name)
    return sorted(unknown)


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
