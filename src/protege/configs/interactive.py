"""DAggerConfig: the settings every interactive method shares (:mod:`protege.algos.engine`).

A method's own settings (its gate's thresholds, its learner's size) are its own dataclass in
:mod:`protege.configs.methods`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from protege.configs.bc import BCConfig
from protege.configs.checks import MAX_COUNT, MAX_SEED, check_float, check_int
from protege.errors import ConfigError

RETRAIN = ("scratch", "warm")


def parse_beta(spec: str) -> tuple[str, float]:
    """``"indicator"``, ``"exponential:0.5"`` (or ``"exp:0.5"``) or ``"linear:15"`` as
    (``"indicator"`` | ``"exponential"`` | ``"linear"``, its number); the number defaults
    to 0.5 (exponential) and 15 (linear). :func:`protege.rollout.gates.beta_schedule` builds
    the schedule from it."""
    name, _, arg = spec.partition(":")
    try:
        if name == "indicator" and not arg:
            return "indicator", 0.0
        if name in ("exponential", "exp"):
            p = float(arg) if arg else 0.5
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"exponential β needs 0 ≤ p ≤ 1, got {p} in {spec!r}")
            return "exponential", p
        if name == "linear":
            n = int(arg) if arg else 15
            if n < 1:
                raise ConfigError(f"linear β needs ≥ 1 ramp-down rounds, got {n} in {spec!r}")
            return "linear", n
    except ValueError:
        raise ConfigError(f"β schedule {spec!r}: {arg!r} is not a number") from None
    raise ConfigError(
        f"unknown β schedule {spec!r}; use 'indicator', 'exponential:P' or 'linear:N'"
    )


@dataclass
class DAggerConfig:
    """Settings every interactive method shares (the gate's own settings live with it)."""

    rounds: int = 8
    """Interactive rounds after round 0 (the demonstrations)."""
    episodes_per_round: int = 4
    """Episodes collected in each interactive round."""
    initial_demos: int = 4
    """Expert episodes collected as round 0 (unless the store already holds demonstrations)."""
    beta: str = "indicator"
    """β schedule of plain DAgger: "indicator", "exponential:P" or "linear:N"."""
    retrain: str = "scratch"
    """"scratch": a fresh policy each round (Ross et al.; ThriftyDAgger); "warm": continue
    training the previous round's policy (the ``imitation`` package)."""
    bc: BCConfig = field(
        default_factory=lambda: BCConfig(
            steps=1500, batch_size=64, lr=3e-3, val_fraction=0.0, progress=False
        )
    )
    """How each round's learner is trained (its seed is derived per round). The default
    suits a few thousand labels (on LunarLander it matches 3000 steps at batch 256 in a
    third of the time); raise ``steps`` for larger data. No validation split: with a handful
    of episodes it would hold out a large share of the labels, and picking a checkpoint on
    one episode adds noise."""
    n_envs: int = 4
    """Episodes collected in parallel; also the most a crash can lose."""
    seed: int = 0
    """Seeds every episode (from seed, round, episode) and every training run (seed, round)."""
    eval_episodes: int = 50
    """Evaluation episodes of the expert and of every round's learner."""
    eval_envs: int = 8
    """Sub-envs of the evaluation."""
    eval_seed: int = 100_000
    """Every round's learner and the expert are evaluated on the same episodes."""
    target_fraction: float = 0.95
    """Report the labels needed to reach this fraction of the expert's mean return."""

    def __post_init__(self) -> None:
        if self.retrain not in RETRAIN:
            raise ConfigError(f"retrain must be one of {RETRAIN}, not {self.retrain!r}")
        own = "DAggerConfig"
        check_int(own, "rounds", self.rounds, 0, 10**6)
        for name in ("episodes_per_round", "n_envs", "eval_episodes", "eval_envs"):
            check_int(own, name, getattr(self, name), 1, MAX_COUNT)
        check_int(own, "initial_demos", self.initial_demos, 0, MAX_COUNT)
        check_int(own, "seed", self.seed, 0, MAX_SEED)
        check_int(own, "eval_seed", self.eval_seed, 0, MAX_SEED)
        check_float(own, "target_fraction", self.target_fraction, 0.0, 1.0, lo_open=True)
        parse_beta(self.beta)  # validates

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
