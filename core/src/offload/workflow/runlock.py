"""One driver per project and workflow: a lock held for the whole of ``offload run``.

The lock is an ``flock`` on a file under ``<project>/.offload/locks/``, so the kernel
releases it when its driver dies, however it dies: a lock left by a dead driver is
simply taken over. The file records the holder's pid and start time, for the message
a second driver prints. The descriptor is not inherited by task processes (Python
opens files close-on-exec), so a detached local task never keeps the lock alive.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable

from offload.executor.errors import OffloadError


class RunLocked(OffloadError):
    """Another driver runs this workflow in this project. Exit status 2: nothing launched."""

    exit_status = 2


class RunLock:
    """The lock of one workflow file of one project."""

    def __init__(self, state_dir: str, workflow_path: str) -> None:
        digest = hashlib.sha256(os.path.abspath(workflow_path).encode("utf-8")).hexdigest()[:16]
        self.dir = os.path.join(state_dir, "locks")
        self.path = os.path.join(self.dir, f"run-{digest}.lock")
        self.workflow = workflow_path
        self.fd: int | None = None

    def acquire(self, wait: bool = False, on_wait: Callable[[str], None] | None = None) -> None:
        """Take the lock; if another driver holds it, raise :class:`RunLocked` or, with ``wait``, block."""
        os.makedirs(self.dir, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                holder = self._holder(fd)
                if not wait:
                    raise RunLocked(
                        f"{self.workflow}: another offload run is driving this workflow in this project ({holder}); "
                        "wait for it to end, or run again with --wait"
                    ) from None
                if on_wait is not None:
                    on_wait(f"waiting for the other offload run of this workflow to end ({holder})")
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"pid": os.getpid(), "started_at": time.time()}).encode("utf-8"))
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            data = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
            pid, started = int(data["pid"]), float(data["started_at"])
        except (ValueError, KeyError, TypeError, OSError):
            return "pid unknown"
        return f"pid {pid}, started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))}"

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
