"""The adaptive poll interval shared by the whole run: fast at first, backing off while
nothing changes, reset as soon as something does."""

from __future__ import annotations

import attrs

#: Seconds of each turn when tasks of several backends that can be woken are waited for:
#: ``Executor.wait_any`` can block in one backend's ``wait`` at a time, so they take turns.
SHARED_WAIT = 0.05


@attrs.define
class AdaptiveInterval:
    """``next()`` gives the wait before the next poll.

    It starts at ``minimum``, grows by ``factor`` each quiet poll up to ``maximum``,
    and drops back to ``minimum`` when ``changed()`` is called (a state change or new
    log lines), so short tasks are seen finishing quickly and long ones cost little.
    """

    minimum: float = 0.02
    maximum: float = 2.0
    factor: float = 1.5
    current: float = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.current = self.minimum

    def changed(self) -> None:
        self.current = self.minimum

    def next(self) -> float:
        wait = self.current
        self.current = min(self.maximum, self.current * self.factor)
        return wait
