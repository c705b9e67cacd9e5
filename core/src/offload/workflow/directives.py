"""The ``_retry``, ``_parallel`` and ``_background`` directives of a task, as Digdag reads them.

``_retry`` is a count, or ``{limit: N, interval: S, interval_type: constant|exponential,
max_interval: M}`` (exponential: ``S * 2**(retry - 1)`` seconds before retry number
``retry``, at most ``M``);
``_parallel`` is ``true``/``false`` or ``{limit: N}`` (at most N children at once).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

Report = Callable[[str, str], None]


@attrs.frozen
class RetryPolicy:
    """How often a failed task is run again, and how long the run waits before each retry."""

    limit: int = 0
    interval: float = 0.0
    exponential: bool = False
    max_interval: float | None = None

    def delay(self, retry: int) -> float:
        """Seconds before retry number ``retry`` (1 for the first)."""
        if not self.exponential:
            return self.interval
        delay = float(self.interval * 2 ** min(max(0, retry - 1), 64))
        return delay if self.max_interval is None else min(delay, self.max_interval)


@attrs.frozen
class Parallelism:
    """Whether the children of a group run at once, and how many at most (``None``: all)."""

    enabled: bool = False
    limit: int | None = None


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 and number == number and number != float("inf") else None


def _boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def parse_retry(value: Any, report: Report) -> RetryPolicy:
    """``_retry`` as a policy; problems go to ``report(key, message)``."""
    if value is None:
        return RetryPolicy()
    if not isinstance(value, dict):
        count = _count(value)
        if count is None:
            report("_retry", f"must be a count of retries (0 or more) or {{limit: N, interval: S, interval_type: constant|exponential}}, got {value!r}")
            return RetryPolicy()
        return RetryPolicy(limit=count)
    for key in value:
        if key not in ("limit", "interval", "interval_type", "max_interval"):
            report(f"_retry.{key}", "unknown key (known: limit, interval, interval_type, max_interval)")
    limit = _count(value.get("limit"))
    if limit is None:
        report("_retry.limit", f"must be a count of retries (0 or more), got {value.get('limit')!r}")
        limit = 0
    interval = _seconds(value.get("interval", 0))
    if interval is None:
        report("_retry.interval", f"must be a number of seconds (0 or more), got {value.get('interval')!r}")
        interval = 0.0
    most = None if value.get("max_interval") is None else _seconds(value["max_interval"])
    if value.get("max_interval") is not None and most is None:
        report("_retry.max_interval", f"must be a number of seconds (0 or more), got {value.get('max_interval')!r}")
    kind = str(value.get("interval_type", "constant")).lower()
    if kind not in ("constant", "exponential"):
        report("_retry.interval_type", f"must be constant or exponential, got {value.get('interval_type')!r}")
    return RetryPolicy(limit=limit, interval=interval, exponential=kind == "exponential", max_interval=most)


def parse_parallel(value: Any, report: Report) -> Parallelism:
    """``_parallel`` as a :class:`Parallelism`; problems go to ``report(key, message)``."""
    if value is None:
        return Parallelism()
    if isinstance(value, dict):
        for key in value:
            if key != "limit":
                report(f"_parallel.{key}", "unknown key (known: limit)")
        limit = _count(value.get("limit"))
        if limit is None or limit < 1:
            report("_parallel.limit", f"must be a number of tasks (1 or more), got {value.get('limit')!r}")
            return Parallelism(enabled=True)
        return Parallelism(enabled=True, limit=limit)
    enabled = _boolean(value)
    if enabled is None:
        report("_parallel", f"must be true, false or {{limit: N}}, got {value!r}")
        return Parallelism()
    return Parallelism(enabled=enabled)


def parse_flag(key: str, value: Any, report: Report) -> bool:
    """A true/false directive such as ``_background``."""
    if value is None:
        return False
    flag = _boolean(value)
    if flag is None:
        report(key, f"must be true or false, got {value!r}")
        return False
    return flag
