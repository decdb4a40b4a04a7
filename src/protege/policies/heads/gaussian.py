"""Diagonal Gaussian head trained by negative log-likelihood.

One mode per state: like the L2 head it cannot represent "left or right", but it does learn
how uncertain the demonstrations are.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from protege.device import randn
from protege.policies.heads.base import LinearHead, register_head, valid_weights

LOG_STD_MIN, LOG_STD_MAX = -7.0, 2.0


@register_head
class GaussianHead(LinearHead):
    """A mean and a log standard deviation (clamped to [-7, 2]) per action dimension and
    chunk step; loss: the negative log-likelihood, summed over action dimensions and
    averaged over valid steps."""

    name = "gaussian"
    has_log_prob = True
    loss_name = "nll"

    def __init__(self, feature_dim: int, act_dim: int, chunk_size: int, **kwargs: Any) -> None:
        super().__init__(feature_dim, act_dim, chunk_size)
        self.linear = nn.Linear(feature_dim, 2 * chunk_size * act_dim)

    def _params(self, features_BF: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.linear(features_BF).view(-1, self.chunk_size, 2, self.act_dim)
        mean_BHA, log_std_BHA = out[:, :, 0], out[:, :, 1]
        return mean_BHA, log_std_BHA.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def kl(
        self, features_BF: torch.Tensor, other: GaussianHead, other_features_BF: torch.Tensor
    ) -> torch.Tensor:
        """KL(this head's Gaussian ‖ ``other``'s) per chunk step, [B, H], in closed form
        (summed over action dimensions): finite and exact where a sampled estimate of it
        overflows (a narrow ``other`` and an action it finds unlikely)."""
        mean_p, log_std_p = self._params(features_BF)
        mean_q, log_std_q = other._params(other_features_BF)
        ratio = torch.exp(2.0 * (log_std_p - log_std_q))  # σp² / σq²
        gap = (mean_p - mean_q) * torch.exp(-log_std_q)  # (μp − μq) / σq
        return (log_std_q - log_std_p + 0.5 * (ratio + gap.square() - 1.0)).sum(-1)

    def log_prob(self, features_BF: torch.Tensor, actions_BHA: torch.Tensor) -> torch.Tensor:
        mean, log_std = self._params(features_BF)
        z = (actions_BHA - mean) * torch.exp(-log_std)
        return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def output_loss(
        self,
        out_BD: torch.Tensor,
        actions_BHA: torch.Tensor,
        pad_mask_BH: torch.Tensor | None,
        with_grad: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        # NLL per dim: z²/2 + log σ + log √(2π), z = (a − μ)/σ. d/dμ = −z/σ; d/dlog σ = 1 − z²
        # inside the clamp, 0 outside it (where the clamp holds log σ fixed).
        out = out_BD.view(-1, self.chunk_size, 2, self.act_dim)
        mean, raw_log_std = out[:, :, 0], out[:, :, 1]
        log_std = raw_log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        inv_std = torch.exp(-log_std)
        z = (actions_BHA - mean) * inv_std
        nll_BH = (0.5 * z.square() + log_std).sum(-1) + 0.5 * math.log(2 * math.pi) * self.act_dim
        w = valid_weights(pad_mask_BH, tuple(nll_BH.shape))
        grad = None
        if with_grad:
            w_BH1 = w if isinstance(w, float) else w[..., None]
            grad = torch.empty_like(out)
            torch.mul(z * inv_std, -w_BH1, out=grad[:, :, 0])
            inside = (raw_log_std >= LOG_STD_MIN) & (raw_log_std <= LOG_STD_MAX)
            torch.mul((1.0 - z.square()) * inside, w_BH1, out=grad[:, :, 1])
            grad = grad.view_as(out_BD)
        return (nll_BH.mean() if isinstance(w, float) else (nll_BH * w).sum()), grad

    def output_mode(self, out_BD: torch.Tensor) -> torch.Tensor:
        return out_BD.view(-1, self.chunk_size, 2, self.act_dim)[:, :, 0]

    def sample(
        self, features_BF: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        mean, log_std = self._params(features_BF)
        noise = randn(mean.shape, generator, mean)
        return mean + noise * log_std.exp()
