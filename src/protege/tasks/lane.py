"""DriftCorridor: a discrete lane-keeping corridor where compounding error is exact and tunable.

The environment of the horizon experiment (:mod:`protege.experiments.horizon`): the smallest
task on which behavioural cloning's expected mistakes grow like εT² and DAgger's like εT
(Ross & Bagnell 2010; Ross, Gordon & Bagnell 2011, "A Reduction of Imitation Learning and
Structured Prediction to No-Regret Online Learning").

**State and observation.** The car's lateral offset from the centreline is an integer
``d ∈ {−W..W}`` (``width`` W = 5). The observation is ``o_t = (d_t, Δc_t)`` as a float32
``Box(2)``, where ``Δc_t ∈ {−1, 0, +1}`` is the centreline increment about to be applied. On
the straight road (``p_turn = 0``, the default) Δc ≡ 0; on the winding road Δc_t is drawn
i.i.d. with ``P(+1) = P(−1) = p_turn / 2``.

**Actions.** ``Discrete(3)``: index 0, 1, 2 means steer −1, 0, +1
(:data:`~protege.tasks.lane_dynamics.STEER`).

**Dynamics.** ``d_{t+1} = clip(d_t + ã_t − Δc_t, −W, W)`` where ``ã_t`` is the *executed*
steer (:func:`~protege.tasks.lane_dynamics.lane_transition`, and
:func:`~protege.tasks.lane_dynamics.next_offset` for one env).

**Trembling hand (rate ε).** A slip replaces the intended action by one of the *other two*
actions, each with probability ε/2 (:func:`~protege.tasks.lane_dynamics.slip`): every slip
executes a different action, and the executed action is always a valid one. The horizon
experiment puts the slip in the learner (:class:`protege.experiments.tabular.SlippingTable`,
an actor of the rollout loop), so the env itself is deterministic there (``epsilon = 0``).
The env can also slip by itself (``epsilon > 0``) on the steps it is told are
*learner-controlled* (the ``learner_controlled`` attribute, default ``True``); set it with
any of:

* ``env.unwrapped.learner_controlled = False`` (or ``vec_env.set_attr("learner_controlled",
  flags)`` on a vector env), before ``step``;
* ``env.reset(options={"learner_controlled": False})`` (kept until changed);
* ``env.unwrapped.set_controller("expert")`` / ``set_controller("learner")``.

Every ``info`` reports ``learner_controlled``, whether the env ``slipped``, the
``executed_steer`` ã, the expert's action index ``expert_action`` for the observation the
action was taken in, ``mistake`` (ã ≠ π*(o)), the new ``offset`` and the step's ``cost``.

**Reward.** ``−cost`` with ``cost = 𝟙[d_{t+1} ≠ 0]`` (off-centre after the step), so the
episode return is minus the number of off-centre steps. Episodes truncate after ``horizon``
steps; nothing terminates.

**Cliff variant** (``cliff=True``). ``|d| ≥ cliff_offset`` (default W) is absorbing: the car
stays there and every remaining step costs 1. Recoverability fails (u ~ T), so DAgger's cost
becomes quadratic too when the cliff is within reach (e.g. ``cliff_offset=1``).

**Initial offsets.** ``init_offset_spread = s > 0`` draws ``d_0`` uniformly from {−s..s}
(recovery states then appear in the expert's own demonstrations).

**Expert.** :class:`LaneExpert` is the scripted, batched, queryable supervisor
``π*(d, Δc) = clip(Δc − d, −1, 1)``: it keeps d = 0 forever on any road and restores the
centre from ``|d| = 1`` in one step on the straight road.

**Vector env.** :class:`~protege.tasks.lane_env.DriftCorridorVector` steps N corridors as
numpy arrays (the same dynamics, rewards, infos and gymnasium's same-step autoreset), so
millions of Monte Carlo steps through :func:`protege.rollout.loop.rollout` take seconds.

**Where things live.** The transition model is :mod:`protege.tasks.lane_dynamics`, the
envs :mod:`protege.tasks.lane_env` (:class:`~protege.tasks.lane_env.DriftCorridor`,
:class:`~protege.tasks.lane_env.DriftCorridorVector`); this module holds the task: the expert,
the safe set of HG-DAgger's simulated supervisor (:class:`LaneRisk`), the success test and
the teleop keys, and registers the task ``lane`` (winding road, ε = 0.01, horizon 200).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from protege.tasks import register
from protege.tasks.base import EpisodeOutcome, Task
from protege.tasks.lane_dynamics import HORIZON, expert_steer
from protege.tasks.lane_env import make_drift_corridor
from protege.teleop.controls import DiscreteControls


class LaneExpert:
    """The scripted DriftCorridor supervisor ``π*(d, Δc) = clip(Δc − d, −1, 1)``.

    Batched and stateless: ``act`` takes ``(N, 2)`` observations (a single ``(2,)`` one is
    treated as N = 1) and returns ``(N,)`` int64 action indices (steer + 1). It never leaves
    the centreline and never errs; it needs nothing from ``infos``.
    """

    def act(self, obs: np.ndarray, infos: dict[str, Any] | None = None) -> np.ndarray:
        arr = np.asarray(obs, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise ValueError(f"LaneExpert: expected observations of shape (N, 2), got {arr.shape}")
        d = np.rint(arr[:, 0]).astype(np.int64)
        dc = np.rint(arr[:, 1]).astype(np.int64)
        return (expert_steer(d, dc) + 1).astype(np.int64)

    def begin_run(self, seed: int | None = None) -> None:
        """Stateless: nothing to reset."""


@dataclass(frozen=True)
class LaneRisk:
    """A safe set for HG-DAgger's simulated supervisor on the lane.

    ``risk(obs, t) = |d| / (threshold − ½)``: above 1 exactly where ``|d| ≥ threshold`` (the
    supervisor takes over), 0 on the centreline (with ``hand_back = 0`` it hands back there).
    Usable as ``SupervisorConfig(risk=LaneRisk(1))``.
    """

    threshold: int = 1

    def __call__(self, obs: np.ndarray, t: np.ndarray) -> np.ndarray:
        d = np.rint(np.asarray(obs, dtype=np.float64)[:, 0])
        return np.abs(d) / (self.threshold - 0.5)


def lane_success(outcome: EpisodeOutcome) -> bool:
    """Success: the car ends the episode on the centreline."""
    return outcome.final_info.get("offset", 1) == 0


LANE = register(
    Task(
        name="lane",
        env_id=make_drift_corridor,
        expert_factory=LaneExpert,
        horizon=HORIZON,
        success=lane_success,
        env_kwargs={"horizon": HORIZON, "epsilon": 0.01, "p_turn": 0.2},
        risk=LaneRisk(1),
        controls=DiscreteControls(
            {"left": 0, "right": 2},
            noop=1,
            names=("steer -1", "straight", "steer +1"),
            help="Left/Right: steer  no key: straight",
        ),
        description=(
            "DriftCorridor lane keeping (Ross, Gordon & Bagnell 2011 compounding-error toy): "
            "observation (offset d, road increment Δc), 3 steer actions, winding road "
            "p_turn=0.2, learner slips with ε=0.01 (set env.unwrapped.learner_controlled=False "
            "while the expert drives), cost = off-centre steps."
        ),
    )
)
"""The registered ``lane`` task."""
