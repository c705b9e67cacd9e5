"""Waking the poll loop as soon as a task's wrapper exits (Linux pidfds).

The watcher keeps one pidfd per running wrapper in a ``select.poll`` set (``select()``
cannot take descriptors above 1023), opened once and closed when the wrapper exits or
its task is no longer waited for. It holds at most :func:`watch_limit` descriptors, a
quarter of the soft ``RLIMIT_NOFILE``, so the driver keeps room for log files, the
journal and new tasks; when the system still runs out of descriptors (``EMFILE``), it
watches fewer. A task that is not watched is only seen finishing at the next poll,
so nothing depends on the watcher but how soon the loop wakes.
"""

from __future__ import annotations

import errno
import os
import select
import time
from collections.abc import Iterable

#: The most pidfds watched at once, whatever the descriptor limit.
MAX_WATCHED = 4096

_OUT_OF_FDS = (errno.EMFILE, errno.ENFILE, errno.ENOMEM)


def watch_limit() -> int:
    """A quarter of the soft descriptor limit, at most :data:`MAX_WATCHED`."""
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return 0
    if soft == resource.RLIM_INFINITY:
        return MAX_WATCHED
    return max(0, min(MAX_WATCHED, soft // 4))


class ExitWatcher:
    """Pidfds of running wrappers; ``exited_at`` records when each was seen exiting."""

    def __init__(self) -> None:
        self._fds: dict[int, int] = {}  # pid -> pidfd
        self._pids: dict[int, int] = {}  # pidfd -> pid
        self._poller = select.poll()
        self._done: set[int] = set()  # pids not to watch again: exited, or gone
        self._supported = hasattr(os, "pidfd_open")
        self.exited_at: dict[int, float] = {}

    def wait(self, pids: Iterable[int], timeout: float) -> None:
        """Block up to ``timeout`` seconds, or until one of ``pids`` exits."""
        wanted = set(pids)
        self._forget_all_but(wanted)
        self._open(wanted)
        if not self._fds:
            time.sleep(timeout)
            return
        ready = self._poller.poll(max(0, int(timeout * 1000)))
        now = time.time()
        for fd, _events in ready:
            pid = self._pids[fd]
            self.exited_at.setdefault(pid, now)
            self._done.add(pid)
            self._close(pid)

    def watching(self, pid: int) -> bool:
        """Whether ``pid`` is watched and had not exited at the last :meth:`wait`."""
        return pid in self._fds

    def saw_exit(self, pid: int, when: float) -> None:
        """Record an exit noticed some other way (the wrapper was reaped by a poll)."""
        self.exited_at.setdefault(pid, when)

    def reset(self, pid: int) -> None:
        """A new wrapper has ``pid`` (pids are reused): forget what was known of the old one."""
        self._close(pid)
        self._done.discard(pid)
        self.exited_at.pop(pid, None)

    def release(self) -> None:
        """Close every pidfd (the process ran out of descriptors); they are reopened as needed."""
        for pid in list(self._fds):
            self._close(pid)

    def _forget_all_but(self, wanted: set[int]) -> None:
        for pid in [p for p in self._fds if p not in wanted]:
            self._close(pid)
        self._done &= wanted
        for pid in [p for p in self.exited_at if p not in wanted]:
            del self.exited_at[pid]

    def _open(self, wanted: set[int]) -> None:
        room = watch_limit() - len(self._fds)
        for pid in wanted:
            if room <= 0 or not self._supported:
                return
            if pid in self._fds or pid in self._done:
                continue
            try:
                fd = os.pidfd_open(pid)
            except OSError as e:
                if e.errno in _OUT_OF_FDS:
                    return  # watch fewer; the poll loop still sees the others finish
                if e.errno in (errno.ENOSYS, errno.EPERM):
                    self._supported = False
                    return
                self._done.add(pid)  # ESRCH: it has already exited
                continue
            self._fds[pid], self._pids[fd] = fd, pid
            self._poller.register(fd, select.POLLIN)
            room -= 1

    def _close(self, pid: int) -> None:
        fd = self._fds.pop(pid, None)
        if fd is None:
            return
        del self._pids[fd]
        self._poller.unregister(fd)
        os.close(fd)
