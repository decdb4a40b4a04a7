"""The networks of adversarial imitation: GAIL's discriminator and AIRL's reward + shaping.

One module, :class:`DiscriminatorNet`, serves both (``kind`` ``"gail"`` or ``"airl"``). It
takes env-unit batches (observations, actions as the env receives them, next observations,
done flags), normalizes them itself (observation statistics of the demonstrations, action
bounds, one-hot discrete actions) and so is a self-contained learned reward: called as
``net(obs, action, next_obs, done)`` it returns the reward a policy is trained on later
(:mod:`protege.rewards.artefact` saves, loads and wraps it):

- **GAIL**: logit ``ℓ = D(s, a)`` (state-only: ``D(s, s')``), reward ``−log(1 − σ(ℓ))``.
- **AIRL**: ``f = g(s[, a]) + γ (1 − done) h(s') − h(s)``, logit ``ℓ = f − log π(a|s)``; the
  exported reward is ``g`` alone (the disentangled reward, without the shaping ``h``), the
  policy is trained on ``f``.

**Absorbing states** (``absorbing`` in the spec; Kostrikov et al. 2019, "DAC"): a terminated
episode does not stop, it moves to one absorbing state that loops on itself forever. Every
state input gains a flag (1: the absorbing state, whose observation and action are zeroed),
a terminal step's next state is the absorbing one (so AIRL's ``h(s')`` is ``h`` of it, not
0), and the discriminator learns the absorbing state's reward from how often each side's
episodes end in it. The policy's learner bootstraps a termination with that reward's
discounted sum (:meth:`protege.algos.ppo.RewardSource.terminal_value`) instead of 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from protege.configs.checks import require_bool, require_int, require_int_list, require_number
from protege.errors import ConfigError

KINDS = ("gail", "airl")


def _mlp(width: int, hidden: Sequence[int], spectral: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in [*hidden, 1]:
        lin = nn.Linear(width, h)
        layers.append(nn.utils.parametrizations.spectral_norm(lin) if spectral else lin)
        layers.append(nn.ReLU())
        width = h
    return nn.Sequential(*layers[:-1])


class DiscriminatorNet(nn.Module):
    """GAIL's discriminator or AIRL's ``g`` and ``h`` (see the module docstring).

    Args:
        spec: what :meth:`spec` returns (the artefact's config): ``kind``, ``obs_dim``,
            ``act_dim`` (input width of an action: ``n`` one-hot for a discrete space),
            ``discrete``, ``state_only``, ``hidden_sizes``, ``gamma``, ``spectral_norm``,
            ``obs_mean``/``obs_std`` (lists), ``act_low``/``act_high`` (lists, continuous).
    """

    obs_mean: torch.Tensor
    obs_std: torch.Tensor
    act_offset: torch.Tensor
    act_scale: torch.Tensor

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        self._spec = check_spec(spec)
        s = self._spec
        self.kind: str = s["kind"]
        self.discrete: bool = s["discrete"]
        self.state_only: bool = s["state_only"]
        self.gamma: float = s["gamma"]
        self.absorbing: bool = s["absorbing"]
        obs_dim, act_dim = s["obs_dim"], s["act_dim"]
        self.register_buffer("obs_mean", torch.tensor(s["obs_mean"], dtype=torch.float32))
        self.register_buffer("obs_std", torch.tensor(s["obs_std"], dtype=torch.float32))
        low, high = s.get("act_low"), s.get("act_high")
        lo = torch.tensor(low or [-1.0] * act_dim, dtype=torch.float32)
        hi = torch.tensor(high or [1.0] * act_dim, dtype=torch.float32)
        self.register_buffer("act_offset", (hi + lo) / 2)
        self.register_buffer("act_scale", ((hi - lo) / 2).clamp_min(1e-6))
        state = obs_dim + 1 if self.absorbing else obs_dim  # + the absorbing flag
        if self.kind == "gail":
            width = state * 2 if self.state_only else state + act_dim
        else:
            width = state if self.state_only else state + act_dim
        self.g = _mlp(width, s["hidden_sizes"], s["spectral_norm"])
        self.h = _mlp(state, s["hidden_sizes"], s["spectral_norm"]) if self.kind == "airl" else None

    def spec(self) -> dict[str, Any]:
        """The JSON-able settings that rebuild this network (its artefact's config)."""
        return dict(self._spec)

    # ------------------------------------------------------------------ inputs
    def inputs(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        next_obs: torch.Tensor,
        done: torch.Tensor | None = None,
        absorbing: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Normalized network inputs of env-unit batches: ``s``, ``a``, ``s2`` (B, ·).

        With absorbing states (else both are ignored): ``done`` (B,) marks terminal steps,
        whose next state is the absorbing one, ``absorbing`` (B,) the absorbing state's own
        step (state, action and next state all the absorbing ones)."""
        b = len(obs)
        s = (obs.reshape(b, -1).float() - self.obs_mean) / self.obs_std
        s2 = (next_obs.reshape(b, -1).float() - self.obs_mean) / self.obs_std
        if self.discrete:
            a = F.one_hot(action.reshape(b).long(), len(self.act_offset)).float()
        else:
            a = (action.reshape(b, -1).float() - self.act_offset) / self.act_scale
        if self.absorbing:
            here = torch.zeros(b) if absorbing is None else absorbing.float().reshape(b)
            nxt = here if done is None else torch.maximum(done.float().reshape(b), here)
            s = torch.cat([s * (1.0 - here)[:, None], here[:, None]], -1)
            s2 = torch.cat([s2 * (1.0 - nxt)[:, None], nxt[:, None]], -1)
            a = a * (1.0 - here)[:, None]
        return {"s": s, "a": a, "s2": s2}

    def g_of(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        """``D``'s logit (GAIL) or the reward ``g`` (AIRL) of normalized inputs: (B,)."""
        if self.kind == "gail":
            parts = [x["s"], x["s2"]] if self.state_only else [x["s"], x["a"]]
        else:
            parts = [x["s"]] if self.state_only else [x["s"], x["a"]]
        return self.g(torch.cat(parts, -1)).squeeze(-1)

    def f_of(self, x: dict[str, torch.Tensor], done: torch.Tensor) -> torch.Tensor:
        """GAIL: the logit; AIRL: ``f = g + γ (1 − done) h(s') − h(s)`` (with absorbing
        states ``f = g + γ h(s') − h(s)``, ``s'`` the absorbing state after a terminal step).
        (B,)."""
        g = self.g_of(x)
        if self.h is None:
            return g
        keep = torch.ones(()) if self.absorbing else 1.0 - done.float().reshape(-1)
        return g + self.gamma * keep * self.h(x["s2"]).squeeze(-1) - self.h(x["s"]).squeeze(-1)

    def logit(
        self, x: dict[str, torch.Tensor], done: torch.Tensor, logp: torch.Tensor | None
    ) -> torch.Tensor:
        """The discriminator's logit (high: expert). AIRL needs ``logp``, log π(a|s)."""
        f = self.f_of(x, done)
        if self.kind == "airl":
            if logp is None:
                raise ValueError("AIRL's logit needs log π(a|s)")
            return f - logp
        return f

    def policy_reward(
        self, x: dict[str, torch.Tensor], done: torch.Tensor, logp: torch.Tensor | None
    ) -> torch.Tensor:
        """What the policy is trained on: GAIL ``−log(1 − D)``, AIRL ``f − log π``."""
        if self.kind == "gail":
            return F.softplus(self.logit(x, done, None))
        return self.logit(x, done, logp)

    def forward(
        self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor, done: torch.Tensor
    ) -> torch.Tensor:
        """The learned reward of env-unit steps (B,): GAIL ``−log(1 − D)``, AIRL ``g``."""
        x = self.inputs(obs, action, next_obs, done)
        if self.kind == "gail":
            return F.softplus(self.g_of(x))
        return self.g_of(x)


def check_spec(spec: Any) -> dict[str, Any]:
    """``spec`` with every field checked (a ConfigError naming the field otherwise)."""
    if not isinstance(spec, dict):
        raise ConfigError("the discriminator's config must be an object")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    out: dict[str, Any] = {"kind": kind}
    out["obs_dim"] = require_int(spec.get("obs_dim"), "obs_dim", 1, 2**20)
    out["act_dim"] = require_int(spec.get("act_dim"), "act_dim", 1, 2**16)
    out["discrete"] = require_bool(spec.get("discrete"), "discrete")
    out["state_only"] = require_bool(spec.get("state_only"), "state_only")
    out["spectral_norm"] = require_bool(spec.get("spectral_norm", False), "spectral_norm")
    out["absorbing"] = require_bool(spec.get("absorbing", False), "absorbing")
    out["hidden_sizes"] = require_int_list(spec.get("hidden_sizes"), "hidden_sizes", 1, 2**16)
    out["gamma"] = require_number(spec.get("gamma", 0.99), "gamma")
    for key, n in (("obs_mean", out["obs_dim"]), ("obs_std", out["obs_dim"])):
        out[key] = _floats(spec.get(key), key, n)
    if not out["discrete"]:
        for key in ("act_low", "act_high"):
            out[key] = _floats(spec.get(key), key, out["act_dim"])
    return out


def _floats(value: Any, field: str, n: int) -> list[float]:
    if not isinstance(value, list) or len(value) != n:
        raise ConfigError(f"{field} must be a list of {n} numbers")
    return [require_number(v, f"{field}[{i}]") for i, v in enumerate(value)]


def build(spec: dict[str, Any]) -> DiscriminatorNet:
    """The network ``spec`` describes (what :func:`protege.rewards.artefact.load_reward`
    calls for the kinds ``gail`` and ``airl``)."""
    return DiscriminatorNet(spec)


def spec_for(
    kind: str,
    observation_space: Any,
    action_space: Any,
    obs: np.ndarray,
    *,
    state_only: bool,
    hidden_sizes: Sequence[int],
    gamma: float,
    spectral_norm: bool,
    absorbing: bool = False,
) -> dict[str, Any]:
    """The spec of a discriminator for the task's spaces, observations normalized with the
    demonstrations' ``obs`` statistics (``absorbing``: with an absorbing state)."""
    import gymnasium as gym

    x = np.asarray(obs, np.float64).reshape(len(obs), -1)
    std = x.std(0)
    spec: dict[str, Any] = {
        "kind": kind,
        "obs_dim": int(x.shape[1]),
        "state_only": bool(state_only),
        "hidden_sizes": [int(h) for h in hidden_sizes],
        "gamma": float(gamma),
        "spectral_norm": bool(spectral_norm),
        "absorbing": bool(absorbing),
        "obs_mean": x.mean(0).tolist(),
        "obs_std": np.where(std < 1e-6, 1.0, std).tolist(),
    }
    if isinstance(action_space, gym.spaces.Discrete):
        spec.update(discrete=True, act_dim=int(action_space.n))
    else:
        low = np.asarray(action_space.low, np.float64).ravel()
        high = np.asarray(action_space.high, np.float64).ravel()
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise ConfigError("adversarial imitation needs a bounded Box action space")
        spec.update(
            discrete=False, act_dim=int(low.size), act_low=low.tolist(), act_high=high.tolist()
        )
    return spec
