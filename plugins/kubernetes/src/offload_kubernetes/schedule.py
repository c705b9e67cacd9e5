"""Which pods' logs a poll reads: a due time per pod, a cap per poll, the longest-waiting first.

The Kubernetes API has no call that reads the logs of several pods: a pod's new lines cost a
``GET pods/<pod>/log`` of their own. Read at every poll, 1,000 running pods cost 1,000 calls
and 1.6 s of driver CPU per poll, and a poll lasted 8 to 10 s (measured on the tests' API
server, ``bench/kubernetes_api_calls.py``), which is also how late a line was shown. So:

- **Spacing.** A pod's log is read again no sooner than ``running / READS_PER_SECOND``
  seconds later (at most ``MAX_WAIT``): with a few pods that is every poll, as before; with
  1,000 it is every 8 s, so the reads per second stay near ``READS_PER_SECOND`` whatever
  the count, and so do the driver's CPU and the API server's load.
- **Quiet pods** are read again after 0.25 s, doubling up to 2 s (or the spacing if longer).
- **Cap.** A poll reads at most ``LOG_READS_PER_POLL`` logs: those of pods that have ended
  first (their task finishes with that read), then the due ones, longest overdue first.
  A pod that was read is due again only after every pod already waiting: a rotation, so no
  pod is starved, and a poll's calls and CPU have a bound.
- **Concurrency.** The chosen logs are read ``CONCURRENT_READS`` at a time (``kubectl logs
  -l`` reads 5 at a time too): a read waits ~7 ms for the API server and the kubelet, and
  one after the other the reads of 1,000 pods took 7 s, too slow for the latency target.

Latency: a running pod's new lines are shown at most ``MAX_WAIT`` seconds plus one poll after
they were written while the cap covers the pods that fall due between two polls (running x
poll cycle / ``MAX_WAIT`` <= ``LOG_READS_PER_POLL``: 1,000 pods at 2 s cycles). Past that a
poll still makes at most 1 + ``LOG_READS_PER_POLL`` calls and the latency grows instead. On
the tests' cluster (API server, fake kubelet and driver on 2 cores) the machine reads about
90 logs a second: a poll of 250 reads took 2.75 s, so with 1 s between polls 1,000 pods were
each read every ~15 s (worst line 18 s; Digdag's per-pod polling: 203 s), the calls per poll
fell from 1,001 to 251 and the driver's CPU from 1.6 s to 0.7 s.

The LIST of pods stays one call per poll (~180 ms of CPU at 1,000 pods, a quarter of a
poll's): a WATCH would save that but bring back what a watch can lose (410 Gone, dropped
streams) and a thread in the driver; see the README.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

import attrs

#: A pod whose log had nothing new is read again after QUIET_FIRST s, doubling up to QUIET_MAX.
QUIET_FIRST, QUIET_MAX = 0.25, 2.0
#: Reads per second aimed at when many pods run (the spacing of each pod's reads follows).
READS_PER_SECOND = 125.0
#: The longest a running pod waits between two reads (plus one poll) while the cap suffices.
MAX_WAIT = 8.0
#: Log reads per poll at most: 1,000 pods every 8 s at a 2 s poll need 250.
LOG_READS_PER_POLL = 250
#: Log reads in flight at once.
CONCURRENT_READS = 5

K = TypeVar("K")


@attrs.frozen
class Want(Generic[K]):
    """A pod whose log may be read: ``key`` names it; ``ended``: its container has terminated;
    ``due``: when it is next to be read (0: at once)."""

    key: K
    ended: bool
    due: float


def spacing(running: int) -> float:
    """The least time between two reads of one pod's log while ``running`` pods run."""
    return min(MAX_WAIT, running / READS_PER_SECOND)


def next_due(now: float, quiet: int, running: int) -> float:
    """When to read a pod's log again, after ``quiet`` reads in a row found nothing new."""
    backoff = min(QUIET_MAX, QUIET_FIRST * 2 ** (quiet - 1)) if quiet > 0 else 0.0
    return now + min(MAX_WAIT, max(backoff, spacing(running)))


def pick(wants: Iterable[Want[K]], now: float, cap: int | None = None) -> list[K]:
    """The keys to read in this poll: ended pods, then due ones by due time, at most ``cap``."""
    limit = LOG_READS_PER_POLL if cap is None else cap
    ready = [w for w in wants if w.ended or w.due <= now]
    ready.sort(key=lambda w: (not w.ended, w.due))
    return [w.key for w in ready[:limit]]
