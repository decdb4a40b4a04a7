"""Fleet mode's settings: N robots, K supervisors, who helps whom and what help costs.

:class:`FleetConfig` extends :class:`~protege.configs.methods.ThriftyConfig`: a fleet's robots
are ThriftyDAgger learners (a bootstrap ensemble whose action variance is the *novelty* and a
success critic whose Q is the *risk*), and their gate's calibrated thresholds decide when a
robot asks for help and when a supervisor hands back (:mod:`protege.algos.fleet`).
"""

from __future__ import annotations

from dataclasses import dataclass

from protege.configs.checks import MAX_COUNT, MAX_STEPS, check_float, check_int
from protege.configs.methods import ThriftyConfig
from protege.errors import ConfigError

ALLOCATIONS = ("priority", "random", "round-robin")
"""How free supervisors pick robots: by the robots' requests in priority order (Fleet-DAgger),
or ignoring them (the naive baselines)."""
WAITS = ("pause", "continue")
"""What a robot that asked for help does while no supervisor is free."""


@dataclass
class FleetConfig(ThriftyConfig):
    """A fleet of ``robots`` learner-driven robots sharing ``supervisors`` supervisors
    (Fleet-DAgger, Hoque et al. 2022). Times are in fleet steps (one env step of every moving
    robot); ``step_seconds`` turns them into supervisor-seconds. ``calibrate_every`` is not
    used: the thresholds are re-calibrated between rounds."""

    robots: int = 8
    """N: robots running at once (envs in this process, or shared out among the Ray
    workers with ``--workers``); each round's episodes are handed out to them as they
    finish."""
    supervisors: int = 2
    """K: supervisors (the task's expert, with the time costs below)."""
    allocation: str = "priority"
    """"priority": free supervisors go to the robots that ask, highest priority first
    (failures, then novelty, then risk; ``priority_order``); "random" / "round-robin": to
    robots picked at random / in turn, whether or not they asked (the naive baselines)."""
    priority_order: str = "CUR"
    """The lexicographic order of the priority: C (a failure waiting for a reset),
    U (novelty above δ_h), R (risk: 1 − Q, where Q is below β_h)."""
    wait: str = "continue"
    """A robot that asked while no supervisor is free: "continue" (it drives on and asks
    again at its next step, as Fleet-DAgger's robots do) or "pause" (it stops, idle, until a
    supervisor comes: safer, and costlier in idle time). A failed robot always waits."""
    switch_steps: int = 3
    """Context switch: steps a supervisor spends taking in a robot's situation before acting
    (the robot waits)."""
    min_takeover: int = 10
    """Fewest steps a supervisor drives once it takes over."""
    max_takeover: int = 200
    """Most steps a supervisor drives before handing back anyway."""
    reset_steps: int = 10
    """Steps a supervisor spends resetting a robot that failed (a hard reset; the robot
    waits for it)."""
    step_seconds: float = 0.1
    """Seconds per step (a 10 Hz teleoperation rate): turns steps into supervisor-seconds."""
    people: bool = False
    """The K supervisors are people, one teleop window each (needs a display): a free person
    is given the waiting robot of highest priority, presses SPACE to take over, drives with
    the task's keys (each step a label) and presses ENTER to hand back (SPACE also resets a
    failed robot; ESC ends the run). The fleet then steps at ``1 / step_seconds`` Hz, and
    the switch, takeover and reset times are the people's (:mod:`protege.teleop.desk`)."""
    displays: tuple[str, ...] = ()
    """With ``people``: the X display of each person's window (e.g. ``:0 :1``, or
    ``otherhost:10`` through ``ssh -X``), one per supervisor; X gives one keyboard focus per
    display, so people who type at once need a display each. Empty: every window on
    ``DISPLAY`` (one person at a time types)."""
    supervisor_share: float | None = None
    """Random and round-robin only: the largest share of the supervisors' time they may
    spend (a free supervisor starts a visit only while under this pace), to compare with
    "priority" at the same budget. None: every free supervisor is always assigned."""

    def __post_init__(self) -> None:
        super().__post_init__()
        own = "FleetConfig"
        check_int(own, "robots", self.robots, 1, MAX_COUNT)
        check_int(own, "supervisors", self.supervisors, 1, MAX_COUNT)
        check_int(own, "switch_steps", self.switch_steps, 0, MAX_STEPS)
        check_int(own, "min_takeover", self.min_takeover, 1, MAX_STEPS)
        check_int(own, "max_takeover", self.max_takeover, self.min_takeover, MAX_STEPS)
        check_int(own, "reset_steps", self.reset_steps, 0, MAX_STEPS)
        check_float(own, "step_seconds", self.step_seconds, 0.0, lo_open=True)
        if self.supervisor_share is not None:
            check_float(own, "supervisor_share", self.supervisor_share, 0.0, 1.0, lo_open=True)
        if self.displays and len(self.displays) != self.supervisors:
            raise ConfigError(
                f"FleetConfig.displays (--displays) names {len(self.displays)} displays for "
                f"{self.supervisors} supervisors: give one per supervisor, or none"
            )
        if self.allocation not in ALLOCATIONS:
            raise ConfigError(
                f"FleetConfig.allocation (--allocation) must be one of {', '.join(ALLOCATIONS)}, "
                f"got {self.allocation!r}"
            )
        if self.wait not in WAITS:
            raise ConfigError(
                f"FleetConfig.wait (--wait) must be one of {', '.join(WAITS)}, got {self.wait!r}"
            )
        order = self.priority_order
        if not order or len(set(order)) != len(order) or set(order) - set("CUR"):
            raise ConfigError(
                "FleetConfig.priority_order (--priority-order) must be distinct letters of "
                f"C, U and R (e.g. CUR), got {order!r}"
            )
