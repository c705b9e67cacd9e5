"""The parameters of ``RunTask``: built from the config, merged with ``run_task_kwargs``,
and checked against botocore's own input shape before any call."""

from __future__ import annotations

import copy
import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # botocore is imported when a RunTask call is checked, not with the plugin
    from botocore.model import OperationModel

#: Keys offload sets itself; ``run_task_kwargs`` may not replace them (``clientToken``
#: makes each submission idempotent: one shared by all tasks would run only the first).
OWNED = ("cluster", "taskDefinition", "count", "clientToken")


@functools.lru_cache(maxsize=1)
def _run_task_model() -> OperationModel:
    import botocore.session

    return botocore.session.get_session().get_service_model("ecs").operation_model("RunTask")


def check_run_task_kwargs(kwargs: dict[str, Any]) -> list[str]:
    """Problems with ``kwargs`` as RunTask parameters, as botocore would report them."""
    problems = [f"{key!r} is set by offload and cannot be given here" for key in OWNED if key in kwargs]
    params = {key: value for key, value in kwargs.items() if key not in OWNED}
    params["taskDefinition"] = "placeholder"
    return problems + validate_params(params)


def merge_run_task_kwargs(params: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``params`` with ``extra`` (the user's ``run_task_kwargs``) on top.

    ``extra`` wins, except that offload's own container keeps its command and the task's
    environment wins over the site's, and tags are added together.
    """
    merged = copy.deepcopy(params)
    for key, value in extra.items():
        if key in OWNED:
            continue
        if key == "tags":
            names = {t["key"] for t in value}
            merged["tags"] = [t for t in merged.get("tags", []) if t["key"] not in names] + list(value)
        elif key == "overrides":
            merged["overrides"] = _merge_overrides(merged.get("overrides", {}), value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _merge_overrides(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    out = {**copy.deepcopy(theirs), **{k: v for k, v in ours.items() if k != "containerOverrides" and k not in theirs}}
    by_name = {c["name"]: c for c in copy.deepcopy(ours.get("containerOverrides", []))}
    for container in theirs.get("containerOverrides", []):
        mine = by_name.get(container.get("name", ""))
        if mine is None:
            by_name[container.get("name", "")] = copy.deepcopy(container)
            continue
        command = mine.get("command")
        env = {e["name"]: e for e in container.get("environment", [])}
        env.update({e["name"]: e for e in mine.get("environment", [])})
        mine.update(copy.deepcopy(container))
        if command is not None:
            mine["command"] = command
        if env:
            mine["environment"] = list(env.values())
    out["containerOverrides"] = list(by_name.values())
    return out


def validate_params(params: dict[str, Any]) -> list[str]:
    """Problems with complete RunTask ``params``."""
    from botocore.validate import ParamValidator

    report = ParamValidator().validate(params, _run_task_model().input_shape)
    if not report.has_errors():
        return []
    return [line.strip() for line in report.generate_report().splitlines() if line.strip()]
