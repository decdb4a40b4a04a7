"""Diagonal Gaussian head trained by negative log-likelihood.

One mode per state: like the L2 head it cannot represent "left or right", but it does learn
how uncertain the demonstrations are.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from protege.policies.heads.base import Head, Metrics, masked_mean, register_head

LOG_STD_MIN, LOG_STD_MAX = -7.0, 2.0


@register_head
class GaussianHead(Head):
    name = "gaussian"
    has_log_prob = True

    def __init__(self, feature_dim: int, act_dim: int, chunk_size: int, **kwargs: Any) -> None:
        super().__init__(feature_dim, act_dim, chunk_size)
        self.linear = nn.Linear(feature_dim, 2 * chunk_size * act_dim)

    def _params(self, features_BF: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.linear(features_BF).view(-1, self.chunk_size, 2, self.act_dim)
        mean_BHA, log_std_BHA = out[:, :, 0], out[:, :, 1]
        return mean_BHA, log_std_BHA.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def log_prob(self, features_BF: torch.Tensor, actions_BHA: torch.Tensor) -> torch.Tensor:
        mean, log_std = self._params(features_BF)
        z = (actions_BHA - mean) * torch.exp(-log_std)
        return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def loss(
        self, features_BF: torch.Tensor, actions_BHA: torch.Tensor, pad_mask_BH: torch.Tensor | None
    ) -> tuple[torch.Tensor, Metrics]:
        loss = masked_mean(-self.log_prob(features_BF, actions_BHA), pad_mask_BH)
        return loss, {"nll": loss.detach()}

    def mode(self, features_BF: torch.Tensor) -> torch.Tensor:
        return self._params(features_BF)[0]

    def sample(
        self, features_BF: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        mean, log_std = self._params(features_BF)
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        return mean + noise * log_std.exp()
