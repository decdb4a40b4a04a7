"""Categorical head for Discrete action spaces, trained with cross-entropy."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from protege.device import multinomial
from protege.policies.heads.base import (
    LinearHead,
    Metrics,
    masked_mean,
    register_head,
    valid_weights,
)


@register_head
class CategoricalHead(LinearHead):
    """Logits over ``n_actions`` per chunk step; actions are indices stored as (B, H, 1)."""

    name = "categorical"
    discrete = True
    has_log_prob = True
    loss_name = "cross_entropy"

    def __init__(
        self, feature_dim: int, act_dim: int, chunk_size: int, n_actions: int = 2, **kw: Any
    ) -> None:
        super().__init__(feature_dim, act_dim, chunk_size)
        if act_dim != 1:
            raise ValueError("the categorical head predicts one discrete action per step")
        self.n_actions = n_actions
        self.linear = nn.Linear(feature_dim, chunk_size * n_actions)

    def logits(self, features_BF: torch.Tensor) -> torch.Tensor:
        return self.linear(features_BF).view(-1, self.chunk_size, self.n_actions)

    def log_prob(self, features_BF: torch.Tensor, actions_BHA: torch.Tensor) -> torch.Tensor:
        logp_BHK = F.log_softmax(self.logits(features_BF), dim=-1)
        return logp_BHK.gather(-1, actions_BHA.long()).squeeze(-1)

    def output_loss(
        self,
        out_BD: torch.Tensor,
        actions_BHA: torch.Tensor,
        pad_mask_BH: torch.Tensor | None,
        with_grad: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        # Cross-entropy −log softmax(logits)[label], averaged over valid steps;
        # d/d(logits) = softmax − one_hot(label), times each step's weight.
        B = len(out_BD)
        logp = F.log_softmax(out_BD.view(-1, self.n_actions), dim=-1)
        labels = actions_BHA.long().view(-1, 1)
        nll = logp.gather(1, labels).neg_()
        w = valid_weights(pad_mask_BH, (B, self.chunk_size))
        w_1 = w if isinstance(w, float) else w.view(-1, 1)
        grad = None
        if with_grad:
            grad = torch.exp(logp)
            grad.scatter_add_(1, labels, torch.full_like(nll, -1.0))
            grad = grad.mul_(w_1).view_as(out_BD)
        return (nll.mean() if isinstance(w_1, float) else (nll * w_1).sum()), grad

    def output_metrics(
        self, out_BD: torch.Tensor, actions_BHA: torch.Tensor, pad_mask_BH: torch.Tensor | None
    ) -> Metrics:
        hits = (self.output_mode(out_BD)[..., 0] == actions_BHA[..., 0]).float()
        return {"accuracy": masked_mean(hits, pad_mask_BH)}

    def output_mode(self, out_BD: torch.Tensor) -> torch.Tensor:
        return out_BD.view(-1, self.chunk_size, self.n_actions).argmax(-1, keepdim=True).float()

    def sample(
        self, features_BF: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        probs_BHK = F.softmax(self.logits(features_BF), dim=-1)
        flat = multinomial(probs_BHK.flatten(0, 1), generator)
        return flat.view(-1, self.chunk_size, 1).float()
