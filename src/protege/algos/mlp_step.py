"""BC's loss and gradients for MLP policies, with the backward pass written out.

For the networks of control (an MLP of a few hundred units, batches of 32-256, one CPU core)
autograd's bookkeeping costs about as much as the arithmetic: a 2×256 MLP step records ~17
graph nodes, allocates every activation and gradient afresh and runs elementwise backward
kernels on cold memory. Here the same loss and the same gradients (to float rounding; a test
compares them with autograd's) take ~20 tensor calls into buffers allocated once per batch
size, and the gradients are written straight into the parameters' ``.grad`` (the flat buffer
of :class:`~protege.algos.optim.FlatAdamW`), so no ``zero_grad`` is needed either.

It applies to a policy with ``mlp_layers`` (an :class:`~protege.policies.encoders.MLPEncoder`
and a :class:`~protege.policies.heads.base.LinearHead`: ``mse``, ``categorical``,
``gaussian``). The forward pass is :func:`protege.policies.mlp.mlp_forward`, the loss and its
gradient with respect to the head's output are the head's own
(:meth:`~protege.policies.heads.base.LinearHead.output_loss`, which autograd's path uses
too); only the backward pass through the layers is written here. :func:`protege.algos.bc.fit`
uses it wherever it applies and ``BCConfig.fast_path`` is on, autograd everywhere else.
Measured in ``benchmarks/bc_throughput.py``.
"""

from __future__ import annotations

import torch

from protege.policies.heads.base import LinearHead
from protege.policies.mlp import mlp_forward
from protege.policies.policy import Policy

THRESHOLD_BACKWARD = torch.ops.aten.threshold_backward.grad_input
"""ReLU's backward, in place (``grad_input=``): zero the gradient where the output is ≤ 0."""


class MLPStep:
    """``step(obs_B, actions_BHA, pad_mask_BH) -> loss``, gradients left in ``p.grad``.

    ``obs_B`` and ``actions_BHA`` are normalized, as :func:`protege.algos.bc.bc_loss` takes
    them. Every parameter's ``.grad`` is overwritten (not accumulated).
    """

    def __init__(self, policy: Policy) -> None:
        if not self.applies(policy):
            raise ValueError("MLPStep needs an MLP encoder and a head with a linear output")
        assert isinstance(policy.head, LinearHead)
        self.head = policy.head
        layers = policy.mlp_layers
        self.out_features = [layer.out_features for layer in layers]
        # The Parameter objects (not their data, which an optimizer may re-seat): reading
        # them here is cheaper than a module attribute lookup per layer and step.
        self.params = [(layer.weight, layer.bias) for layer in layers]
        for w, b in self.params:
            for p in (w, b):
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
        self._buffers: dict[int, tuple[list[torch.Tensor], ...]] = {}

    @staticmethod
    def applies(policy: Policy) -> bool:
        """True for a policy with ``mlp_layers`` (MLP encoder, linear head) whose parameters
        are all trainable float32 and all in those layers."""
        return (
            bool(policy.mlp_layers)
            and sum(1 for _ in policy.head.parameters()) == 2
            and all(p.requires_grad and p.dtype == torch.float32 for p in policy.parameters())
        )

    def _buffers_for(self, batch: int) -> tuple[list[torch.Tensor], ...]:
        """Each layer's output, the gradient with respect to each hidden layer's output, and
        that gradient's transpose (a view), for ``batch`` rows."""
        bufs = self._buffers.get(batch)
        if bufs is None:
            outs = [torch.empty(batch, n) for n in self.out_features]
            grads = [torch.empty(batch, n) for n in self.out_features[:-1]]
            bufs = self._buffers[batch] = (outs, grads, [g.t() for g in grads])
        return bufs

    @torch.no_grad()
    def __call__(
        self, obs_B: torch.Tensor, actions_BHA: torch.Tensor, pad_mask_BH: torch.Tensor | None
    ) -> torch.Tensor:
        x = obs_B.flatten(1)
        outs, grads, grads_t = self._buffers_for(len(x))
        params = self.params
        for w, b in params:
            if w.grad is None or b.grad is None:  # e.g. zero_grad(set_to_none=True)
                w.grad, b.grad = torch.zeros_like(w), torch.zeros_like(b)
        out = mlp_forward(x, [(w.t(), b) for w, b in params], relu_last=False, outs=outs)
        loss, grad = self.head.output_loss(out, actions_BHA, pad_mask_BH, with_grad=True)
        assert grad is not None
        grad_t = grad.t()
        for i in range(len(params) - 1, -1, -1):
            w, b = params[i]
            torch.mm(grad_t, outs[i - 1] if i else x, out=w.grad)
            torch.sum(grad, 0, out=b.grad)
            if i:
                below = grads[i - 1]
                torch.mm(grad, w, out=below)
                THRESHOLD_BACKWARD(below, outs[i - 1], 0.0, grad_input=below)
                grad, grad_t = below, grads_t[i - 1]
        return loss
