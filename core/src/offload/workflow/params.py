"""``${param}`` substitution and the built-in params of a session.

Digdag evaluates ``${...}`` as JavaScript; offload supports the forms workflows use
(``${name}`` and dotted lookups ``${error.message}``) and rejects anything else with a
clear message, rather than evaluating code.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

REFERENCE = re.compile(r"\$\{([^{}]*)\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$")

_TIME_FIELDS = ("time", "date", "date_compact", "local_time", "tz_offset", "unixtime")

BUILTIN_NAMES = (
    *(f"session_{field}" for field in _TIME_FIELDS),
    "session_id",
    "session_uuid",
    "attempt_id",
    "retry_attempt_name",
    *(f"last_executed_session_{field}" for field in _TIME_FIELDS),
    "timezone",
    "task_name",
    "project_dir",
)

#: Digdag's built-ins that only its server and scheduler know, with what to do instead:
#: a workflow that uses one is stopped before anything runs (unless ``-p`` gives it).
UNKNOWABLE = {
    "project_id": "the id of the project on a Digdag server; offload has no server",
    **{
        f"{when}_session_{field}": "set by Digdag's scheduler from the workflow's schedule; offload has no scheduler"
        for when in ("last", "next")
        for field in _TIME_FIELDS
    },
}


#: Why ``${1 + 2}`` is refused: Digdag evaluates JavaScript there, offload does not.
NOT_AN_EXPRESSION = "only ${name} and ${name.key} are supported (offload has no JavaScript engine to evaluate expressions)"


class UnknownParam(Exception):
    """A ``${...}`` that names no param, or is not a supported expression."""

    def __init__(self, expression: str, message: str) -> None:
        self.expression = expression
        super().__init__(message)


def time_params(prefix: str, local: dt.datetime | None) -> dict[str, Any]:
    """Digdag's ``<prefix>_time``, ``_date``, ``_date_compact``, ``_local_time``
    (``2016-01-30 00:00:00``), ``_tz_offset`` (``+0900``) and ``_unixtime`` of ``local``;
    empty strings when there is no such time (as Digdag gives them)."""
    if local is None:
        return {f"{prefix}_{field}": "" for field in _TIME_FIELDS}
    return {
        f"{prefix}_time": local.isoformat(timespec="seconds"),
        f"{prefix}_date": local.strftime("%Y-%m-%d"),
        f"{prefix}_date_compact": local.strftime("%Y%m%d"),
        f"{prefix}_local_time": local.strftime("%Y-%m-%d %H:%M:%S"),
        f"{prefix}_tz_offset": local.strftime("%z"),
        f"{prefix}_unixtime": int(local.timestamp()),
    }


def session_params(session_id: str, session_time: dt.datetime, timezone: str, project_dir: str) -> dict[str, Any]:
    return {
        **time_params("session", session_time),
        "session_id": session_id,
        "timezone": timezone,
        "project_dir": project_dir,
    }


def run_params(run_id: str, attempt: int, last_executed: dt.datetime | None) -> dict[str, Any]:
    """The built-ins a run adds to its session: ids, and the session time of the run
    of the workflow before this one (``last_executed_session_*``)."""
    return {
        "session_id": run_id,
        "session_uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"offload:run:{run_id}")),
        "attempt_id": f"{run_id}.{attempt}",
        "retry_attempt_name": None,
        **time_params("last_executed_session", last_executed),
    }


def lookup(params: Mapping[str, Any], expression: str) -> Any:
    expr = expression.strip()
    if not _NAME.match(expr):
        raise UnknownParam(expression, f"${{{expression}}}: {NOT_AN_EXPRESSION}")
    value: Any = params
    for part in expr.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise UnknownParam(expression, f"${{{expression}}}: unknown param {expr!r}")
        value = value[part]
    return value


def render_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def substitute(value: Any, params: Mapping[str, Any]) -> Any:
    """``value`` with every ``${...}`` in its strings replaced; raises :class:`UnknownParam`."""
    if isinstance(value, str):
        return REFERENCE.sub(lambda m: render_value(lookup(params, m.group(1))), value)
    if isinstance(value, Mapping):
        return {k: substitute(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, params) for v in value]
    return value


def _is_secret(expression: str) -> bool:
    return expression.strip().startswith("secret:")


def references(value: Any) -> Iterable[str]:
    """The top-level param names that ``value`` refers to, for the static check."""
    if isinstance(value, str):
        for match in REFERENCE.finditer(value):
            if not _is_secret(match.group(1)):
                yield match.group(1).strip().split(".", 1)[0]
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from references(v)
    elif isinstance(value, list):
        for v in value:
            yield from references(v)


def check_expressions(value: Any) -> list[str]:
    """Messages for ``${...}`` that are not supported expressions (checked before running)."""
    problems = []
    if isinstance(value, str):
        for match in REFERENCE.finditer(value):
            if _is_secret(match.group(1)):
                problems.append(f"${{{match.group(1)}}}: a secret can be used only in an _env value (it reaches the task as an environment variable)")
            elif not _NAME.match(match.group(1).strip()):
                problems.append(f"${{{match.group(1)}}}: {NOT_AN_EXPRESSION}")
    elif isinstance(value, Mapping):
        for v in value.values():
            problems.extend(check_expressions(v))
    elif isinstance(value, list):
        for v in value:
            problems.extend(check_expressions(v))
    return problems
