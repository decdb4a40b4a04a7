"""SMILe (Ross & Bagnell, AISTATS 2010, "Efficient Reductions for Imitation Learning"):
stochastic mixing iterative learning.

π_0 = π* (round 0: the expert demonstrates). In round n ≥ 1 the mixture π_{n−1} drives, the
expert labels every visited state, and a *new* policy π̂_n is trained on **that round's labels
only** (no aggregation; round 0's demonstrations train π̂_1). The update moves a fraction α of
the expert's remaining weight to the new policy, π_n = π_{n−1} + α(1 − α)^{n−1}(π̂_n − π*),
so after n policies

    π_n = (1 − α)^n π* + α Σ_{j=1..n} (1 − α)^{j−1} π̂_j

(the paper's Algorithm; the earliest policies keep the largest weights). The mixture is
stochastic **per step**: at every step one component is drawn (the analysis bounds the chance
that π̂_n acts at least once in T steps by 1 − (1 − α)^T). Here that draw is two-stage: the
expert acts with probability β_n = (1 − α)^n (:class:`~protege.rollout.gates.BetaMixture`),
otherwise the learned part, renormalized, draws one of π̂_1..π̂_n
(:class:`~protege.policies.mixture.MixturePolicy`). Each checkpoint (``learners/round_NNN``)
and the returned learner are that renormalized mixture without the expert,
π̃_n = (π_n − (1 − α)^n π*) / (1 − (1 − α)^n), which is what every round's row evaluates.

(The reference notes write the update as π_n = (1 − α)π_{n−1} + α π̂_n, which gives the newest
policy the largest weight; the paper's algorithm, followed here, decays the expert's weight
only.)

Example:
    >>> result = smile.run(task, "runs/smile/store", DAggerConfig(rounds=8), SmileConfig(0.3))
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from protege.algos import engine, registry
from protege.algos.engine import MethodSpec, PolicyTrainer, RoundContext, Trainer
from protege.algos.results import DAggerResult
from protege.algos.rounds import derive_seed, round_gate_seed
from protege.configs.interactive import DAggerConfig
from protege.configs.methods import SmileConfig
from protege.data.store import Transitions
from protege.errors import ConfigError, DataError
from protege.policies.mixture import MixturePolicy
from protege.policies.policy import Policy
from protege.rollout.gates import BetaMixture, Gate
from protege.tasks.base import Task


def smile_weights(alpha: float, n: int) -> tuple[float, list[float]]:
    """(the expert's weight, the weights of π̂_1..π̂_n) in SMILe's π_n: ``(1 − α)^n`` and
    ``α(1 − α)^(j−1)``; they sum to 1."""
    return (1.0 - alpha) ** n, [alpha * (1.0 - alpha) ** (j - 1) for j in range(1, n + 1)]


class SmileGate(BetaMixture):
    """SMILe's π_n as a gate: the expert acts with probability β = (1 − α)^n at each step,
    the learned mixture otherwise, and the expert labels every step. Each episode's draws,
    the expert coin and the mixture's choice of component, are pinned to the episode's seed."""

    def __init__(self, mixture: MixturePolicy, seed: int = 0):
        super().__init__(mixture.expert_weight, seed)
        self.mixture = mixture

    def seed_episode(self, env_index: int, seed: int) -> None:
        super().seed_episode(env_index, seed)
        self.mixture.pin(env_index, derive_seed(seed, 1))


@dataclass
class SmileTrainer:
    """Trains π̂_{r+1} on round r's episodes alone with ``base`` (BC of a fresh policy by
    default) and returns the mixture of every policy so far with SMILe's weights; checkpoints
    are :class:`MixturePolicy` folders whose components ``base`` saves and loads."""

    base: Trainer
    alpha: float
    seed: int = 0

    def fit(self, data: Transitions, round: int, seed: int, previous: Any | None) -> MixturePolicy:
        own = data.select_episodes(data.rounds == round)
        if len(own) == 0 or not own.labeled.any():
            raise DataError(f"SMILe: round {round} stored no labels to train π̂_{round + 1} on")
        component = self.base.fit(own, round, seed, None)
        before = list(previous.components) if isinstance(previous, MixturePolicy) else []
        if len(before) != round:
            raise DataError(
                f"SMILe: round {round} follows a mixture of {len(before)} policies, not {round}"
            )
        expert, weights = smile_weights(self.alpha, round + 1)
        mix_seed = derive_seed(self.seed, 7, round)
        return MixturePolicy([*before, component], weights, mix_seed, expert)

    def save(self, learner: Any, path: Path) -> None:
        learner.save(path)

    def load(self, path: Path) -> MixturePolicy:
        return MixturePolicy.load(path, self.base.load)


def run(
    task: Task,
    store_path: str | os.PathLike[str],
    config: DAggerConfig | None = None,
    method_config: SmileConfig | None = None,
    *,
    make_policy: Callable[[], Policy] | None = None,
    **kwargs: Any,
) -> DAggerResult:
    """SMILe through :func:`protege.algos.engine.run`. ``trainer`` (keyword) is the trainer of
    each new policy (default: BC of a fresh policy, ``config.bc``); ``config.beta`` and
    ``config.retrain`` do not apply (β is (1 − α)^n; every policy is new)."""
    config = config or DAggerConfig()
    sc = method_config or SmileConfig()
    if config.retrain != "scratch":
        raise ConfigError(
            "SMILe trains every policy afresh on its round: retrain must be 'scratch'"
        )
    base = kwargs.pop("trainer", None) or PolicyTrainer(
        make_policy or engine.policy_factory(task), config.bc
    )
    trainer = SmileTrainer(base, sc.alpha, config.seed)

    def gate(ctx: RoundContext) -> Gate:
        if not isinstance(ctx.learner, MixturePolicy) or len(ctx.learner) != ctx.round:
            raise DataError(f"SMILe: round {ctx.round} needs the mixture of {ctx.round} policies")
        expected, _ = smile_weights(sc.alpha, ctx.round)
        if not np.isclose(ctx.learner.expert_weight, expected):
            raise DataError(
                f"SMILe: the round-{ctx.round - 1} mixture gives the expert weight "
                f"{ctx.learner.expert_weight}, not (1 − α)^{ctx.round} = {expected}"
            )
        return SmileGate(ctx.learner, round_gate_seed(ctx.config.seed, ctx.round))

    kwargs.setdefault("method", "smile")
    kwargs.setdefault("settings", sc)
    return engine.run(task, None, store_path, config, gate, trainer=trainer, **kwargs)


def load(path: Path) -> Any:
    """A SMILe checkpoint (a mixture of any registered learner kind)."""
    return registry.load_learner(path)


SPEC = MethodSpec("smile", "SMILe", SmileConfig, run, load)
