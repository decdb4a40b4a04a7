"""The fixed-rate clock of a teleop session: when the next decision is due, and what each
step costs in wall time.

Each step is one tick (``fps``, default 20 Hz). The tick sleeps until its deadline while
its frame is on screen; the next decision is then due one period after this one was due,
or, if this one came more than a period late, one period from now (no bursts to catch up).
If the env is slower than ``fps`` the loop simply runs at the env's rate.

Each tick is *charged* the wall time since the previous one (the time its frame was on
screen and the decision was made), capped at ``max_gap`` so a stall (training between
rounds, a slow reset) is not charged; after a pause or a notice the clock restarts
(:meth:`FixedRateClock.restart`) and the wait is not charged.

Example:
    >>> clock = FixedRateClock(20.0)
    >>> clock.sleep_until_due()
    >>> dt = clock.charge(clock.now())
"""

from __future__ import annotations

import time

from protege.errors import ConfigError

__all__ = ["FixedRateClock"]


class FixedRateClock:
    """Deadlines at ``fps`` Hz and the wall time charged to each tick.

    Args:
        fps: the control rate in Hz.
        max_gap: the most wall time one tick is charged (default ``max(4/fps, 0.5)`` s).
    """

    def __init__(self, fps: float, max_gap: float | None = None):
        if not fps > 0:
            raise ConfigError(f"fps must be > 0, got {fps}")
        self.fps = float(fps)
        self.period = 1.0 / self.fps
        self.max_gap = max(4.0 * self.period, 0.5) if max_gap is None else float(max_gap)
        self.rate = 0.0
        """The measured decision rate (Hz, smoothed); 0 before the second tick."""
        self.t0: float | None = None
        """``perf_counter()`` at the first charged tick."""
        self.t0_unix: float | None = None
        """The Unix time (``time.time()``) of :attr:`t0`."""
        self._deadline: float | None = None
        self._last: float | None = None

    @staticmethod
    def now() -> float:
        """The clock's time (``time.perf_counter()``)."""
        return time.perf_counter()

    def sleep_until_due(self) -> None:
        """Sleep until the current tick's deadline (at once if it has passed or there is none)."""
        now = time.perf_counter()
        if self._deadline is not None and self._deadline > now:
            time.sleep(self._deadline - now)

    def charge(self, now: float) -> float:
        """Take the decision made at ``now``: set the next deadline and return the wall time
        charged to this tick (one period for the first tick after a restart)."""
        dt = self.period if self._last is None else now - self._last
        dt = min(dt, self.max_gap)
        self._last = now
        due = now if self._deadline is None else max(self._deadline, now - self.period)
        self._deadline = due + self.period
        if self.t0 is None:
            self.t0 = now
            self.t0_unix = time.time() - (time.perf_counter() - now)
        self.rate = 0.9 * self.rate + 0.1 / max(dt, 1e-6) if self.rate else 1.0 / max(dt, 1e-6)
        return dt

    def since_start(self, now: float) -> float:
        """Seconds from the first charged tick to ``now``."""
        return now - (now if self.t0 is None else self.t0)

    def restart(self) -> None:
        """Forget the deadline and the last tick: the time until the next tick (a pause, a
        notice between rounds) is not charged."""
        self._deadline = None
        self._last = None
