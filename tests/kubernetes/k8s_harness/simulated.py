"""TEST-ONLY simulated runtime: a container that is no process at all, for scale tests.

A pod annotated ``fake-kubelet.offload.test/runtime: simulated`` runs, writes a line every
``simulated-every`` seconds (default 1), ``simulated-lines`` lines in all (default 60), then
ends with exit code 0, so its pod Succeeds. Its command is ignored: nothing is unpacked,
nothing is executed, the lines are made by the container's own thread in the fake kubelet
(the thread every container has anyway). A thousand such pods run on a 2-core machine where
a thousand processes (or Docker containers) would not.

Line ``i`` (from 0) is ``tick-<i> <ns>``: ``<ns>`` is the time it was written
(``time.time_ns()``, also the log entry's timestamp), so a reader can tell how late it saw
it. SIGTERM or SIGKILL ends the container at once (exit code 143 or 137), as a process that
does not trap them would.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid

from k8s_harness.logstore import ContainerLog, now_ns
from k8s_harness.runtime import LABEL, ContainerSpec

#: Pod annotations of the simulated runtime (strings).
SIMULATED_LINES = f"{LABEL}/simulated-lines"
SIMULATED_EVERY = f"{LABEL}/simulated-every"


def line(index: int, at_ns: int) -> bytes:
    return f"tick-{index} {at_ns}\n".encode()


class SimulatedHandle:
    def __init__(self, log: ContainerLog, lines: int, every: float) -> None:
        self.container_id = f"simulated://{uuid.uuid4().hex}"
        self.image_id = ""
        self.started_ns = now_ns()
        self.finished_ns = 0
        self.oom_killed = False
        self._log, self._lines, self._every = log, lines, every
        self._stopped = threading.Event()
        self._signal = 0

    def signal(self, sig: int) -> None:
        if sig in (signal.SIGTERM, signal.SIGKILL, signal.SIGINT):
            self._signal = self._signal or int(sig)
            self._stopped.set()

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def wait(self) -> int:
        """Write the lines on schedule (in the calling thread); the exit code."""
        start = time.monotonic()
        for index in range(self._lines):
            if self._stopped.wait(max(0.0, start + index * self._every - time.monotonic())):
                break
            at = now_ns()
            self._log.append(line(index, at), at)
        self.finished_ns = now_ns()
        return 128 + self._signal if self._signal else 0

    def remove(self) -> None:
        self.kill()


class SimulatedRuntime:
    name = "simulated"

    def start(self, spec: ContainerSpec, log: ContainerLog) -> SimulatedHandle:
        lines = int(spec.annotations.get(SIMULATED_LINES, "60"))
        every = float(spec.annotations.get(SIMULATED_EVERY, "1"))
        return SimulatedHandle(log, lines, every)

    def cleanup(self) -> None:
        pass
