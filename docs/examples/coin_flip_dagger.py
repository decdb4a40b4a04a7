"""Coin-flip DAgger: the learner drives every step; the expert labels each step with
probability ``p``. A whole interactive method in one file, loaded as a plugin:

    protege dagger --plugin docs/examples/coin_flip_dagger.py --method coin-flip \
        --method-kwargs '{"p": 0.3}' --task cartpole --out runs/coin
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from protege.algos import engine, registry
from protege.algos.engine import MethodSpec, RoundContext
from protege.algos.results import DAggerResult
from protege.configs.interactive import DAggerConfig
from protege.errors import ConfigError
from protege.policies.policy import Policy
from protege.rollout.gates import Decision, Gate, StepView
from protege.tasks.base import Task


@dataclass
class CoinFlipConfig:
    """Coin-flip DAgger's own settings."""

    p: float = 0.5
    """Probability that the expert labels a step the learner drove."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ConfigError(f"CoinFlipConfig.p must be in [0, 1], got {self.p}")


class CoinFlipGate(Gate):
    """The learner acts; a coin with P(heads) = p decides whether the expert labels. Made
    for the round engine, which seeds each episode's coins (``seed_episode``)."""

    def __init__(self, p: float):
        self.p = p
        self.coins: dict[int, np.random.Generator] = {}

    def seed_episode(self, env_index: int, seed: int) -> None:
        # The engine seeds every episode from (seed, round, episode): a resumed run
        # flips the same coins.
        self.coins[env_index] = np.random.default_rng(seed)

    def decide(self, step: StepView) -> Decision:
        n = len(step.obs)
        heads = np.array([self.coins[i].random() < self.p for i in range(n)])
        # Not asking step.expert here: the loop asks it where label is True, and counts.
        return Decision(expert_acts=np.zeros(n, bool), label=heads)


def run(
    task: Task,
    store_path: str | os.PathLike[str],
    config: DAggerConfig | None = None,
    method_config: CoinFlipConfig | None = None,
    *,
    make_policy: Callable[[], Policy] | None = None,
    **kwargs: Any,
) -> DAggerResult:
    """Coin-flip DAgger through the round engine (rounds, store, resume, evaluation)."""
    settings = method_config or CoinFlipConfig()
    kwargs.setdefault("method", "coin-flip")
    kwargs.setdefault("settings", settings)  # recorded, and checked on --resume

    def gate(ctx: RoundContext) -> Gate:
        return CoinFlipGate(settings.p)

    policies = make_policy or engine.policy_factory(task)
    return engine.run(task, policies, store_path, config, gate, **kwargs)


SPEC = MethodSpec("coin-flip", "Coin-flip DAgger", CoinFlipConfig, run, Policy.load)

registry.register(
    registry.MethodEntry("coin-flip", __name__, "Coin-flip DAgger", f"{__name__}:CoinFlipConfig")
)
