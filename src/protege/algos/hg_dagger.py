"""HG-DAgger (Kelly, Sidrane, Driggs-Campbell & Kochenderfer, ICRA 2019, "HG-DAgger:
Interactive Imitation Learning with Human Experts").

The novice drives; a supervisor takes full control when it judges the novice unsafe and
hands control back once it has recovered. Only the takeover steps are labeled, and the
novice is retrained on all labels after every round. Here the supervisor is simulated by the
task's expert (:class:`~protege.rollout.gates_interactive.SimulatedSupervisorGate`): it takes
over when the state leaves a per-task safe set (:data:`RISK_SCORES`) or when the novice keeps
disagreeing with it, and hands back inside a band of the safe set. A person at the keyboard
plugs in the same way with their own gate.

Example:
    >>> result = hg_dagger.run(task, "runs/hg/store", DAggerConfig(rounds=8),
    ...                        SupervisorConfig(disagreement_threshold=0.5, window=10))
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from protege.algos import dagger
from protege.algos.dagger import DAggerConfig, DAggerResult, RoundContext
from protege.errors import ConfigError
from protege.policies.policy import Policy
from protege.rollout.gates import Gate
from protege.rollout.gates_interactive import RiskScore, SimulatedSupervisorGate
from protege.tasks.base import Task


def cartpole_risk(obs: np.ndarray, t: np.ndarray) -> np.ndarray:
    """CartPole: the pole's angle against 0.12 rad and the cart's position against 1.8
    (the episode ends at 0.21 rad and 2.4)."""
    obs = np.asarray(obs, np.float64)
    return np.maximum(np.abs(obs[:, 0]) / 1.8, np.abs(obs[:, 2]) / 0.12)


def lunar_risk(obs: np.ndarray, t: np.ndarray) -> np.ndarray:
    """LunarLander: how far the lander strays outside the envelope the heuristic pilot keeps.

    Each term is 1 at about the 99.5th percentile of the expert's own states (observation
    units): spin |ω| against 0.45; tilt away from the pilot's target attitude
    (``clip(0.5x + ẋ, ±0.4)``) against 0.65; distance from the pad's centre against 0.5;
    sink rate against ``0.3 + y``; below y = 0.25, the attitude |θ| against 0.38 and the
    sideways speed against 0.75; and patience, 600 steps. Once a leg touches only patience
    counts.
    """
    s = np.asarray(obs, np.float64)
    x, y, vx, vy, angle, spin = (s[:, k] for k in range(6))
    landed = (s[:, 6] > 0) | (s[:, 7] > 0)
    low = y < 0.25
    target = np.clip(0.5 * x + vx, -0.4, 0.4)
    late = np.asarray(t, np.float64) / 600.0
    terms = [
        np.abs(spin) / 0.45,
        np.abs(angle - target) / 0.65,
        np.abs(x) / 0.5,
        np.maximum(-vy, 0.0) / (0.3 + np.maximum(y, 0.0)),
        np.where(low, np.abs(angle) / 0.38, 0.0),
        np.where(low, np.abs(vx) / 0.75, 0.0),
        late,
    ]
    return np.where(landed, late, np.maximum.reduce(terms))


RISK_SCORES: dict[str, RiskScore] = {
    "cartpole": cartpole_risk,
    "lunarlander": lunar_risk,
    "lunarlander-continuous": lunar_risk,
}
"""Per-task safe sets of the simulated supervisor (> 1 is outside). Add yours here or pass
``risk=`` to :class:`SupervisorConfig`."""


@dataclass
class SupervisorConfig:
    """How the simulated supervisor gates (see :class:`SimulatedSupervisorGate`)."""

    use_risk: bool = True
    """Take over outside the task's safe set (:data:`RISK_SCORES`)."""
    disagreement_threshold: float | None = 0.5
    """Take over when the novice's mean disagreement over ``window`` steps exceeds it (1/0
    per step for discrete actions, L2 distance for continuous). None: never."""
    window: int = 10
    hand_back: float = 0.7
    """Hand back once the risk is at most this (LunarLander's expert is below 0.7 in 75% of
    its own states)."""
    min_takeover: int = 10
    risk: RiskScore | None = None
    """Overrides the task's registered risk score."""

    def risk_for(self, task: Task) -> RiskScore | None:
        if not self.use_risk:
            return None
        risk = self.risk or RISK_SCORES.get(task.name)
        if risk is None:
            raise ConfigError(
                f"no safe set is registered for task {task.name!r}: pass "
                "SupervisorConfig(risk=...) or use_risk=False"
            )
        return risk


def make_gate(task: Task, sc: SupervisorConfig) -> SimulatedSupervisorGate:
    return SimulatedSupervisorGate(
        risk=sc.risk_for(task),
        disagreement_threshold=sc.disagreement_threshold,
        window=sc.window,
        hand_back=sc.hand_back,
        min_takeover=sc.min_takeover,
    )


def run(
    task: Task,
    store_path: str | os.PathLike[str],
    config: DAggerConfig | None = None,
    method_config: SupervisorConfig | None = None,
    *,
    make_policy: Callable[[], Policy] | None = None,
    gate_factory: Callable[[RoundContext], Gate] | None = None,
    **kwargs: Any,
) -> DAggerResult:
    """HG-DAgger through :func:`protege.algos.dagger.run` with the simulated supervisor (or
    any ``gate_factory``, e.g. a person's takeover gate)."""
    sc = method_config or SupervisorConfig()
    factory = gate_factory or (lambda ctx: make_gate(task, sc))
    kwargs.setdefault("method", "hg-dagger")
    return dagger.run(
        task, make_policy or dagger.policy_factory(task), store_path, config, factory, **kwargs
    )
