"""The built-in classic-control and Box2D tasks, registered on import.

Each pairs a gymnasium env with a scripted expert from :mod:`protege.experts.classic`.
``expert_return`` is the floor the expert's mean return clears over seeds 0–19 (tested in
``tests/test_experts.py``).
"""

from __future__ import annotations

from functools import partial

from protege.experts.classic import (
    CartPoleExpert,
    LunarLanderExpert,
    MountainCarContinuousExpert,
    PendulumExpert,
)
from protege.tasks import register
from protege.tasks.base import EpisodeOutcome, Task

# Success tests are module-level functions (not lambdas) so tasks pickle into subprocesses.


def survived(outcome: EpisodeOutcome) -> bool:
    """The episode ran to the horizon without terminating (CartPole: the pole never fell)."""
    return not outcome.terminated


def reached_goal(outcome: EpisodeOutcome) -> bool:
    """The episode terminated (MountainCar: the car reached the flag)."""
    return outcome.terminated


def return_at_least_200(outcome: EpisodeOutcome) -> bool:
    """LunarLander's own "solved" level: a return of at least 200."""
    return outcome.episode_return >= 200.0


def return_at_least_minus_200(outcome: EpisodeOutcome) -> bool:
    """Pendulum: a return of at least −200."""
    return outcome.episode_return >= -200.0


register(
    Task(
        name="cartpole",
        env_id="CartPole-v1",
        expert_factory=CartPoleExpert,
        horizon=500,
        success=survived,
        description="Balance a pole on a cart for 500 steps; success = it never falls.",
        expert_return=500.0,
    )
)

register(
    Task(
        name="lunarlander",
        env_id="LunarLander-v3",
        expert_factory=partial(LunarLanderExpert, continuous=False),
        horizon=1000,
        success=return_at_least_200,
        description="Land on the pad with 4 discrete engine actions; success = return ≥ 200.",
        expert_return=200.0,
    )
)

register(
    Task(
        name="lunarlander-continuous",
        env_id="LunarLander-v3",
        expert_factory=partial(LunarLanderExpert, continuous=True),
        horizon=1000,
        success=return_at_least_200,
        env_kwargs={"continuous": True},
        description="Land on the pad with continuous (main, lateral) throttles; "
        "success = return ≥ 200.",
        expert_return=200.0,
    )
)

register(
    Task(
        name="pendulum",
        env_id="Pendulum-v1",
        expert_factory=PendulumExpert,
        horizon=200,
        success=return_at_least_minus_200,
        description="Swing a pendulum up and hold it upright; success = return ≥ −200 "
        "(the expert gets ≈70%: starts near the bottom cost more).",
        expert_return=-200.0,
    )
)

register(
    Task(
        name="mountaincar-continuous",
        env_id="MountainCarContinuous-v0",
        expert_factory=MountainCarContinuousExpert,
        horizon=999,
        success=reached_goal,
        description="Rock an underpowered car up the right hill; success = it reaches the flag.",
        expert_return=90.0,
    )
)
