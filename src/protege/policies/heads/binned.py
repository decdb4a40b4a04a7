"""Binned autoregressive head: each action dimension is a categorical over bins, predicted one
dimension after another, each conditioned on the ones before.

Every normalized action value is discretized into ``n_bins`` (64) equal bins over the range
normalized actions live in (±1 after "minmax", ±3 after "std"; values outside fall in the edge
bins). A chunk of H steps and A dimensions is one sequence of L = H·A tokens in step-major
order ``(h=0, a=0), (h=0, a=1), …, (h=1, a=0), …``: the autoregression runs over dimensions
*and* over steps, so a chunk is one joint sample and never mixes modes between its steps. The
factorization ``p(x) = Π_j p(x_j | x_<j, features)`` is that of the discretized action
decoders of Gato (Reed et al. 2022) and RT-1 (Brohan et al. 2023) without a transformer.

The network is one MLP shared by all tokens: its input is the features, the bin centres of
the earlier tokens (later ones zeroed) and a learned position embedding. Training uses teacher
forcing (all L tokens in one batched pass, cross-entropy); sampling takes L sequential passes.
``sample`` draws each bin with the generator and a uniform value within it (so ``log_prob`` is
the density of a piecewise-uniform distribution); ``mode`` picks bins greedily and returns
their centres. Padded steps are masked out of the loss and replaced, as conditioning for later
tokens, by the last valid step (so their values never matter).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from protege.device import multinomial, rand
from protege.policies.heads.base import Head, Metrics, masked_mean, register_head
from protege.policies.heads.diffusion import NORMALIZED_LIMIT, forward_fill_padded


@register_head
class BinnedAutoregressiveHead(Head):
    """Autoregressive categorical over binned action dimensions.

    Head kwargs: ``n_bins`` (64), ``hidden_sizes`` ((256, 256)), ``action_norm`` ("std" → bins
    over ±3, "minmax" → over ±1; default: the policy's ``action_norm``).
    """

    name = "binned"
    uses_action_norm = True
    has_log_prob = True
    centers: torch.Tensor
    causal: torch.Tensor

    def __init__(
        self,
        feature_dim: int,
        act_dim: int,
        chunk_size: int,
        n_bins: int = 64,
        hidden_sizes: Sequence[int] = (256, 256),
        action_norm: str = "std",
        **kwargs: Any,
    ) -> None:
        super().__init__(feature_dim, act_dim, chunk_size)
        if n_bins < 2:
            raise ValueError(f"n_bins must be ≥ 2, got {n_bins}")
        if action_norm not in NORMALIZED_LIMIT:
            raise ValueError(f"action_norm must be one of {sorted(NORMALIZED_LIMIT)}")
        if not hidden_sizes:
            raise ValueError("the binned head needs at least one hidden layer")
        self.n_bins = n_bins
        self.L = chunk_size * act_dim
        self.limit = NORMALIZED_LIMIT[action_norm]
        self.bin_width = 2 * self.limit / n_bins
        centers = -self.limit + self.bin_width * (torch.arange(n_bins) + 0.5)
        self.register_buffer("centers", centers, persistent=False)
        self.register_buffer("causal", torch.ones(self.L, self.L).tril(-1), persistent=False)
        width = hidden_sizes[0]
        self.cond_proj = nn.Linear(feature_dim, width)
        self.prev_proj = nn.Linear(self.L, width, bias=False)
        self.pos_embed = nn.Parameter(torch.randn(self.L, width) * 0.02)
        layers: list[nn.Module] = [nn.ReLU()]
        for size in hidden_sizes[1:]:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, n_bins))
        self.body = nn.Sequential(*layers)

    def bin_index(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the bin holding each normalized value (edge bins take what lies outside)."""
        idx = torch.floor((x + self.limit) / self.bin_width).long()
        return idx.clamp(0, self.n_bins - 1)

    def _teacher_forced_logits(
        self,
        features_BF: torch.Tensor,
        actions_BHA: torch.Tensor,
        pad_mask_BH: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(B, L, n_bins)`` of every token given the true earlier ones, and the targets."""
        target_BL = self.bin_index(forward_fill_padded(actions_BHA, pad_mask_BH).flatten(1))
        prev_BLL = self.centers[target_BL][:, None, :] * self.causal
        h = self.prev_proj(prev_BLL) + self.pos_embed + self.cond_proj(features_BF)[:, None]
        return self.body(h), target_BL

    def log_prob(self, features_BF: torch.Tensor, actions_BHA: torch.Tensor) -> torch.Tensor:
        """Per-step log density ``(B, H)`` of the piecewise-uniform distribution, each step
        conditioned on the earlier steps of the chunk."""
        logits, target = self._teacher_forced_logits(features_BF, actions_BHA, None)
        logp_BL = F.log_softmax(logits, -1).gather(-1, target[..., None]).squeeze(-1)
        logp_BL = logp_BL - math.log(self.bin_width)
        return logp_BL.view(-1, self.chunk_size, self.act_dim).sum(-1)

    def loss(
        self, features_BF: torch.Tensor, actions_BHA: torch.Tensor, pad_mask_BH: torch.Tensor | None
    ) -> tuple[torch.Tensor, Metrics]:
        logits, target = self._teacher_forced_logits(features_BF, actions_BHA, pad_mask_BH)
        ce_BL = F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none")
        ce_BH = ce_BL.view(-1, self.chunk_size, self.act_dim).sum(-1)
        loss = masked_mean(ce_BH, pad_mask_BH)
        metrics: Metrics = {"cross_entropy": loss.detach()}
        if not torch.is_grad_enabled():
            hit = (logits.argmax(-1) == target).float().view(-1, self.chunk_size, self.act_dim)
            metrics["bin_accuracy"] = masked_mean(hit.mean(-1), pad_mask_BH)
        return loss, metrics

    def _decode(
        self, features_BF: torch.Tensor, greedy: bool, generator: torch.Generator | None
    ) -> torch.Tensor:
        B = features_BF.shape[0]
        cond = self.cond_proj(features_BF)
        prev_BL = features_BF.new_zeros(B, self.L)
        out_BL = features_BF.new_zeros(B, self.L)
        for j in range(self.L):
            logits = self.body(self.prev_proj(prev_BL) + self.pos_embed[j] + cond)
            if greedy:
                k_B = logits.argmax(-1)
                out_BL[:, j] = self.centers[k_B]
            else:
                k_B = multinomial(F.softmax(logits, -1), generator)[:, 0]
                u_B = rand((B,), generator, features_BF)
                out_BL[:, j] = self.centers[k_B] + (u_B - 0.5) * self.bin_width
            prev_BL[:, j] = self.centers[k_B]
        return out_BL.view(B, self.chunk_size, self.act_dim)

    def mode(self, features_BF: torch.Tensor) -> torch.Tensor:
        return self._decode(features_BF, greedy=True, generator=None)

    def sample(
        self, features_BF: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return self._decode(features_BF, greedy=False, generator=generator)
