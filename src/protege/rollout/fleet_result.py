"""What a fleet run did (:class:`FleetResult`): steps, episodes, labels, the supervisors'
time and the robots' waiting, and what that time bought (return on human effort)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FleetResult:
    """What a fleet run did and what its supervisors' time bought."""

    steps: int = 0
    """Fleet steps (every robot's clock)."""
    episodes: int = 0
    successes: int = 0
    returns: float = 0.0
    """Summed return of the finished episodes."""
    labels: int = 0
    """Supervisor-driven steps, each an expert label."""
    expert_queries: int = 0
    interventions: int = 0
    """Interventions in finished episodes (:func:`~protege.rollout.loop.count_interventions`)."""
    supervisor_steps: int = 0
    """Steps some supervisor was busy (switching, driving or resetting), summed over them."""
    idle_steps: int = 0
    """Robot-steps spent waiting: asked, being taken over, failed or being reset."""
    robot_steps: int = 0
    """Robot-steps of robots with an episode to run (moving or waiting)."""
    requests: int = 0
    """Times a robot asked for help."""
    visits: int = 0
    """Times a supervisor went to a robot."""
    resets: int = 0
    """Hard resets of failed robots."""
    step_seconds: float = 0.1

    @property
    def supervisor_seconds(self) -> float:
        return self.supervisor_steps * self.step_seconds

    @property
    def idle_fraction(self) -> float:
        """Share of the robots' time spent waiting."""
        return self.idle_steps / self.robot_steps if self.robot_steps else 0.0

    @property
    def rohe(self) -> float:
        """Return on human effort: successes per supervisor-minute (no supervisor time: inf
        if anything succeeded, else nan)."""
        return _per_minute(self.successes, self.supervisor_seconds)

    @property
    def return_per_minute(self) -> float:
        """Summed return of finished episodes per supervisor-minute."""
        return _per_minute(self.returns, self.supervisor_seconds)

    def to_dict(self) -> dict[str, float]:
        """Every count and the derived rates, JSON-ready."""
        out: dict[str, float] = {k: float(v) for k, v in vars(self).items()}
        out.update(
            supervisor_seconds=self.supervisor_seconds,
            idle_fraction=self.idle_fraction,
            rohe=self.rohe,
            return_per_minute=self.return_per_minute,
        )
        return out


def _per_minute(amount: float, seconds: float) -> float:
    if seconds > 0:
        return amount / (seconds / 60.0)
    return float("inf") if amount > 0 else float("nan")
