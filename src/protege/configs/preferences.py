"""Settings of reward learning from preferences (Christiano et al. 2017): ``protege preferences``.

(:mod:`protege.rewards.preference_source`, :mod:`protege.algos.preferences`.) Standard library
only: the command's flags are these fields, their docstrings the help.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from protege.configs.checks import (
    MAX_COUNT,
    MAX_STEPS,
    check_float,
    check_int,
    check_sizes,
)
from protege.errors import ConfigError

ORACLES = ("true", "noisy", "human")
"""Who answers the queries: the true reward's segment sums, the same made noisy, a person."""


@dataclass
class PreferenceConfig:
    """Pairs of the learner's trajectory segments, the preferences asked about them and the
    Bradley–Terry reward model trained on them.

    Query schedule: at PPO update ``u`` (one every ``query_every``) ``ceil(pairs_per_update ·
    pairs_decay^(u/query_every))`` new pairs are asked (``initial_pairs`` at update 0), at
    least one, until ``preferences`` answers (skips included) have been given."""

    preferences: int = 200
    """Total number of queries (the budget; skipped ones count)."""
    initial_pairs: int = 40
    """Pairs asked at the first update (from the untrained policy's rollouts)."""
    pairs_per_update: int = 20
    """Pairs asked at each later query update (before the decay)."""
    pairs_decay: float = 0.9
    """The pairs per query are multiplied by this after each query update (1: constant)."""
    query_every: int = 1
    """Ask every this many PPO updates."""
    segment_length: int = 25
    """Steps per segment (a shorter episode gives its whole self)."""
    oracle: str = "true"
    """Who answers: true (the task reward's segment sums), noisy (the same, Boltzmann-rational
    with --temperature and wrong with probability --error-rate), human (a pygame window)."""
    temperature: float = 1.0
    """The noisy oracle prefers A with probability sigmoid((R_A − R_B)/temperature)
    (0: always the larger sum)."""
    error_rate: float = 0.0
    """The noisy oracle's answer is flipped with this probability."""
    tie_margin: float = 1e-6
    """The true oracle answers "equal" when the sums differ by at most this."""
    reward_hidden_sizes: tuple[int, ...] = (64, 64)
    """The reward model's MLP hidden layers (ReLU)."""
    ensemble: int = 1
    """Reward models trained on the same preferences (their mean is the reward); with more than
    one, each query is the pair the members disagree on most among --candidates pairs."""
    candidates: int = 4
    """With an ensemble: candidate pairs drawn per query (the most disputed is asked)."""
    reward_lr: float = 1e-3
    """The reward model's Adam learning rate."""
    reward_epochs: int = 30
    """Passes over all preferences each time the model is trained."""
    reward_batch_size: int = 32
    """Preferences per Bradley–Terry minibatch."""
    reward_weight_decay: float = 1e-4
    """The reward model's L2 weight decay (AdamW)."""
    center_reward: bool = False
    """Subtract the learned reward's batch mean as well as dividing by its standard deviation:
    then only its shape matters, not its offset (on a task whose episodes end early, such as
    CartPole, any positive reward per step already teaches survival)."""

    def __post_init__(self) -> None:
        own = "PreferenceConfig"
        check_int(own, "preferences", self.preferences, 1, MAX_COUNT)
        check_int(own, "initial_pairs", self.initial_pairs, 1, MAX_COUNT)
        check_int(own, "pairs_per_update", self.pairs_per_update, 1, MAX_COUNT)
        check_float(own, "pairs_decay", self.pairs_decay, 0.0, 1.0, lo_open=True)
        check_int(own, "query_every", self.query_every, 1, MAX_COUNT)
        check_int(own, "segment_length", self.segment_length, 1, 10_000)
        if self.oracle not in ORACLES:
            raise ConfigError(
                f"PreferenceConfig.oracle (--oracle) must be one of {', '.join(ORACLES)}, "
                f"got {self.oracle!r}"
            )
        check_float(own, "temperature", self.temperature, 0.0)
        check_float(own, "error_rate", self.error_rate, 0.0, 0.5)
        check_float(own, "tie_margin", self.tie_margin, 0.0)
        check_sizes(own, "reward_hidden_sizes", self.reward_hidden_sizes)
        check_int(own, "ensemble", self.ensemble, 1, 32)
        check_int(own, "candidates", self.candidates, 1, 1000)
        check_float(own, "reward_lr", self.reward_lr, 0.0, lo_open=True)
        check_int(own, "reward_epochs", self.reward_epochs, 1, 10_000)
        check_int(own, "reward_batch_size", self.reward_batch_size, 1, 2**20)
        check_float(own, "reward_weight_decay", self.reward_weight_decay, 0.0)

    def pairs_at(self, update: int) -> int:
        """New pairs the schedule asks at PPO update ``update`` (before the budget's cap)."""
        if update % self.query_every:
            return 0
        k = update // self.query_every
        if k == 0:
            return self.initial_pairs
        return max(1, math.ceil(self.pairs_per_update * self.pairs_decay ** (k - 1)))


@dataclass
class PreferenceRunConfig:
    """``protege preferences``: PPO from a fresh policy on the reward learned from preferences."""

    steps: int = 60_000
    """Env steps of PPO."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """The policy's MLP hidden layers."""
    eval_every: int = 5_000
    """Evaluate on the task's true reward (deterministic actions) every this many env steps."""
    eval_episodes: int = 10
    """Episodes per evaluation (the same seeded ones every time)."""

    def __post_init__(self) -> None:
        own = "PreferenceRunConfig"
        check_int(own, "steps", self.steps, 1, MAX_STEPS)
        check_sizes(own, "hidden_sizes", self.hidden_sizes, empty=False)
        check_int(own, "eval_every", self.eval_every, 1, MAX_STEPS)
        check_int(own, "eval_episodes", self.eval_episodes, 1, MAX_COUNT)
