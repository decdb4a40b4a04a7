"""The head interface: a head owns its distribution, its loss and its sampler.

Every head maps features ``(B, F)`` to actions ``(B, H, A)`` (H = chunk size, A = action dim;
a discrete action is one integer-valued dimension). Actions a head sees are normalized by the
policy; the head never touches raw env units.

A new head subclasses :class:`Head`, sets ``name`` and registers itself with
:func:`register_head`; policies look heads up by name, so no other code changes.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

Metrics = dict[str, torch.Tensor]
"""Named detached scalars; converting them to floats is left to whoever logs them."""

HEADS: dict[str, type[Head]] = {}


def register_head(cls: type[Head]) -> type[Head]:
    HEADS[cls.name] = cls
    return cls


class Head(nn.Module):
    """Base class for output heads.

    Attributes:
        name: the registry key (``--head`` on the CLI, ``head`` in config.json).
        discrete: True if the head predicts indices of a Discrete action space.
        has_log_prob: True if :meth:`log_prob` is tractable (diffusion and flow heads are not).
        stochastic: True if :meth:`sample` differs from :meth:`mode`.
    """

    name: ClassVar[str]
    discrete: ClassVar[bool] = False
    has_log_prob: ClassVar[bool] = False
    stochastic: ClassVar[bool] = True
    linear_output: ClassVar[bool] = False
    """True for a :class:`LinearHead`: one ``nn.Linear`` whose output's closed-form loss
    and gradient the head derives itself. BC then trains an MLP policy with this head
    without autograd (:mod:`protege.algos.mlp_step`)."""
    uses_action_norm: ClassVar[bool] = False
    """True if the head's ``__init__`` takes ``action_norm`` (the range normalized actions live
    in); the policy then passes its own ``PolicyConfig.action_norm`` unless head_kwargs say."""

    def __init__(self, feature_dim: int, act_dim: int, chunk_size: int, **kwargs: Any) -> None:
        super().__init__()
        self.feature_dim = feature_dim
        self.act_dim = act_dim
        self.chunk_size = chunk_size

    def loss(
        self, features_BF: torch.Tensor, actions_BHA: torch.Tensor, pad_mask_BH: torch.Tensor | None
    ) -> tuple[torch.Tensor, Metrics]:
        """Scalar training loss averaged over valid (``pad_mask_BH`` true) steps.

        ``pad_mask_BH=None`` means every step is valid (the common single-action case, which
        skips the masking arithmetic on the hot path). A float mask weights the steps: the
        loss is ``Σ w·loss / Σ w`` (weighted BC; a weight of 0 is a padded step). Metrics
        beyond the loss itself (e.g. accuracy) are computed only when gradients are off, i.e.
        during validation.
        """
        raise NotImplementedError

    def output_mode(self, out_BD: torch.Tensor) -> torch.Tensor:
        """Only for a :class:`LinearHead`: :meth:`mode` from the output of ``self.linear``."""
        raise TypeError(f"head {self.name!r} has no closed-form mode of a linear output")

    def sample(
        self, features_BF: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw actions ``(B, H, A)`` from the head's distribution."""
        raise NotImplementedError

    def mode(self, features_BF: torch.Tensor) -> torch.Tensor:
        """The most likely (or deterministic) actions ``(B, H, A)``."""
        raise NotImplementedError

    def log_prob(self, features_BF: torch.Tensor, actions_BHA: torch.Tensor) -> torch.Tensor:
        """Log-likelihood ``(B, H)`` of actions; only where ``has_log_prob``."""
        raise TypeError(f"head {self.name!r} has no tractable log-likelihood")


class LinearHead(Head):
    """A head whose only parameters are one ``nn.Linear`` (``self.linear``) and whose loss
    is a closed form of that layer's output.

    A subclass derives its loss once, in :meth:`output_loss`: the loss and its gradient with
    respect to the layer's output. Both training paths use that one derivation: BC's
    hand-written step (:class:`~protege.algos.mlp_step.MLPStep`) calls it directly, and
    :meth:`loss` hands its gradient to autograd (see there). A test checks each subclass's
    derivation against autograd on a textbook formula (``tests/test_heads.py``).
    """

    linear_output = True
    linear: nn.Linear
    loss_name: ClassVar[str]
    """The metric name of the loss (``mse``, ``nll``, ``cross_entropy``)."""

    def output_loss(
        self,
        out_BD: torch.Tensor,
        actions_BHA: torch.Tensor,
        pad_mask_BH: torch.Tensor | None,
        with_grad: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The training loss (as :meth:`loss` defines it) of the layer output ``out_BD``
        and, with ``with_grad``, its gradient with respect to ``out_BD`` (same shape,
        contiguous; else None). Computed without autograd: call it on detached outputs."""
        raise NotImplementedError

    def output_mode(self, out_BD: torch.Tensor) -> torch.Tensor:
        """:meth:`mode` from the output ``(B, D)`` of ``self.linear``."""
        raise NotImplementedError

    def output_metrics(
        self, out_BD: torch.Tensor, actions_BHA: torch.Tensor, pad_mask_BH: torch.Tensor | None
    ) -> Metrics:
        """Metrics beyond the loss, for validation (none by default)."""
        return {}

    def mode(self, features_BF: torch.Tensor) -> torch.Tensor:
        return self.output_mode(self.linear(features_BF))

    def loss(
        self, features_BF: torch.Tensor, actions_BHA: torch.Tensor, pad_mask_BH: torch.Tensor | None
    ) -> tuple[torch.Tensor, Metrics]:
        """:meth:`output_loss` of ``self.linear(features_BF)``, differentiable: the value is
        the closed form's, and autograd propagates the closed form's gradient.

        With gradients on, the loss is returned as ``L + (s − s.detach())`` where
        ``s = Σ out · g`` and ``g`` is :meth:`output_loss`'s gradient: ``s − s.detach()``
        is exactly 0, so the value is ``L`` to the bit, and its gradient with respect to the
        output is ``g``.
        """
        out_BD = self.linear(features_BF)
        with_grad = torch.is_grad_enabled() and out_BD.requires_grad
        loss, grad_BD = self.output_loss(out_BD.detach(), actions_BHA, pad_mask_BH, with_grad)
        metrics: Metrics = {self.loss_name: loss.detach()}
        if grad_BD is not None:
            s = (out_BD * grad_BD).sum()
            loss = loss + (s - s.detach())
        else:
            metrics.update(self.output_metrics(out_BD, actions_BHA, pad_mask_BH))
        return loss, metrics


def valid_weights(
    pad_mask_BH: torch.Tensor | None, shape_BH: tuple[int, ...]
) -> torch.Tensor | float:
    """The weight of each step in :func:`masked_mean`: 1/n over the n valid steps (a scalar
    when every step is valid, else ``(B, H)``): the gradient of the mean with respect to each
    step's value."""
    if pad_mask_BH is None:
        return 1.0 / (shape_BH[0] * shape_BH[1])
    mask = pad_mask_BH.to(torch.float32)
    return mask / mask.sum().clamp_min(1.0)


def masked_mean(values_BH: torch.Tensor, pad_mask_BH: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``values_BH`` over the entries where ``pad_mask_BH`` is true (all if None)."""
    if pad_mask_BH is None:
        return values_BH.mean()
    mask = pad_mask_BH.to(values_BH.dtype)
    return (values_BH * mask).sum() / mask.sum().clamp_min(1.0)
