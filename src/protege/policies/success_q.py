"""ThriftyDAgger's success critic: twin Q networks of the probability of success
(:class:`SuccessQ`), both twins answering in one stacked pass (:class:`TwinPlan`). Trained by
:func:`protege.algos.success_td.td_fit`; used by
:class:`~protege.policies.thrifty.ThriftyLearner`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from protege.data.obs import flat
from protege.policies.encoders import mlp
from protege.policies.parts import flat_tensor, to_tensors
from protege.policies.stacked import StackedMLP, Watch, stacked_forward


class SuccessQ(nn.Module):
    """Twin Q networks with sigmoid outputs: Q(s, a) ≈ the discounted probability that the
    episode ends in success after action a at s, the robot driving afterwards. Discrete
    actions get one output per action; continuous ones are an input. ``success`` is the min
    of the twins, as in the paper's code."""

    obs_mean: torch.Tensor
    obs_std: torch.Tensor

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        n_actions: int = 0,
        hidden: Sequence[int] = (256, 256),
    ):
        super().__init__()
        self.obs_dim, self.act_dim, self.n_actions = obs_dim, act_dim, n_actions
        self.hidden = tuple(hidden)
        in_dim = obs_dim + (0 if n_actions else act_dim)
        out = n_actions or 1
        self.q1 = nn.Sequential(mlp(in_dim, hidden), nn.Linear(hidden[-1], out))
        self.q2 = nn.Sequential(mlp(in_dim, hidden), nn.Linear(hidden[-1], out))
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))
        self._plan: TwinPlan | None = None

    def set_normalization(self, obs: Any) -> None:
        """Statistics of observations ``obs`` (an array, or a dict of parts, flattened and
        concatenated in order)."""
        obs64 = flat(obs)
        std = obs64.std(0)
        self.obs_mean.copy_(torch.as_tensor(obs64.mean(0), dtype=torch.float32))
        self.obs_std.copy_(torch.as_tensor(np.where(std < 1e-6, 1.0, std), dtype=torch.float32))

    def both(self, obs: Any, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,) Q values of both twins at (obs, actions); ``obs`` a tensor or a dict of parts."""
        x = (flat_tensor(obs) - self.obs_mean) / self.obs_std
        if self.n_actions:
            idx = actions.long().reshape(-1, 1)
            q1 = torch.sigmoid(self.q1(x)).gather(1, idx)[:, 0]
            q2 = torch.sigmoid(self.q2(x)).gather(1, idx)[:, 0]
            return q1, q2
        x = torch.cat([x, actions.float().reshape(len(x), -1)], dim=1)
        return torch.sigmoid(self.q1(x))[:, 0], torch.sigmoid(self.q2(x))[:, 0]

    @torch.inference_mode()
    def success(self, obs: Any, actions: np.ndarray) -> np.ndarray:
        """(N,) the min of the twins' Q at (obs, actions), both twins in one stacked pass."""
        if self._plan is None or not self._plan.current():
            self._plan = TwinPlan(self)
        q = self._plan(self, to_tensors(obs), torch.as_tensor(np.asarray(actions)))
        return torch.minimum(q[0], q[1]).numpy().astype(np.float64)

    def spec(self) -> dict[str, Any]:
        return {
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "n_actions": self.n_actions,
            "hidden": list(self.hidden),
        }


def twin_layers(critic: SuccessQ) -> list[list[nn.Linear]]:
    """The linear layers of the critic's two networks, input to output."""
    return [
        [m for m in net.modules() if isinstance(m, nn.Linear)] for net in (critic.q1, critic.q2)
    ]


def critic_inputs(critic: SuccessQ, obs: Any, actions: torch.Tensor) -> torch.Tensor:
    """The networks' input rows: normalized observations (a dict of parts flattened and
    concatenated), then (continuous actions) the actions, as :meth:`SuccessQ.both` builds
    them."""
    x = (flat_tensor(obs) - critic.obs_mean) / critic.obs_std
    if critic.n_actions:
        return x
    return torch.cat([x, actions.float().reshape(len(x), -1)], dim=1)


class TwinPlan:
    """Both twins of a critic answering in one pass, checked against the critic's weights
    and statistics on every call (:meth:`current`); each twin's arithmetic is
    :meth:`SuccessQ.both`'s."""

    def __init__(self, critic: SuccessQ) -> None:
        layers = twin_layers(critic)
        tensors = [t for ls in layers for layer in ls for t in (layer.weight, layer.bias)]
        self.watch = Watch([*tensors, critic.obs_mean, critic.obs_std])
        self.layers = StackedMLP(layers).layers()

    def current(self) -> bool:
        return self.watch.current()

    @torch.no_grad()
    def __call__(self, critic: SuccessQ, obs: Any, actions: torch.Tensor) -> torch.Tensor:
        """``(2, N)`` both twins' Q at (obs, actions)."""
        out = stacked_forward(self.layers, critic_inputs(critic, obs, actions)).sigmoid_()
        return pick(out, actions if critic.n_actions else None)


def pick(out_TBO: torch.Tensor, actions: torch.Tensor | None) -> torch.Tensor:
    """``(T, B)``: the output of each row's action (discrete), or the one output."""
    if actions is None:
        return out_TBO[:, :, 0]
    idx = actions.long().view(1, -1, 1).expand(out_TBO.shape[0], -1, 1)
    return out_TBO.gather(2, idx).squeeze(2)
