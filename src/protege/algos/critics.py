"""Value functions fit on a store's rewards, for the advantage-weighted methods of the offline
dial (:mod:`protege.algos.offline`).

* AWR (:func:`awr_advantages`): a value network ``V(s)`` regressed on each step's TD(λ)
  return ``G^λ_t = r_t + γ ((1 − λ) V(s_{t+1}) + λ G^λ_{t+1})`` (Peng et al. 2019, λ = 0.95),
  the targets recomputed from the current ``V`` every 1000 steps; an episode's last step
  bootstraps from ``V`` of its final observation unless it terminated (so a time limit is
  not mistaken for the end of all reward: plain Monte Carlo returns shrink toward the end of
  every truncated episode). ``A = G^λ_t − V(s_t)``.
* IQL (:func:`iql_advantages`): ``V(s)`` by expectile regression (τ) on ``min(Q₁, Q₂)`` of
  target networks, twin ``Q(s, a)`` by TD on ``r + γ (1 − terminal) V(s')``, targets by Polyak
  averaging, all in one update per step (Kostrikov, Nair & Levine 2021); ``A = min Q̄ − V``.
  The twins and their targets are stacked (:mod:`protege.policies.stacked`): one batched
  product per layer for both, the backward pass written out.

Rewards are divided by the standard deviation of the Monte Carlo returns over the data, so
values are O(1) on every task (the paper rescales per benchmark instead); the advantages
returned are in those units. Observations are standardized; continuous actions too (as the Q
network's input). Discrete actions: the Q networks output one value per action.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from protege.algos.optim import FlatAdamW, RowsAdamW
from protege.configs.offline import OfflineConfig
from protege.data.transitions import Transitions
from protege.errors import TrainingError
from protege.policies.encoders import mlp
from protege.policies.stacked import StackedBackprop, StackedMLP, stacked_forward
from protege.policies.success_q import pick


@dataclass
class CriticResult:
    """What fitting the value functions did: steps, time, losses."""

    steps: int
    seconds: float = 0.0
    samples_per_s: float = 0.0
    reward_scale: float = 1.0
    """Rewards were multiplied by this (1 / std of the Monte Carlo returns)."""
    history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mc_returns(data: Transitions, discount: float) -> np.ndarray:
    """(N,) float64: each step's discounted return to its episode's end."""
    out = np.empty(len(data), np.float64)
    rewards = np.asarray(data.rewards, np.float64)
    for start, length in zip(data.episode_starts, data.episode_lengths, strict=True):
        acc = 0.0
        for i in range(start + length - 1, start - 1, -1):
            acc = rewards[i] + discount * acc
            out[i] = acc
    return out


class _Standardize:
    """(x − mean) / std with statistics of the data (std floored at 1e-6 → 1)."""

    def __init__(self, x: np.ndarray):
        x64 = np.asarray(x, np.float64).reshape(len(x), -1)
        std = x64.std(0)
        self.mean = torch.as_tensor(x64.mean(0), dtype=torch.float32)
        self.std = torch.as_tensor(np.where(std < 1e-6, 1.0, std), dtype=torch.float32)

    def __call__(self, x: np.ndarray) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(x, np.float32).reshape(len(x), -1))
        return (t - self.mean) / self.std


def _net(in_dim: int, hidden: tuple[int, ...], out: int) -> nn.Sequential:
    return nn.Sequential(mlp(in_dim, hidden), nn.Linear(hidden[-1], out))


def _check_finite(loss: float, step: int, what: str) -> None:
    if not math.isfinite(loss):
        raise TrainingError(
            f"{what} diverged: the loss is {loss} at step {step} (lower --critic-lr)", step, 0
        )


AWR_LAMBDA = 0.95
"""λ of AWR's TD(λ) value targets (Peng et al. 2019)."""
AWR_REFRESH = 1000
"""AWR recomputes its TD(λ) targets from the current value network every this many steps."""


def lambda_returns(
    rewards: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    data: Transitions,
    discount: float,
    lam: float,
) -> np.ndarray:
    """(N,) TD(λ) returns: ``G_t = r_t + γ ((1 − λ) V(s_{t+1}) + λ G_{t+1})`` inside an
    episode; at its last step ``r + γ V(s_final)``, or ``r`` if it terminated. ``values``
    are ``V(s_t)``, ``next_values`` ``V(s_{t+1})`` (the final observation's at the last)."""
    out = np.empty(len(rewards), np.float64)
    terminal = data.step_terminal()
    for start, length in zip(data.episode_starts, data.episode_lengths, strict=True):
        last = start + length - 1
        acc = rewards[last] + (0.0 if terminal[last] else discount * next_values[last])
        out[last] = acc
        for i in range(last - 1, start - 1, -1):
            acc = rewards[i] + discount * ((1 - lam) * values[i + 1] + lam * acc)
            out[i] = acc
    return out


def awr_advantages(
    data: Transitions, config: OfflineConfig, seed: int, progress: bool = False
) -> tuple[np.ndarray, CriticResult]:
    """(N,) advantages ``G^λ_t − V(s_t)`` (scaled reward units) and how ``V`` was fit."""
    gen = torch.Generator().manual_seed(seed)
    scale = 1.0 / max(float(mc_returns(data, config.gamma).std()), 1e-6)
    rewards = np.asarray(data.rewards, np.float64) * scale
    norm = _Standardize(data.obs)
    obs, next_obs = norm(data.obs), norm(data.next_obs())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        value = _net(obs.shape[1], tuple(config.critic_hidden), 1)

    def targets() -> torch.Tensor:
        with torch.no_grad():
            v = torch.cat([value(c)[:, 0] for c in obs.split(8192)]).double().numpy()
            v_next = torch.cat([value(c)[:, 0] for c in next_obs.split(8192)]).double().numpy()
        g = lambda_returns(rewards, v, v_next, data, config.gamma, AWR_LAMBDA)
        return torch.as_tensor(g, dtype=torch.float32)

    opt = FlatAdamW(value.parameters(), lr=config.critic_lr)
    result = CriticResult(steps=config.critic_steps, reward_scale=scale)
    t0, running = time.perf_counter(), []
    try:
        for step in tqdm(
            range(1, config.critic_steps + 1), desc="value", disable=not progress, leave=False
        ):
            if step % AWR_REFRESH == 1:
                target = targets()
            rows = torch.randint(len(obs), (config.critic_batch_size,), generator=gen)
            loss = (value(obs[rows])[:, 0] - target[rows]).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            running.append(loss.item())
            if step % 1000 == 0 or step == config.critic_steps:
                _check_finite(running[-1], step, "the value fit")
                result.history.append({"step": step, "value_loss": float(np.mean(running))})
                running = []
    finally:
        opt.release()
    result.seconds = time.perf_counter() - t0
    result.samples_per_s = config.critic_steps * config.critic_batch_size / result.seconds
    target = targets()
    with torch.no_grad():
        v = torch.cat([value(chunk)[:, 0] for chunk in obs.split(8192)])
    return (target - v).numpy().astype(np.float64), result


def iql_advantages(
    data: Transitions,
    config: OfflineConfig,
    seed: int,
    n_actions: int = 0,
    progress: bool = False,
) -> tuple[np.ndarray, CriticResult]:
    """(N,) advantages ``min(Q̄₁, Q̄₂)(s, a) − V(s)`` (scaled reward units, ``a`` the executed
    action) and how the critics were fit. ``n_actions`` > 0: Discrete actions.

    The twin Q networks (and their targets) are one :class:`StackedMLP` of two members, and
    ``V`` one of one member; both train with the backward pass written out
    (:class:`StackedBackprop`) instead of autograd, so an update is a few batched products
    and one fused Adam step. The arithmetic is that of ``V``, ``Q₁``, ``Q₂`` as separate
    ``nn.Sequential`` networks under autograd, to float rounding (a test checks)."""
    gen = torch.Generator().manual_seed(seed)
    scale = 1.0 / max(float(mc_returns(data, config.gamma).std()), 1e-6)
    norm = _Standardize(data.obs)
    obs, next_obs = norm(data.obs), norm(data.next_obs())
    reward = torch.as_tensor(np.asarray(data.rewards, np.float64) * scale, dtype=torch.float32)
    not_done = torch.as_tensor(~data.step_terminal(), dtype=torch.float32) * config.gamma
    hidden = tuple(config.critic_hidden)
    n_obs = obs.shape[1]
    if n_actions:
        acts = torch.as_tensor(np.asarray(data.executed).reshape(-1), dtype=torch.long)
        act_cols = acts[:, None].float()
        q_in, q_out = n_obs, n_actions
    else:
        act_cols = _Standardize(data.executed)(data.executed)
        q_in, q_out = n_obs + act_cols.shape[1], 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        value = _net(n_obs, hidden, 1)
        q1, q2 = _net(q_in, hidden, q_out), _net(q_in, hidden, q_out)
    v_mlp = StackedMLP([_linears(value)])
    q_mlp = StackedMLP([_linears(q1), _linears(q2)])
    target = StackedMLP([_linears(q1), _linears(q2)])
    v_net, q_net = StackedBackprop(v_mlp), StackedBackprop(q_mlp)
    v_layers, target_layers = v_mlp.layers(), target.layers()
    opt = RowsAdamW(
        [v_mlp.flat.view(-1), q_mlp.flat.view(-1)],
        [v_mlp.grad.view(-1), q_mlp.grad.view(-1)],
        lr=config.critic_lr,
    )
    # Every row in one tensor, so a batch is one gather: s (and, continuous, a: the Q input
    # is the first q_in columns), s', r, γ(1 − terminal), and a Discrete action's index.
    packed = torch.cat([obs, act_cols, next_obs, reward[:, None], not_done[:, None]], 1)
    c_next = n_obs + act_cols.shape[1]
    c_r = c_next + n_obs

    tau, B = config.tau, config.critic_batch_size
    result = CriticResult(steps=config.critic_steps, reward_scale=scale)
    t0, running = time.perf_counter(), []
    for step in tqdm(
        range(1, config.critic_steps + 1), desc="iql critics", disable=not progress, leave=False
    ):
        b = packed.index_select(0, torch.randint(len(packed), (B,), generator=gen))
        a = b[:, n_obs] if n_actions else None
        x_q = b[:, :q_in]
        # Targets (no gradient): V(s') of the current V, min of the target twins at (s, a).
        v_next = stacked_forward(v_layers, b[:, c_next:c_r])[0, :, 0]
        y = b[:, c_r] + b[:, c_r + 1] * v_next
        q_target = pick(stacked_forward(target_layers, x_q), a).amin(0)
        # V: expectile regression on the target twins; Q: TD on y. Gradients of
        # mean(|τ − 1(d < 0)|·d²) with d = Q̄ − V, and of Σ_k mean((Q_k − y)²).
        diff = q_target - v_net.forward(b[:, :n_obs])[0, :, 0]
        w = torch.where(diff < 0, 1.0 - tau, tau)
        q_err = pick(q_net.forward(x_q), a) - y
        running.append((w * diff.square()).mean() + q_err.square().mean(1).sum())
        v_net.output_grad()[0, :, 0] = diff.mul_(w).mul_(-2.0 / B)
        grad_q = q_net.output_grad()
        if a is None:
            grad_q[:, :, 0] = q_err.mul_(2.0 / B)
        else:
            index = a.long().view(1, -1, 1).expand(2, -1, 1)
            grad_q.zero_().scatter_(2, index, q_err.mul_(2.0 / B).unsqueeze(2))
        v_net.backward()
        q_net.backward()
        opt.step()
        target.flat.lerp_(q_mlp.flat, config.target_update)
        if step % 1000 == 0 or step == config.critic_steps:
            losses = torch.stack(running)  # one read per 1000 steps, not one per step
            _check_finite(float(losses[-1]), step, "the IQL critics")
            result.history.append({"step": step, "critic_loss": float(losses.mean())})
            running = []
    result.seconds = time.perf_counter() - t0
    result.samples_per_s = config.critic_steps * B / result.seconds
    adv = []
    for chunk in packed.split(8192):
        a = chunk[:, n_obs] if n_actions else None
        q = pick(stacked_forward(target_layers, chunk[:, :q_in]), a).amin(0)
        adv.append(q - stacked_forward(v_layers, chunk[:, :n_obs])[0, :, 0])
    return torch.cat(adv).numpy().astype(np.float64), result


def _linears(net: nn.Module) -> list[nn.Linear]:
    return [m for m in net.modules() if isinstance(m, nn.Linear)]
