"""A task's log, read from CloudWatch Logs with the forward token kept in its handle.

A running task whose log stays quiet is read less and less often (up to every
``MAX_QUIET`` seconds, on the stream's own phase so quiet streams do not fall due
together), so a thousand quiet tasks do not cost a thousand calls per poll; a task
that writes is read on every poll (within the poll's cap, see :mod:`.schedule`), and
a stopped one until its end-of-log marker shows.
"""

from __future__ import annotations

import time
from typing import Any

from offload.remote import find_marker
from offload_ecs.aws import Aws, error_code
from offload_ecs.schedule import backoff, staggered

#: Pages read per task and poll, so one chatty task cannot hold up the others.
MAX_PAGES = 5
FIRST_QUIET = 0.25
MAX_QUIET = 8.0


def read(aws: Aws, state: dict[str, Any], now: float | None = None) -> tuple[list[str], dict[str, Any]]:
    """New log lines of the task and the state changes to keep (token, marker seen, next read)."""
    from botocore.exceptions import ClientError

    now = time.time() if now is None else now
    token = state.get("log_token")
    marker = state["marker"]
    lines: list[str] = []
    seen = bool(state.get("marker_seen"))
    for _ in range(MAX_PAGES):
        params: dict[str, Any] = {"logGroupName": state["log_group"], "logStreamName": state["log_stream"], "startFromHead": True}
        if token:
            params["nextToken"] = token
        try:
            page = aws.call("logs", "get_log_events", region=state.get("log_region"), **params)
        except ClientError as e:
            if error_code(e) == "ResourceNotFoundException":  # the stream appears when the container starts
                break
            raise
        events = page.get("events") or []
        new_token = page.get("nextForwardToken") or token
        for event in events:
            message, which = find_marker(str(event.get("message", "")).rstrip("\r\n"), marker)
            if which == "end":
                seen = True
                if message:  # the command's last output had no newline
                    lines.append(message)
                continue
            lines.append(message)
        if not events or new_token == token:
            token = new_token
            break
        token = new_token
    quiet = 0 if lines else int(state.get("log_quiet") or 0) + 1
    due = staggered(str(state["log_stream"]), backoff(quiet, FIRST_QUIET, MAX_QUIET), now)  # spread, not in lockstep
    return lines, {"log_token": token, "marker_seen": seen, "log_quiet": quiet, "log_due": due}
