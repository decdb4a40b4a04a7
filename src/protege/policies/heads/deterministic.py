"""Deterministic head trained with mean squared error (classic L2 behavioral cloning).

It predicts the conditional *mean* action: where demonstrators disagree (swerve left or
right), the mean can be an action nobody took.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from protege.policies.heads.base import LinearHead, register_head, valid_weights


@register_head
class DeterministicHead(LinearHead):
    """The action itself, ``(B, H, A)``; loss: the mean over valid steps of the mean over
    action dimensions of ``(prediction − action)²``."""

    name = "mse"
    stochastic = False
    loss_name = "mse"

    def __init__(self, feature_dim: int, act_dim: int, chunk_size: int, **kwargs: Any) -> None:
        super().__init__(feature_dim, act_dim, chunk_size)
        self.linear = nn.Linear(feature_dim, chunk_size * act_dim)

    def output_mode(self, out_BD: torch.Tensor) -> torch.Tensor:
        return out_BD.view(-1, self.chunk_size, self.act_dim)

    def sample(
        self, features_BF: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return self.mode(features_BF)

    def output_loss(
        self,
        out_BD: torch.Tensor,
        actions_BHA: torch.Tensor,
        pad_mask_BH: torch.Tensor | None,
        with_grad: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        # Σ_steps w · mean_A (pred − a)², w = 1/(valid steps); d/dpred = 2 (pred − a) w / A.
        diff = out_BD.view_as(actions_BHA) - actions_BHA
        err_BH = diff.square().mean(-1)
        w = valid_weights(pad_mask_BH, tuple(err_BH.shape))
        grad = None
        if isinstance(w, float):
            if with_grad:
                grad = torch.mul(diff, 2.0 * w / self.act_dim).view_as(out_BD)
            return err_BH.mean(), grad
        if with_grad:
            grad = torch.mul(diff, w[..., None] * (2.0 / self.act_dim)).view_as(out_BD)
        return (err_BH * w).sum(), grad
