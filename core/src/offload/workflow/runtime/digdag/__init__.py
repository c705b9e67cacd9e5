"""Digdag's ``digdag`` module, so Digdag's Python scripts run unchanged.

``digdag.env.params``, ``digdag.env.store({...})``, ``digdag.env.export({...})``,
``digdag.env.add_subtask(...)`` and ``digdag.env.set_state(...)`` work on the same state as
``offload_env``. Standard library only, Python 3.8+.
"""

from __future__ import annotations

TYPE_CHECKING = False  # ``typing`` and ``collections.abc`` would add to every task's start
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from offload.workflow.runtime import offload_env
else:
    import offload_env  # the copy in the io directory, on sys.path


class Env:
    """``digdag.env``: Digdag's names over ``offload_env``."""

    @property
    def params(self) -> dict[str, Any]:
        return offload_env.params

    @property
    def store_params(self) -> dict[str, Any]:
        return offload_env.store_params

    @property
    def export_params(self) -> dict[str, Any]:
        return offload_env.export_params

    @property
    def state_params(self) -> dict[str, Any]:
        return offload_env.state_params

    @property
    def subtask_config(self) -> dict[str, Any]:
        return offload_env.subtask_config

    # Digdag names the dict argument ``params``: ``store(params={...})`` must keep working.
    def store(self, params: Mapping[str, Any] | None = None, **kwds: Any) -> None:
        offload_env.store(params, **kwds)

    def export(self, params: Mapping[str, Any] | None = None, **kwds: Any) -> None:
        offload_env.export(params, **kwds)

    def set_state(self, params: Mapping[str, Any] | None = None, **kwds: Any) -> None:
        offload_env.set_state(params, **kwds)

    def add_subtask(self, function: Callable[..., Any] | Mapping[str, Any] | None = None, **params: Any) -> None:
        offload_env.add_subtask(function, **params)


env = Env()
