"""Logs of all the run's tasks, read in bulk from CloudWatch Logs.

One ``FilterLogEvents`` query per log group (and region) reads the new events of every
stream that is being followed, whatever their number: its ``logStreamNamePrefix`` is the
longest prefix the streams share (``<awslogs-stream-prefix>/<container>/`` when they come
from one container definition, since the task id ends the name), its ``startTime`` the
oldest position among them. Events of other streams under that prefix (other runs' tasks)
are dropped. CloudWatch allows 5 such calls a second per account and region, so a group is
queried at most every ``MIN_INTERVAL`` seconds, with at most ``MAX_PAGES`` pages per poll;
a longer answer (or one that CloudWatch cuts short while it searches: pages may be empty
and still carry a token) is continued at the next poll with its token, kept in memory.

Position and de-duplication (why not a timestamp cursor): the events come sorted by
timestamp, but they become searchable late: the ``awslogs`` driver sends a container's
lines in batches (every 5 s), so an event can show up after others, of its own stream or
another, that are stamped later. A cursor at "the newest timestamp seen" would skip it.
So each stream's handle keeps

``log_after`` (ms)
    every event of the stream stamped before this has been handed out;
``log_seen``
    ``{event id: timestamp}`` of the events stamped at or after ``log_after`` that have
    been handed out.

An event is new when it is stamped at or after ``log_after`` and its id is not in
``log_seen``; the lines are handed out in the order CloudWatch returns them, which is each
stream's timestamp order (a late event comes when it shows). Once a query has been read to
its end, every event stamped ``LATE`` seconds or more before it began (by CloudWatch's clock,
the answer's ``Date``) was searchable and has been seen, so the streams it covered may move
``log_after`` there and forget older ids: the overlap window is ``LATE`` seconds, read
again by every query. An event that becomes searchable more than ``LATE`` seconds after
its timestamp can be missed; a wider window costs that much more reading per query and
more ids in each handle.

A new handle state is returned only for a stream that has new lines, or whose ``log_after``
lags what this driver has searched by more than ``SLACK`` seconds (once every ``SLACK`` to
``2 x SLACK`` seconds per quiet stream, staggered), so 1,000 quiet tasks do not rewrite
1,000 journal rows per poll. A restarted driver knows only the handles: its first query
starts at their ``log_after`` (at most ``2 x SLACK + LATE`` seconds back) and
``log_seen`` keeps it from handing out a line twice.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

from offload import BackendError
from offload.remote import find_marker
from offload_ecs.aws import Aws, error_code, error_message
from offload_ecs.schedule import phase

#: Overlap window (s): an event searchable this much later than its timestamp is still read.
LATE = 15.0
#: A quiet stream's ``log_after`` is written to its handle when it lags by this (to twice this).
SLACK = 60.0
#: A log group is queried at most this often (s).
MIN_INTERVAL = 1.0
#: Pages read per log group and poll.
MAX_PAGES = 4
#: Events per page: CloudWatch's maximum and default (a page also stops at 1 MB).
PAGE_EVENTS = 10_000

#: The new lines of a task and the changes to its handle state.
Update = tuple[list[str], dict[str, Any]]
#: A followed stream in one poll: the task's index, its handle state and ``log_after``.
_Followed = tuple[int, Mapping[str, Any], int]


def initial_after(state: Mapping[str, Any]) -> int:
    """Where a stream that has not been read yet is read from: its submission, less the
    window (the driver's clock may be ahead of the container's)."""
    return int(float(state.get("submitted_at") or 0.0) * 1000) - int(LATE * 1000)


def after_of(state: Mapping[str, Any]) -> int:
    after = state.get("log_after")
    return int(after) if after is not None else initial_after(state)


def common_prefix(names: Iterable[str]) -> str:
    """The longest prefix of all ``names``, character by character (stream names are not paths)."""
    names = list(names)
    if not names:
        return ""
    low, high = min(names), max(names)
    size = 0
    while size < len(low) and low[size] == high[size]:
        size += 1
    return low[:size]


def server_ms(page: Mapping[str, Any], fallback: float) -> int:
    """CloudWatch's time when it answered (the ``Date`` header, whole seconds, rounded down), in ms."""
    date = ((page.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}).get("date")
    try:
        return int(parsedate_to_datetime(str(date)).timestamp() * 1000)
    except (TypeError, ValueError):
        return int(fallback * 1000)


class _Stream:
    """One stream during one poll: its handle's position and what this poll adds."""

    def __init__(self, followed: _Followed, searched: int) -> None:
        self.index, state, self.after = followed
        self.marker = str(state["marker"])
        self.searched = max(self.after, searched)  # events stamped before this are not new
        self.seen: dict[str, int] = state.get("log_seen") or {}
        self.marker_seen = bool(state.get("marker_seen"))
        self.lines: list[str] = []
        self.changed = False

    def take(self, event: Mapping[str, Any]) -> None:
        stamp, event_id = int(event["timestamp"]), str(event["eventId"])
        if stamp < self.searched or event_id in self.seen:
            return
        if not self.changed:
            self.seen, self.changed = dict(self.seen), True
        self.seen[event_id] = stamp
        message, which = find_marker(str(event.get("message", "")).rstrip("\r\n"), self.marker)
        if which == "end":
            self.marker_seen = True
            if message:  # the command's last output had no newline
                self.lines.append(message)
            return
        self.lines.append(message)

    def update(self) -> Update:
        after = self.searched
        seen = {event_id: stamp for event_id, stamp in self.seen.items() if stamp >= after}
        return self.lines, {"log_after": after, "log_seen": seen, "marker_seen": self.marker_seen}


@dataclass
class _Query:
    """A query being read, possibly over several polls."""

    prefix: str
    start: int
    covered: frozenset[str]  # the streams followed when it began: only theirs are handed out
    token: str | None = None
    horizon: int | None = None


@dataclass
class _Group:
    """What this driver knows of one log group beyond the handles."""

    searched: dict[str, int] = field(default_factory=dict)  # stream: searched up to (ms)
    query: _Query | None = None
    called_at: float = -math.inf


class Reader:
    """Reads the logs of the followed tasks, one query per log group; kept by the backend
    between polls (the rate limit, the query being read and how far streams were searched)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self._clock, self._wall = clock, wall
        self._groups: dict[tuple[str | None, str], _Group] = {}

    def read(self, aws: Aws, states: Iterable[tuple[int, Mapping[str, Any]]], began: float | None = None) -> dict[int, Update]:
        """New lines and state changes of the tasks ``states`` lists (by index) whose log is
        to be read now; only those with any are in the answer. ``began`` is when the poll
        began (the reader's clock): the interval between queries is measured between polls,
        so the time a poll spends before reading does not make it skip a query."""
        wanted: dict[tuple[str | None, str], dict[str, _Followed]] = {}
        for index, state in states:
            key = (state.get("log_region"), str(state["log_group"]))
            wanted.setdefault(key, {}).setdefault(str(state["log_stream"]), (index, state, after_of(state)))
        for key in [k for k in self._groups if k not in wanted]:
            del self._groups[key]
        now = self._clock() if began is None else began
        updates: dict[int, Update] = {}
        for key, streams in wanted.items():
            group = self._groups.setdefault(key, _Group())
            if now - group.called_at >= MIN_INTERVAL:
                group.called_at = now
                updates.update(self._read_group(aws, key, group, streams))
        return updates

    def _read_group(self, aws: Aws, key: tuple[str | None, str], group: _Group, streams: Mapping[str, _Followed]) -> dict[int, Update]:
        region, name = key
        if group.query is None:
            searched = group.searched
            start = min(max(searched.get(stream, -1), after) for stream, (_, _, after) in streams.items())
            group.query = _Query(common_prefix(streams), start, frozenset(streams))
        query = group.query
        cursors: dict[str, _Stream] = {}  # made for the streams that have events: most have none
        for _ in range(MAX_PAGES):
            page = self._page(aws, region, name, group, query)
            if query.horizon is None:
                query.horizon = server_ms(page, self._wall()) - int(LATE * 1000)
            for event in page.get("events") or ():
                stream = str(event.get("logStreamName"))
                cursor = cursors.get(stream)
                if cursor is None:
                    followed = streams.get(stream) if stream in query.covered else None
                    if followed is None:  # another run's, or no longer followed
                        continue
                    cursor = cursors[stream] = _Stream(followed, group.searched.get(stream, -1))
                cursor.take(event)
            query.token = page.get("nextToken") or None
            if query.token is None:
                group.query = None
                self._searched(group, query.horizon, query.covered, streams, cursors)
                break
        return {c.index: c.update() for c in cursors.values() if c.changed}

    @staticmethod
    def _page(aws: Aws, region: str | None, name: str, group: _Group, query: _Query) -> Mapping[str, Any]:
        from botocore.exceptions import ClientError

        params: dict[str, Any] = {"logGroupName": name, "startTime": query.start, "interleaved": True, "limit": PAGE_EVENTS}
        if query.prefix:
            params["logStreamNamePrefix"] = query.prefix
        if query.token:
            params["nextToken"] = query.token
        try:
            page: Mapping[str, Any] = aws.call("logs", "filter_log_events", region=region, **params)
        except ClientError as e:
            if error_code(e) == "ResourceNotFoundException":  # no group yet (it comes with the first container): no events
                return {}
            group.query = None  # the next poll starts afresh from the handles
            raise BackendError(f"ecs: filter_log_events on log group {name} failed: {error_message(e)}") from None
        return page

    @staticmethod
    def _searched(group: _Group, horizon: int, covered: frozenset[str], streams: Mapping[str, _Followed], cursors: dict[str, _Stream]) -> None:
        """A query read to its end: the streams it covered were searched up to ``horizon``."""
        searched: dict[str, int] = {}
        slack = int(SLACK * 1000)
        for stream, followed in streams.items():
            old = group.searched.get(stream, -1)
            if stream not in covered:
                if old >= 0:
                    searched[stream] = old
                continue
            searched[stream] = new = max(old, horizon)
            cursor = cursors.get(stream)
            if cursor is not None:
                cursor.searched = max(cursor.searched, new)
            elif (lag := new - followed[2]) > slack and lag > slack * (1 + phase(stream)):
                cursor = cursors[stream] = _Stream(followed, new)  # a quiet stream: its handle catches up now and then
                cursor.changed = True
        group.searched = searched
