"""One measurement, in a fresh process: ``python measure.py LOG CWD COMMAND...``.

Runs COMMAND (its output to LOG) and prints one JSON line: ``rc``, ``wall`` (seconds,
``perf_counter`` around the command), ``cpu`` (user + sys of every process it started),
``maxrss_kb`` (the peak RSS of its largest single process), ``orphans`` (processes that
outlived it) and ``isolated`` (whether it ran in a network namespace of its own).

This process is fresh for each measurement so that ``getrusage(RUSAGE_CHILDREN)`` holds
this one command and nothing else: the kernel adds a child's usage there once the child
is waited for, and a child's own waited-for descendants with it. To miss none, this
process makes itself a child subreaper (``PR_SET_CHILD_SUBREAPER``): a process that
leaves its parent (a daemon, a detached task) is re-parented here, not to init, and is
waited for here, for up to ``ORPHAN_WAIT`` seconds, after which it is killed.

Before anything starts, this process enters a new network namespace in which only the
loopback interface exists (``unshare(CLONE_NEWNET)``, which needs root): nothing the
command does can reach another address. Where that is not allowed, it runs as it is and
says ``isolated: false``.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import resource
import signal
import socket
import struct
import subprocess
import sys
import time

CLONE_NEWNET = 0x40000000
PR_SET_CHILD_SUBREAPER = 36
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
ORPHAN_WAIT = 30.0


def isolate_network(libc: ctypes.CDLL) -> bool:
    """A network namespace of our own with ``lo`` up; False when not permitted."""
    if libc.unshare(CLONE_NEWNET) != 0:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))
    return True


def children() -> list[int]:
    pids: list[int] = []
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/children") as f:
            pids += [int(pid) for pid in f.read().split()]
    return pids


def reap_orphans() -> int:
    """Wait for every process re-parented here; kill those left after ``ORPHAN_WAIT``."""
    reaped, deadline = 0, time.monotonic() + ORPHAN_WAIT
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid:
            reaped += 1
        elif time.monotonic() > deadline:
            for orphan in children():
                os.kill(orphan, signal.SIGKILL)
        else:
            time.sleep(0.02)


def main() -> None:
    log, cwd, command = sys.argv[1], sys.argv[2], sys.argv[3:]
    libc = ctypes.CDLL(None, use_errno=True)
    isolated = isolate_network(libc)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    with open(log, "wb") as out:
        start = time.perf_counter()
        rc = subprocess.run(command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT).returncode
        wall = time.perf_counter() - start
    orphans = reap_orphans()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime
    print(json.dumps({"rc": rc, "wall": wall, "cpu": cpu, "maxrss_kb": usage.ru_maxrss, "orphans": orphans, "isolated": isolated}))


if __name__ == "__main__":
    main()
