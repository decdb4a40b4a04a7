"""The reward model learned from preferences: an ensemble of MLPs, Bradley–Terry training, files.

:class:`RewardModel` maps a batch of transitions ``(obs, action, next_obs, done)`` to rewards
(the mean of its members; a discrete action enters one-hot, observations are standardized
with statistics fixed the first time it is trained). Under the Bradley–Terry model a person
prefers segment A to B with probability ``sigmoid(Σ_A r − Σ_B r)``; :func:`train` minimizes
the cross-entropy of that against the answers (1, 0 or ½ for "equal"; skips are not used),
each member with its own initialization and minibatch order, every draw from the seed given.

:func:`protege.rewards.artefact.save_reward` writes it as the learned-reward artefact of kind
``preference`` (``model_config`` gives its config; :func:`build` rebuilds it, every field
checked) and :func:`protege.rewards.artefact.load_reward` reads it back.

Example:
    >>> model = RewardModel(RewardSpec(obs_shape=(4,), n_actions=2), (64, 64), members=3)
    >>> train(model, pairs_tensors, labels, seed=0, epochs=30)
    >>> r = model(obs, actions, next_obs, done)          # (N,) rewards
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from protege.algos.rl_rollout import derived_seed
from protege.errors import CheckpointError, ConfigError
from protege.rewards.preference_data import Preference, Segment


@dataclass(frozen=True)
class RewardSpec:
    """What a reward model's inputs are: observation shape; ``n_actions`` for a discrete
    action space, else ``act_dim`` numbers."""

    obs_shape: tuple[int, ...]
    n_actions: int = 0
    act_dim: int = 0

    @property
    def discrete(self) -> bool:
        return self.n_actions > 0

    @property
    def obs_dim(self) -> int:
        return int(np.prod(self.obs_shape))

    @property
    def in_dim(self) -> int:
        return 2 * self.obs_dim + (self.n_actions or self.act_dim) + 1

    @classmethod
    def for_spaces(cls, obs_space: Any, act_space: Any) -> RewardSpec:
        """The spec of a task's gymnasium spaces (Box observations; Discrete or Box actions)."""
        import gymnasium as gym

        if not isinstance(obs_space, gym.spaces.Box):
            raise CheckpointError(f"reward models take Box observations, not {obs_space}")
        if isinstance(act_space, gym.spaces.Discrete):
            return cls(tuple(obs_space.shape), n_actions=int(act_space.n))
        return cls(tuple(obs_space.shape), act_dim=int(np.prod(act_space.shape)))


class RewardModel(nn.Module):
    """``members`` MLPs r(obs, action, next_obs, done); the reward is their mean."""

    kind = "preference"

    obs_mean: torch.Tensor
    obs_std: torch.Tensor
    fitted: torch.Tensor

    def __init__(self, spec: RewardSpec, hidden_sizes: Sequence[int] = (64, 64), members: int = 1):
        super().__init__()
        self.spec, self.hidden_sizes = spec, tuple(hidden_sizes)
        nets = []
        for _ in range(members):
            layers: list[nn.Module] = []
            width = spec.in_dim
            for h in self.hidden_sizes:
                layers += [nn.Linear(width, h), nn.ReLU()]
                width = h
            layers.append(nn.Linear(width, 1))
            nets.append(nn.Sequential(*layers))
        self.members = nn.ModuleList(nets)
        self.register_buffer("obs_mean", torch.zeros(spec.obs_dim))
        self.register_buffer("obs_std", torch.ones(spec.obs_dim))
        self.register_buffer("fitted", torch.zeros(()))
        """1 once the observation statistics are fixed (the first training)."""

    def features(self, obs: Any, actions: Any, next_obs: Any, done: Any) -> torch.Tensor:
        """(N, in_dim) inputs of a batch of transitions."""
        n = len(obs)
        o = torch.as_tensor(np.asarray(obs), dtype=torch.float32).reshape(n, -1)
        o2 = torch.as_tensor(np.asarray(next_obs), dtype=torch.float32).reshape(n, -1)
        o, o2 = (o - self.obs_mean) / self.obs_std, (o2 - self.obs_mean) / self.obs_std
        if self.spec.discrete:
            idx = torch.as_tensor(np.asarray(actions), dtype=torch.int64).reshape(n)
            a = F.one_hot(idx.clamp(0, self.spec.n_actions - 1), self.spec.n_actions).float()
        else:
            a = torch.as_tensor(np.asarray(actions), dtype=torch.float32).reshape(n, -1)
        d = torch.as_tensor(np.asarray(done), dtype=torch.float32).reshape(n, 1)
        return torch.cat([o, a, o2, d], 1)

    def member_rewards(self, x: torch.Tensor) -> torch.Tensor:
        """(members, N) each member's reward of the features ``x``."""
        return torch.stack([net(x).squeeze(-1) for net in self.members])

    def forward(self, obs: Any, actions: Any, next_obs: Any, done: Any) -> torch.Tensor:
        """(N,) the reward of each transition (the members' mean)."""
        return self.member_rewards(self.features(obs, actions, next_obs, done)).mean(0)

    @torch.no_grad()
    def fit_statistics(self, obs: np.ndarray) -> None:
        """Fix the observation standardization to ``obs``'s mean and standard deviation."""
        x = torch.as_tensor(obs, dtype=torch.float32).reshape(len(obs), -1)
        self.obs_mean.copy_(x.mean(0))
        std = x.std(0) if len(x) > 1 else torch.ones_like(self.obs_mean)
        self.obs_std.copy_(torch.where(std < 1e-6, torch.ones_like(std), std))
        self.fitted.fill_(1.0)

    @torch.no_grad()
    def segment_returns(self, segments: Sequence[Segment]) -> torch.Tensor:
        """(members, S) each member's learned return of each segment."""
        x, mask = pack(self, segments)
        return (self.member_rewards(x.flatten(0, 1)).view(-1, *mask.shape) * mask).sum(-1)


def pack(model: RewardModel, segments: Sequence[Segment]) -> tuple[torch.Tensor, torch.Tensor]:
    """Segments as (S, T, in_dim) features padded to the longest, and the (S, T) step mask."""
    t_max = max(len(s) for s in segments)
    x = torch.zeros(len(segments), t_max, model.spec.in_dim)
    mask = torch.zeros(len(segments), t_max)
    for i, s in enumerate(segments):
        x[i, : len(s)] = model.features(s.obs, s.actions, s.next_obs, s.done)
        mask[i, : len(s)] = 1.0
    return x, mask


def train(
    model: RewardModel,
    prefs: Sequence[Preference],
    seed: int,
    epochs: int,
    batch_size: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
) -> dict[str, float]:
    """Bradley–Terry on the answered preferences of ``prefs`` (skips left out), each member
    from its current weights; returns ``reward_loss`` and ``reward_accuracy`` (the share of
    non-equal answers the trained mean model agrees with)."""
    used = [p for p in prefs if p.label is not None]
    if not used:
        return {}
    if not bool(model.fitted):
        model.fit_statistics(np.concatenate([s.obs for p in used for s in (p.left, p.right)]))
    x_left, m_left = pack(model, [p.left for p in used])
    x_right, m_right = pack(model, [p.right for p in used])
    labels = torch.tensor([p.label for p in used], dtype=torch.float32)
    losses = []
    for i, net in enumerate(model.members):
        g = torch.Generator().manual_seed(derived_seed(seed, i))
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
        for _ in range(epochs):
            order = torch.randperm(len(used), generator=g)
            for start in range(0, len(used), batch_size):
                idx = order[start : start + batch_size]
                logits = _returns(net, x_left[idx], m_left[idx]) - _returns(
                    net, x_right[idx], m_right[idx]
                )
                loss = F.binary_cross_entropy_with_logits(logits, labels[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            logits = _returns(net, x_left, m_left) - _returns(net, x_right, m_right)
            losses.append(F.binary_cross_entropy_with_logits(logits, labels).item())
    with torch.no_grad():
        diff = sum(
            _returns(net, x_left, m_left) - _returns(net, x_right, m_right) for net in model.members
        )
    strict = labels != 0.5
    agree = ((torch.as_tensor(diff) > 0) == (labels > 0.5))[strict]
    out = {"reward_loss": float(np.mean(losses))}
    if len(agree):
        out["reward_accuracy"] = float(agree.float().mean())
    return out


def _returns(net: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (net(x).squeeze(-1) * mask).sum(-1)


def new_model(
    spec: RewardSpec, hidden_sizes: Sequence[int], members: int, seed: int
) -> RewardModel:
    """A reward model initialized from ``seed`` alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derived_seed(seed, 9))
        return RewardModel(spec, hidden_sizes, members)


# ---------------------------------------------------------------------------------- files
def model_config(model: RewardModel, **extra: Any) -> dict[str, Any]:
    """What :func:`build` needs to rebuild ``model`` (plus ``extra`` facts such as the task),
    for :func:`protege.rewards.artefact.save_reward`."""
    return {
        "spec": asdict(model.spec),
        "hidden_sizes": list(model.hidden_sizes),
        "members": len(model.members),
        **extra,
    }


def build(config: dict[str, Any]) -> RewardModel:
    """The (untrained) reward model ``config`` describes: what
    :func:`protege.rewards.artefact.load_reward` calls for the kind ``preference``; every
    field checked (a ConfigError names the bad one)."""
    try:
        spec_d = config["spec"]
        spec = RewardSpec(
            tuple(int(d) for d in spec_d["obs_shape"]),
            int(spec_d["n_actions"]),
            int(spec_d["act_dim"]),
        )
        hidden = [int(h) for h in config["hidden_sizes"]]
        members = int(config["members"])
    except (KeyError, TypeError, ValueError):
        raise ConfigError("spec, hidden_sizes or members missing or malformed") from None
    bad = (
        not spec.obs_shape
        or min(spec.obs_shape) < 1
        or not 1 <= members <= 32
        or any(not 1 <= h <= 2**16 for h in hidden)
        or (spec.n_actions > 0) == (spec.act_dim > 0)
        or math.prod(spec.obs_shape) > 2**24
    )
    if bad:
        raise ConfigError("spec, hidden_sizes or members out of range")
    return RewardModel(spec, hidden, members)
