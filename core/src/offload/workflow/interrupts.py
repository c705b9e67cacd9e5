"""Ctrl-C and SIGTERM during a run: counted, never lost, and able to cut a wait short.

The handler only counts signals, so no backend call ever runs inside it, with one
exception: while the driver is inside a call that only *looks* (a poll, the wait
between polls), the handler raises :class:`Interrupted` to leave it at once. A hung
engine then cannot hold an interrupt for the length of a client's read timeout. Calls
that change something (submit, collect, cancel) are never cut short.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType


class Interrupted(BaseException):
    """Raised inside an interruptible call when a signal arrives."""


class Interrupts:
    """Counts SIGINT and SIGTERM while installed (``with Interrupts() as interrupts:``)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.count = 0
        self.handled = 0
        self._interruptible = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> Interrupts:
        self._previous = {sig: signal.signal(sig, self._on_signal) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self._interruptible:
            self._interruptible = False
            raise Interrupted()

    @property
    def pending(self) -> bool:
        """Whether a signal came that the run has not acted on yet."""
        return self.count != self.handled

    def take(self) -> int:
        """Mark every signal so far as acted on; returns how many there have been in all."""
        self.handled = self.count
        return self.count

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """Run a looking-only call that a signal may cut short (raising :class:`Interrupted`)."""
        if self.pending:
            raise Interrupted()
        self._interruptible = True
        try:
            yield
        finally:
            self._interruptible = False
