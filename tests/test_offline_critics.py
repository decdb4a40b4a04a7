"""IQL's critics with the twin Q networks stacked (:func:`protege.algos.critics.iql_advantages`)
against the same update written with three ``nn.Sequential`` networks and autograd."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

import protege
from protege import Store
from protege.algos import critics
from protege.algos.optim import FlatAdamW
from protege.configs.offline import OfflineConfig, parse_mix
from protege.data.transitions import Transitions
from protege.rollout.collect import collect_mix


def _autograd_iql(
    data: Transitions, config: OfflineConfig, seed: int, n_actions: int
) -> np.ndarray:
    """The IQL update as separate networks under autograd: V by expectile regression on the
    target twins' min, twin Q by TD on r + γ(1 − d)V(s'), Polyak targets, one Adam step."""
    gen = torch.Generator().manual_seed(seed)
    scale = 1.0 / max(float(critics.mc_returns(data, config.gamma).std()), 1e-6)
    norm = critics._Standardize(data.obs)
    obs, next_obs = norm(data.obs), norm(data.next_obs())
    reward = torch.as_tensor(np.asarray(data.rewards, np.float64) * scale, dtype=torch.float32)
    not_done = torch.as_tensor(~data.step_terminal(), dtype=torch.float32) * config.gamma
    hidden = tuple(config.critic_hidden)
    if n_actions:
        acts = torch.as_tensor(np.asarray(data.executed).reshape(-1), dtype=torch.long)
        q_in, q_out = obs.shape[1], n_actions
    else:
        acts = critics._Standardize(data.executed)(data.executed)
        q_in, q_out = obs.shape[1] + acts.shape[1], 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        value = critics._net(obs.shape[1], hidden, 1)
        q1, q2 = critics._net(q_in, hidden, q_out), critics._net(q_in, hidden, q_out)
    t1, t2 = copy.deepcopy(q1), copy.deepcopy(q2)

    def qv(net: torch.nn.Module, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        if n_actions:
            return net(s).gather(1, a[:, None])[:, 0]
        return net(torch.cat([s, a], 1))[:, 0]

    params = [*value.parameters(), *q1.parameters(), *q2.parameters()]
    opt = FlatAdamW(params, config.critic_lr)
    for _ in range(config.critic_steps):
        rows = torch.randint(len(obs), (config.critic_batch_size,), generator=gen)
        s, a = obs[rows], acts[rows]
        with torch.no_grad():
            y = reward[rows] + not_done[rows] * value(next_obs[rows])[:, 0]
            q_target = torch.minimum(qv(t1, s, a), qv(t2, s, a))
        diff = q_target - value(s)[:, 0]
        v_loss = (torch.where(diff < 0, 1.0 - config.tau, config.tau) * diff.square()).mean()
        q_loss = (qv(q1, s, a) - y).square().mean() + (qv(q2, s, a) - y).square().mean()
        opt.zero_grad()
        (v_loss + q_loss).backward()
        opt.step()
        with torch.no_grad():
            for t, q in ((t1, q1), (t2, q2)):
                for pt, pq in zip(t.parameters(), q.parameters(), strict=True):
                    pt.lerp_(pq, config.target_update)
    opt.release()
    with torch.no_grad():
        adv = torch.minimum(qv(t1, obs, acts), qv(t2, obs, acts)) - value(obs)[:, 0]
    return adv.double().numpy()


@pytest.mark.parametrize("task_name", ["cartpole", "pendulum"])
def test_stacked_iql_critics_equal_separate_networks_under_autograd(
    task_name: str, tmp_path: Path
) -> None:
    task = protege.tasks.make(task_name)
    collect_mix(task, tmp_path / "mix", parse_mix("expert:0.5,random:0.5"), 4, n_envs=4)
    data = Store.open(tmp_path / "mix").transitions()
    n_actions = int(getattr(task.spaces[1], "n", 0))
    config = OfflineConfig(
        "iql", critic_steps=60, critic_hidden=(32, 32), critic_batch_size=64, target_update=0.1
    )
    adv, result = critics.iql_advantages(data, config, seed=4, n_actions=n_actions)
    reference = _autograd_iql(data, config, seed=4, n_actions=n_actions)
    assert result.steps == 60 and np.isfinite(adv).all()
    assert np.abs(reference).max() > 1e-3  # the critics moved: the comparison is not of zeros
    np.testing.assert_allclose(adv, reference, rtol=1e-4, atol=1e-5)
