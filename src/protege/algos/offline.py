"""The offline dial: how much a policy trusts the data it imitates (:class:`OfflineConfig`).

* ``bc``: behavioral cloning of every labeled step (:func:`protege.algos.bc.fit`), the
  constraint at its maximum.
* ``filtered-bc``: BC on the best episodes only: the top fraction by return, or those whose
  return clears a threshold.
* ``awr`` and ``iql``: BC on every step, each step weighted by ``min(exp(A/β), max_weight)``;
  ``A`` comes from value functions fit on the data's rewards (:mod:`protege.algos.critics`),
  divided by its standard deviation over the data so that β means the same on every task.
  The weighting is BC's own loss with per-step weights (``bc.fit(weights=...)``): the
  head's negative log-likelihood for heads that have one, the squared error for ``mse``.

The reward-based methods learn from what was *done*: the executed action of every step (for
demonstrations the same as the labels; on data a noisy or random policy produced, what that
policy did). The result is an ordinary :class:`~protege.policies.policy.Policy`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from protege.algos import bc, critics
from protege.algos.bc import BCResult
from protege.configs.bc import BCConfig
from protege.configs.offline import OfflineConfig
from protege.data.frames import FrameArray
from protege.data.store import Store
from protege.data.transitions import Transitions
from protege.errors import ConfigError, DataError
from protege.policies.policy import Policy


@dataclass
class OfflineResult:
    """What an offline-dial run did: the BC run that extracted the policy, the critics (awr,
    iql), the episodes it kept (filtered-bc) and the weights it gave (awr, iql)."""

    algo: str
    bc: BCResult
    episodes: int
    episodes_kept: int
    critic: critics.CriticResult | None = None
    weights: dict[str, float] = field(default_factory=dict)
    """mean, max and the fraction of steps at the clip (awr, iql)."""

    @property
    def train_seconds(self) -> float:
        """Seconds of training: the critics' updates and the policy's."""
        return self.bc.train_seconds + (self.critic.seconds if self.critic else 0.0)

    @property
    def samples_per_s(self) -> float:
        """The policy's training samples (its steps × batch size) per second of
        :attr:`train_seconds`: for IQL with as many critic as policy steps, the samples one
        joint update (V, twin Q, policy) of Kostrikov et al.'s loop goes through per second."""
        samples = self.bc.samples_per_s * self.bc.train_seconds
        return samples / max(self.train_seconds, 1e-9)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "samples_per_s": self.samples_per_s}


def fit(
    policy: Policy,
    data: Store | Transitions,
    bc_config: BCConfig | None = None,
    config: OfflineConfig | None = None,
    where: str | None = None,
) -> OfflineResult:
    """Train ``policy`` on ``data`` at the dial's position ``config.algo``.

    ``where`` names the data in errors (a store's path by default).

    Example:
        >>> fit(policy, Store.open("demos/mixed"), BCConfig(steps=20000),
        ...     OfflineConfig(algo="iql"))
    """
    bc_config = bc_config or BCConfig()
    config = config or OfflineConfig()
    if isinstance(data, Store):
        where = where or str(data.path)
        data = data.transitions()
    where = where or "the data"
    n_eps = len(data.episode_lengths)
    if not config.uses_rewards:
        return OfflineResult("bc", bc.fit(policy, data, bc_config), n_eps, n_eps)
    if not np.asarray(data.rewards).any():
        raise DataError(
            f"{where}: every reward is 0 (a store without rewards); {config.algo} ranks what "
            "was done by its rewards: collect the data from a task with rewards, or use "
            "--algo bc"
        )
    acted = replace(data, actions=data.executed, labeled=np.ones(len(data), bool))
    if config.algo == "filtered-bc":
        keep = kept_episodes(acted, config, where)
        result = bc.fit(policy, acted.select_episodes(keep), bc_config)
        return OfflineResult(config.algo, result, n_eps, int(keep.sum()))
    _check_weighted(policy, acted, config)
    seed = bc_config.seed
    progress = bc_config.progress
    if config.algo == "awr":
        adv, critic = critics.awr_advantages(acted, config, seed, progress)
    else:
        n_actions = policy.config.n_actions if policy.config.discrete else 0
        adv, critic = critics.iql_advantages(acted, config, seed, n_actions, progress)
    weights, summary = advantage_weights(adv, config)
    result = bc.fit(policy, acted, bc_config, weights=weights)
    return OfflineResult(config.algo, result, n_eps, n_eps, critic, summary)


def episode_returns(data: Transitions) -> np.ndarray:
    """(E,) float64: each episode's undiscounted return."""
    rewards = np.asarray(data.rewards, np.float64)
    return np.add.reduceat(rewards, data.episode_starts) if len(rewards) else np.zeros(0)


def kept_episodes(data: Transitions, config: OfflineConfig, where: str) -> np.ndarray:
    """(E,) bool: the episodes filtered BC keeps: those with a return ≥ ``min_return``, or
    the ``top_fraction`` (default 0.1; at least one episode) with the highest returns (ties
    broken by episode order)."""
    returns = episode_returns(data)
    if config.min_return is not None:
        keep = returns >= config.min_return
        if not keep.any():
            raise DataError(
                f"{where}: no episode has a return ≥ {config.min_return:g} (the best has "
                f"{returns.max():.4g}); lower --min-return or use --top-fraction"
            )
        return keep
    fraction = 0.1 if config.top_fraction is None else config.top_fraction
    n = max(1, math.ceil(fraction * len(returns) - 1e-9))
    order = np.argsort(-returns, kind="stable")
    keep = np.zeros(len(returns), bool)
    keep[order[:n]] = True
    return keep


def advantage_weights(
    adv: np.ndarray, config: OfflineConfig
) -> tuple[np.ndarray, dict[str, float]]:
    """``min(exp(A / (β·std A)), max_weight)`` per step, and a summary (mean, max, fraction
    at the clip)."""
    scale = max(float(np.std(adv)), 1e-8) * config.temperature
    clip = config.weight_clip
    weights = np.minimum(np.exp(np.minimum(adv / scale, math.log(clip))), clip)
    summary = {
        "mean": float(weights.mean()),
        "max": float(weights.max()),
        "at_clip": float((weights >= clip * (1 - 1e-6)).mean()),
        "advantage_std": float(np.std(adv)),
    }
    return weights.astype(np.float32), summary


def _check_weighted(policy: Policy, data: Transitions, config: OfflineConfig) -> None:
    head = policy.head
    if not (head.has_log_prob or head.name == "mse"):
        raise ConfigError(
            f"--algo {config.algo} weights each step's log-likelihood (or squared error): the "
            f"head {head.name!r} has neither; use --head categorical (Discrete actions), "
            "gaussian, mog, binned or mse"
        )
    obs = data.obs
    if isinstance(obs, FrameArray) or np.asarray(obs[:1]).ndim > 2:
        raise ConfigError(
            f"--algo {config.algo} fits its value functions on vector observations; this "
            "data has image observations (use --algo bc or filtered-bc)"
        )
    if data.final_obs is None:
        raise DataError(
            f"--algo {config.algo} needs each episode's final observation (read the data "
            "with Store.transitions())"
        )
