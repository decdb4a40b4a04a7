"""Deterministic head trained with mean squared error (classic L2 behavioral cloning).

It predicts the conditional *mean* action: where demonstrators disagree (swerve left or
right), the mean can be an action nobody took.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from protege.policies.heads.base import (
    Head,
    Metrics,
    masked_mean,
    register_head,
    valid_weights,
)


@register_head
class DeterministicHead(Head):
    name = "mse"
    stochastic = False
    linear_output = True

    def __init__(self, feature_dim: int, act_dim: int, chunk_size: int, **kwargs: Any) -> None:
        super().__init__(feature_dim, act_dim, chunk_size)
        self.linear = nn.Linear(feature_dim, chunk_size * act_dim)

    def mode(self, features_BF: torch.Tensor) -> torch.Tensor:
        return self.output_mode(self.linear(features_BF))

    def output_mode(self, out_BD: torch.Tensor) -> torch.Tensor:
        return out_BD.view(-1, self.chunk_size, self.act_dim)

    def sample(
        self, features_BF: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return self.mode(features_BF)

    def loss(
        self, features_BF: torch.Tensor, actions_BHA: torch.Tensor, pad_mask_BH: torch.Tensor | None
    ) -> tuple[torch.Tensor, Metrics]:
        err_BH = (self.mode(features_BF) - actions_BHA).pow(2).mean(-1)
        loss = masked_mean(err_BH, pad_mask_BH)
        return loss, {"mse": loss.detach()}

    def output_loss(
        self,
        out_BD: torch.Tensor,
        actions_BHA: torch.Tensor,
        pad_mask_BH: torch.Tensor | None,
        grad_BD: torch.Tensor,
    ) -> torch.Tensor:
        # d/dpred of the weighted mean over steps of mean_A (pred − a)²: 2 (pred − a) w / A.
        diff = out_BD.view_as(actions_BHA) - actions_BHA
        err_BH = diff.square().mean(-1)
        w = valid_weights(pad_mask_BH, tuple(err_BH.shape))
        grad = grad_BD.view_as(diff)
        if isinstance(w, float):
            torch.mul(diff, 2.0 * w / self.act_dim, out=grad)
            return err_BH.mean()
        torch.mul(diff, w[..., None] * (2.0 / self.act_dim), out=grad)
        return (err_BH * w).sum()
