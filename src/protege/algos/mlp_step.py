"""BC's loss and gradients for MLP policies, with the backward pass written out.

For the networks of control (an MLP of a few hundred units, batches of 32-256, one CPU core)
autograd's bookkeeping costs about as much as the arithmetic: a 2×256 MLP step records ~17
graph nodes, allocates every activation and gradient afresh and runs elementwise backward
kernels on cold memory. Here the same loss and the same gradients (to float rounding; a test
compares them with autograd's) take ~20 tensor calls into buffers allocated once per batch
size, and the gradients are written straight into the parameters' ``.grad`` (the flat buffer
of :class:`~protege.algos.optim.FlatAdamW`), so no ``zero_grad`` is needed either.

It applies to an :class:`~protege.policies.encoders.MLPEncoder` (Linear + ReLU layers) with a
head that is one linear layer with a closed-form loss (``Head.linear_output``: ``mse``,
``categorical``, ``gaussian``); :func:`protege.algos.bc.fit` uses it wherever it applies and
autograd everywhere else. Measured in ``benchmarks/bc_throughput.py``.
"""

from __future__ import annotations

import torch
from torch import nn

from protege.policies.encoders import MLPEncoder
from protege.policies.policy import Policy

_threshold_backward = torch.ops.aten.threshold_backward.grad_input


class MLPStep:
    """``step(obs_B, actions_BHA, pad_mask_BH) -> loss``, gradients left in ``p.grad``.

    ``obs_B`` and ``actions_BHA`` are normalized, as :func:`protege.algos.bc.bc_loss` takes
    them. Every parameter's ``.grad`` is overwritten (not accumulated).
    """

    def __init__(self, policy: Policy) -> None:
        if not self.applies(policy):
            raise ValueError("MLPStep needs an MLP encoder and a head with a linear output")
        encoder = policy.encoder
        assert isinstance(encoder, MLPEncoder)
        self.head = policy.head
        head_linear = policy.head.linear
        assert isinstance(head_linear, nn.Linear)
        layers = [*encoder._linears, head_linear]
        self.out_features = [layer.out_features for layer in layers]
        # The Parameter objects (not their data, which an optimizer may re-seat): reading
        # them here is cheaper than a module attribute lookup per layer and step.
        self.params = [(layer.weight, layer.bias) for layer in layers]
        for w, b in self.params:
            for p in (w, b):
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
        self._buffers: dict[int, tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]]
        self._buffers = {}

    @staticmethod
    def applies(policy: Policy) -> bool:
        """True for an MLP encoder and a ``linear_output`` head, every parameter trainable."""
        head = policy.head
        return (
            type(policy.encoder) is MLPEncoder
            and head.linear_output
            and isinstance(getattr(head, "linear", None), nn.Linear)
            and sum(1 for _ in head.parameters()) == 2
            and all(p.requires_grad and p.dtype == torch.float32 for p in policy.parameters())
        )

    def _buffers_for(
        self, batch: int
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Each layer's output, the gradient with respect to it, and that gradient's
        transpose (a view), for ``batch`` rows."""
        bufs = self._buffers.get(batch)
        if bufs is None:
            outs = [torch.empty(batch, n) for n in self.out_features]
            grads = [torch.empty(batch, n) for n in self.out_features]
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
        last = len(params) - 1
        h = x
        for i, (w, b) in enumerate(params):
            torch.addmm(b, h, w.t(), out=outs[i])
            if i < last:
                outs[i].relu_()
            h = outs[i]
        loss = self.head.output_loss(h, actions_BHA, pad_mask_BH, grads[last])
        for i in range(last, -1, -1):
            w, b = params[i]
            torch.mm(grads_t[i], outs[i - 1] if i else x, out=w.grad)
            torch.sum(grads[i], 0, out=b.grad)
            if i:
                below = grads[i - 1]
                torch.mm(grads[i], w, out=below)
                _threshold_backward(below, outs[i - 1], 0.0, grad_input=below)
        return loss
