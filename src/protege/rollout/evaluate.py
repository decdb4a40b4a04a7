"""Judge a policy on rollouts, never on training loss.

``evaluate`` runs the policy on a vector env of the task and, because the task's expert can be
asked about any state, measures how far the learner's choices drift from the expert's along
the learner's *own* trajectory, step by step: the picture of compounding error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from protege.experts.adapters import check_expert
from protege.rollout.gates import ExpertGate, LearnerGate
from protege.rollout.loop import Actor, rollout
from protege.rollout.observers import Disagreement, RolloutResult, Success, progress_bar
from protege.rollout.remote import SlotUnit, run_slots, slot_units
from protege.tasks.base import Task


@dataclass
class Evaluation:
    """Rollout metrics of one policy (or the expert) on one task."""

    task: str
    """The task's name."""
    who: str
    """What was evaluated: "policy" (:func:`evaluate`) or "expert" (:func:`evaluate_expert`)."""
    seed: int
    """Seed of the first episode (sub-env i's first episode is seeded ``seed + i``)."""
    returns: np.ndarray
    """(episodes,) the return of each episode."""
    lengths: np.ndarray
    """(episodes,) the steps of each episode."""
    successes: np.ndarray
    """(episodes,) bool: the task's success test on each episode."""
    disagreement_by_step: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """(T_max,) mean disagreement with the expert at each time step over the episodes that
    reached that step with the learner acting (NaN where none did)."""
    episodes_by_step: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    """(T_max,) how many episodes contribute to ``disagreement_by_step`` at each step."""
    disagreement: float = float("nan")
    """Mean per-step disagreement over all learner steps."""
    expert_queries: int = 0
    """Times the expert was asked for an action (to measure the disagreement)."""
    env_seconds: float = 0.0
    """Seconds spent stepping the envs."""
    policy_seconds: float = 0.0
    """Seconds spent in the policy's ``act``."""
    wall_seconds: float = 0.0
    """Wall time of the whole evaluation."""

    @property
    def mean_return(self) -> float:
        """Mean return over the episodes."""
        return float(np.mean(self.returns))

    @property
    def std_return(self) -> float:
        """Standard deviation of the returns (population, ``np.std``)."""
        return float(np.std(self.returns))

    @property
    def success_rate(self) -> float:
        """Fraction of the episodes that succeeded."""
        return float(np.mean(self.successes))

    @property
    def mean_length(self) -> float:
        """Mean episode length."""
        return float(np.mean(self.lengths))

    def summary(self) -> dict[str, Any]:
        """The headline numbers as a JSON-ready dict (task, who, seed, episodes, returns,
        success, length, disagreement)."""
        return {
            "task": self.task,
            "who": self.who,
            "seed": self.seed,
            "episodes": len(self.returns),
            "mean_return": self.mean_return,
            "std_return": self.std_return,
            "success_rate": self.success_rate,
            "mean_length": self.mean_length,
            "disagreement": self.disagreement,
        }

    @classmethod
    def from_rollout(cls, task: str, who: str, r: RolloutResult) -> Evaluation:
        """The evaluation of a finished rollout's result (``r``)."""
        by_step, counts = _per_step_mean(r.disagreement)
        flat = np.concatenate(r.disagreement) if r.disagreement else np.zeros(0)
        flat = flat[~np.isnan(flat)]
        return cls(
            task=task,
            who=who,
            seed=r.seed,
            returns=np.asarray(r.returns),
            lengths=np.asarray(r.lengths),
            successes=np.asarray(r.successes, bool),
            disagreement_by_step=by_step,
            episodes_by_step=counts,
            disagreement=float(flat.mean()) if flat.size else float("nan"),
            expert_queries=r.expert_queries,
            env_seconds=r.env_seconds,
            policy_seconds=r.learner_seconds,
            wall_seconds=r.wall_seconds,
        )


def _per_step_mean(series: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    if not series:
        return np.zeros(0), np.zeros(0, np.int64)
    t_max = max(len(s) for s in series)
    total = np.zeros(t_max)
    count = np.zeros(t_max, np.int64)
    for s in series:
        ok = ~np.isnan(s)
        total[: len(s)][ok] += s[ok]
        count[: len(s)] += ok
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan), count


def evaluate(
    policy: Actor,
    task: Task,
    episodes: int = 50,
    n_envs: int = 8,
    seed: int = 0,
    deterministic: bool = True,
    measure_disagreement: bool = True,
    progress: bool | str = False,
    workers: Any | None = None,
) -> Evaluation:
    """Roll ``policy`` out for ``episodes`` episodes on ``task`` and measure it.

    With ``workers`` the sub-envs run on Ray workers (:mod:`protege.rollout.remote`): the
    same episodes and numbers (a stochastic policy's draws differ: each sub-env samples from
    its own generator there, seeded from (seed, sub-env)).

    Example:
        >>> ev = protege.evaluate(policy, protege.tasks.make("lunarlander"), episodes=50, seed=0)
        >>> ev.mean_return, ev.success_rate, ev.disagreement
    """
    if workers is not None:

        def unit(slot: int, slot_seed: int, n: int) -> SlotUnit:
            return SlotUnit(
                task,
                slot,
                slot_seed,
                n,
                LearnerGate(label=False),
                None,
                measure_disagreement,
                learner=policy,
                measure_disagreement=measure_disagreement,
                deterministic=deterministic,
                generator_seed=None if deterministic else slot_seed,
            )

        units = slot_units(episodes, n_envs, seed, unit)
        return Evaluation.from_rollout(
            task.name, "policy", run_slots(workers, units, seed, progress=progress)
        )
    env = task.make_vec_env(min(n_envs, episodes))
    try:
        expert = task.make_expert() if measure_disagreement else None
        check_expert(expert, env.single_observation_space, env.single_action_space)
        generator = torch.Generator().manual_seed(seed)
        r = rollout(
            env,
            episodes,
            gate=LearnerGate(label=False),
            seed=seed,
            learner=policy,
            expert=expert,
            observers=[
                Success(task.success),
                *([Disagreement()] if measure_disagreement else []),
                *progress_bar(progress),
            ],
            deterministic=deterministic,
            generator=generator,
        )
    finally:
        env.close()
    return Evaluation.from_rollout(task.name, "policy", r)


def evaluate_expert(
    task: Task,
    episodes: int = 50,
    n_envs: int = 8,
    seed: int = 0,
    progress: bool | str = False,
    workers: Any | None = None,
) -> Evaluation:
    """The task's expert on the same protocol as :func:`evaluate` (the reference level);
    ``workers`` as there."""
    if workers is not None:

        def unit(slot: int, slot_seed: int, n: int) -> SlotUnit:
            return SlotUnit(task, slot, slot_seed, n, ExpertGate(), None, True)

        units = slot_units(episodes, n_envs, seed, unit)
        return Evaluation.from_rollout(
            task.name, "expert", run_slots(workers, units, seed, progress=progress)
        )
    env = task.make_vec_env(min(n_envs, episodes))
    try:
        expert = task.make_expert()
        check_expert(expert, env.single_observation_space, env.single_action_space)
        expert.begin_run(seed)
        r = rollout(
            env,
            episodes,
            gate=ExpertGate(),
            seed=seed,
            expert=expert,
            observers=[Success(task.success), *progress_bar(progress)],
        )
    finally:
        env.close()
    return Evaluation.from_rollout(task.name, "expert", r)
