"""``${param}`` substitution and the built-in params of a session.

Digdag evaluates ``${...}`` as JavaScript; offload supports the forms workflows use
(``${name}`` and dotted lookups ``${error.message}``) and rejects anything else with a
clear message, rather than evaluating code.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

REFERENCE = re.compile(r"\$\{([^{}]*)\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$")

BUILTIN_NAMES = (
    "session_time",
    "session_date",
    "session_date_compact",
    "session_unixtime",
    "session_id",
    "timezone",
    "task_name",
    "project_dir",
)


class UnknownParam(Exception):
    """A ``${...}`` that names no param, or is not a supported expression."""

    def __init__(self, expression: str, message: str) -> None:
        self.expression = expression
        super().__init__(message)


def session_params(session_id: str, session_time: dt.datetime, timezone: str, project_dir: str) -> dict[str, Any]:
    local = session_time
    return {
        "session_time": local.isoformat(timespec="seconds"),
        "session_date": local.strftime("%Y-%m-%d"),
        "session_date_compact": local.strftime("%Y%m%d"),
        "session_unixtime": int(session_time.timestamp()),
        "session_id": session_id,
        "timezone": timezone,
        "project_dir": project_dir,
    }


def lookup(params: Mapping[str, Any], expression: str) -> Any:
    expr = expression.strip()
    if not _NAME.match(expr):
        raise UnknownParam(expression, f"${{{expression}}}: only ${{name}} and ${{name.key}} are supported")
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
                problems.append(f"${{{match.group(1)}}}: only ${{name}} and ${{name.key}} are supported")
    elif isinstance(value, Mapping):
        for v in value.values():
            problems.extend(check_expressions(v))
    elif isinstance(value, list):
        for v in value:
            problems.extend(check_expressions(v))
    return problems
