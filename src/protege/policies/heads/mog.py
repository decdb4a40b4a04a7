"""Mixture-of-Gaussians head: K diagonal Gaussians over the whole chunk, learned weights.

The head predicts, per observation, mixture logits ``(B, K)`` and for each component a mean
and a log standard deviation for every step of the chunk, ``(B, K, H, A)``. A component is a
whole chunk: sampling picks one component, then draws every step from it, so a chunk never
mixes "swerve left" at one step with "swerve right" at the next. Trained by negative
log-likelihood, as robomimic's BC-RNN-GMM (Mandlekar et al. 2021) and Bishop's mixture
density networks (1994).

Masking: padded steps are marginalized out of each component (a diagonal Gaussian's marginal
over the valid steps is the product of their densities), so they never affect the loss; the
loss is the chunk NLL divided by the number of valid steps. ``log_prob`` returns each step's
*marginal* log-likelihood ``(B, H)`` (a mixture with the same weights); for H = 1 it is the
exact one. ``mode`` is the mean of the most likely component.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from protege.device import multinomial, randn
from protege.policies.heads.base import Head, Metrics, register_head

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


def gaussian_log_density(
    x_BHA: torch.Tensor, mean_BKHA: torch.Tensor, log_std_BKHA: torch.Tensor
) -> torch.Tensor:
    """Per-step log N(x | mean, diag(std²)) summed over A: ``(B, K, H)``."""
    z = (x_BHA[:, None] - mean_BKHA) * torch.exp(-log_std_BKHA)
    return (-0.5 * z.pow(2) - log_std_BKHA - 0.5 * math.log(2 * math.pi)).sum(-1)


@register_head
class MixtureOfGaussiansHead(Head):
    """K chunk-level diagonal Gaussians with learned weights (head kwarg ``n_components``=5)."""

    name = "mog"
    has_log_prob = True

    def __init__(
        self, feature_dim: int, act_dim: int, chunk_size: int, n_components: int = 5, **kw: Any
    ) -> None:
        super().__init__(feature_dim, act_dim, chunk_size)
        if n_components < 1:
            raise ValueError(f"n_components must be ≥ 1, got {n_components}")
        self.K = n_components
        self.logits = nn.Linear(feature_dim, n_components)
        self.params = nn.Linear(feature_dim, 2 * n_components * chunk_size * act_dim)
        with torch.no_grad():
            # Spread the components' initial means so they do not all start on one point.
            means = self.params.bias.view(2, n_components, chunk_size, act_dim)[0]
            means.copy_(torch.linspace(-1.0, 1.0, n_components)[:, None, None].expand_as(means))

    def distribution(
        self, features_BF: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log weights ``(B, K)``, means ``(B, K, H, A)``, log stds ``(B, K, H, A)``)."""
        log_w_BK = F.log_softmax(self.logits(features_BF), dim=-1)
        out = self.params(features_BF).view(-1, 2, self.K, self.chunk_size, self.act_dim)
        return log_w_BK, out[:, 0], out[:, 1].clamp(LOG_STD_MIN, LOG_STD_MAX)

    def log_prob(self, features_BF: torch.Tensor, actions_BHA: torch.Tensor) -> torch.Tensor:
        log_w, mean, log_std = self.distribution(features_BF)
        logp_BKH = gaussian_log_density(actions_BHA, mean, log_std)
        return torch.logsumexp(log_w[..., None] + logp_BKH, dim=1)

    def loss(
        self, features_BF: torch.Tensor, actions_BHA: torch.Tensor, pad_mask_BH: torch.Tensor | None
    ) -> tuple[torch.Tensor, Metrics]:
        log_w, mean, log_std = self.distribution(features_BF)
        logp_BKH = gaussian_log_density(actions_BHA, mean, log_std)
        if pad_mask_BH is None:
            chunk_logp_BK = logp_BKH.sum(-1)
            n_valid = logp_BKH.new_tensor(float(logp_BKH.shape[0] * self.chunk_size))
        else:
            mask = pad_mask_BH.to(logp_BKH.dtype)
            chunk_logp_BK, n_valid = (logp_BKH * mask[:, None]).sum(-1), mask.sum().clamp_min(1.0)
        nll = -torch.logsumexp(log_w + chunk_logp_BK, dim=1).sum() / n_valid
        metrics: Metrics = {"nll": nll.detach()}
        if not torch.is_grad_enabled():
            metrics["weight_entropy"] = -(log_w.exp() * log_w).sum(-1).mean()
        return nll, metrics

    def mode(self, features_BF: torch.Tensor) -> torch.Tensor:
        log_w, mean, _ = self.distribution(features_BF)
        k_B = log_w.argmax(-1)
        return mean[torch.arange(len(k_B), device=k_B.device), k_B]

    def sample(
        self, features_BF: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        log_w, mean, log_std = self.distribution(features_BF)
        k_B = multinomial(log_w.exp(), generator).squeeze(-1)
        rows = torch.arange(len(k_B), device=k_B.device)
        mean_BHA, log_std_BHA = mean[rows, k_B], log_std[rows, k_B]
        noise = randn(mean_BHA.shape, generator, mean_BHA)
        return mean_BHA + noise * log_std_BHA.exp()
