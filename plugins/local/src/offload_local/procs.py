"""Finding every process of a task, also those that left its process group (Linux).

A task may start processes that leave its process group: ``setsid cmd &``, or a daemon
that forks twice and is adopted by init. Killing the group misses them, and a walk of
parent pids misses the daemon, whose parent is gone. So the wrapper is started with
:data:`TOKEN_VAR` set to the task's io path: every process of the task inherits it,
whatever its session, group or parent. A scan of ``/proc`` finds the processes whose
environment carries it, and the descendants of those (through their parent pids),
which covers a child that was started with a cleared environment.

What it cannot find: a process that cleared its own environment and whose parent is
gone, or one running as another user (its environment cannot be read).
Without ``/proc`` the scan finds nothing and only the process group is signalled.
"""

from __future__ import annotations

import os
from collections import defaultdict

#: Set in every task's environment to the task's io path.
TOKEN_VAR = "OFFLOAD_LOCAL_TASK"

_PREFIX = TOKEN_VAR.encode() + b"="


class ProcessScan:
    """One look at ``/proc``, taken on first use: the live processes of each task and group.

    Zombies are left out: they cannot be signalled and need no killing.
    """

    def __init__(self) -> None:
        self._table: _Table | None = None

    def pids(self, io_path: str) -> set[int]:
        """The live processes of the task in ``io_path`` and their descendants."""
        return self._look().by_token.get(os.fsencode(io_path), set())

    def group_alive(self, pgid: int) -> bool:
        """Whether a live process is in group ``pgid`` (``killpg(pgid, 0)`` counts zombies)."""
        table = self._look()
        if not table.available:
            return _killpg_alive(pgid)
        return pgid in table.groups

    def _look(self) -> _Table:
        if self._table is None:
            self._table = _scan()
        return self._table


class _Table:
    def __init__(self, available: bool) -> None:
        self.available = available
        self.by_token: dict[bytes, set[int]] = {}
        self.groups: set[int] = set()


def wrapper_alive(pid: int, exit_path: str) -> bool:
    """Whether ``pid`` runs and is the wrapper whose exit file is ``exit_path``, not a reused pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _is_wrapper(pid, exit_path)


def _is_wrapper(pid: int, exit_path: str) -> bool:
    """Whether live ``pid`` runs with ``exit_path`` in its command line (Linux).

    An empty command line means the process is between fork and exec (the spawn can
    return in that window) or is a zombie: the first is ours, the second has exited.
    """
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except OSError:
        return True  # no /proc here: trust the pid
    if not cmdline:
        return not is_zombie(pid)
    return exit_path.encode() in cmdline


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def signal_all(pids: set[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _killpg_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _scan() -> _Table:
    try:
        names = os.listdir("/proc")
    except OSError:
        return _Table(available=False)
    table = _Table(available=True)
    children: dict[int, list[int]] = defaultdict(list)
    tagged: dict[bytes, set[int]] = defaultdict(set)
    me = os.getpid()
    for name in names:
        if not name.isdigit() or int(name) == me:
            continue
        pid = int(name)
        found = _parent_and_group(pid)
        if found is None:
            continue
        children[found[0]].append(pid)
        table.groups.add(found[1])
        token = _token(pid)
        if token is not None:
            tagged[token].add(pid)
    table.by_token = {token: _with_descendants(pids, children) for token, pids in tagged.items()}
    return table


def _parent_and_group(pid: int) -> tuple[int, int] | None:
    """The parent pid and process group of a live process; ``None`` for a zombie or one gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()  # the command name may hold spaces and ")"
    if len(fields) < 3 or fields[0] in (b"Z", b"X"):
        return None
    return int(fields[1]), int(fields[2])


def is_zombie(pid: int) -> bool:
    """Whether ``pid`` has exited but was not reaped yet (Linux; ``False`` without ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :][:1] in (b"Z", b"X")


def _token(pid: int) -> bytes | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = f.read()
    except OSError:
        return None  # another user's process, or gone
    start = environ.find(b"\0" + _PREFIX)
    if start >= 0:
        start += 1
    elif environ.startswith(_PREFIX):
        start = 0
    else:
        return None
    end = environ.find(b"\0", start)
    return environ[start + len(_PREFIX) : end if end >= 0 else len(environ)]


def _with_descendants(pids: set[int], children: dict[int, list[int]]) -> set[int]:
    found = set(pids)
    todo = list(pids)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found
