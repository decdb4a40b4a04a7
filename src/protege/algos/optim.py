"""AdamW over one flat buffer: the optimizer BC uses.

For the networks of control (an MLP of a few hundred units, batches of 32-256), a training step
is mostly call overhead, not arithmetic. ``torch.optim.AdamW(fused=True)`` spends ~150 µs per
step on one core for a 2×256 MLP, two thirds of it in Python around the kernel (per-parameter
state lookups, step counters, hooks). Here every parameter and its gradient are views into two
contiguous buffers, so an update is one fused kernel call on one tensor (~50 µs) and zeroing the
gradients is one ``zero_()``; autograd accumulates straight into the gradient views. Measured in
``benchmarks/bc_throughput.py``. The arithmetic is torch's own fused AdamW.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.autograd.graph import increment_version


def fused_adamw_step(
    opt: FlatAdamW | RowsAdamW,
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avg: list[torch.Tensor],
    exp_avg_sq: list[torch.Tensor],
    lr: float | None,
    count: bool = True,
) -> None:
    """One AdamW step of ``opt``'s settings on ``params`` through torch's fused kernel, called
    directly (torch.optim's functional wrapper, grouping by device and counting steps through
    _foreach, costs ~30 µs a step). Each tensor is updated as it would be alone. ``count``:
    advance the step count first (else it already was, for this step)."""
    if count:
        opt.step_count.add_(1)
    torch._fused_adamw_(
        params,
        grads,
        exp_avg,
        exp_avg_sq,
        [],
        [opt.step_count] * len(params),
        amsgrad=False,
        lr=opt.lr if lr is None else lr,
        beta1=opt.betas[0],
        beta2=opt.betas[1],
        weight_decay=opt.weight_decay,
        eps=opt.eps,
        maximize=False,
        grad_scale=None,
        found_inf=None,
    )


class FlatAdamW:
    """AdamW whose parameters live in one flat buffer while training.

    ``release()`` gives every parameter its own storage back; call it when training ends (the
    policy then saves and copies like any module).
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = [p for p in params if p.requires_grad]
        if not self.params:
            raise ValueError("no trainable parameters")
        dtypes = {(p.dtype, p.device) for p in self.params}
        if len(dtypes) > 1:
            raise ValueError(f"parameters of one dtype and device expected, got {dtypes}")
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        sizes = [p.numel() for p in self.params]
        self.flat = torch.cat([p.detach().reshape(-1) for p in self.params])
        self.grad = torch.zeros_like(self.flat)
        for p, value, grad in zip(
            self.params, self.flat.split(sizes), self.grad.split(sizes), strict=True
        ):
            p.data = value.view_as(p)
            p.grad = grad.view_as(p)
        self.exp_avg = torch.zeros_like(self.flat)
        self.exp_avg_sq = torch.zeros_like(self.flat)
        self.step_count = torch.zeros((), dtype=torch.float32)

    def zero_grad(self) -> None:
        self.grad.zero_()

    def clip_grad_norm(self, max_norm: float) -> float:
        """Scale the gradient to at most ``max_norm`` (global L2 norm); returns the norm."""
        norm = float(self.grad.norm())
        if norm > max_norm:
            self.grad.mul_(max_norm / (norm + 1e-6))
        return norm

    def step(self, lr: float | None = None) -> None:
        fused_adamw_step(self, [self.flat], [self.grad], [self.exp_avg], [self.exp_avg_sq], lr)
        # The update went through the flat buffer, which the parameters' own version counters
        # do not see: bump them, as an in-place update of each would (autograd's checks and
        # Policy's acting plan rely on them).
        increment_version(self.params)

    def release(self) -> None:
        """Detach every parameter from the flat buffers (own storage, no gradient)."""
        for p in self.params:
            p.data = p.data.clone()
            p.grad = None


class TorchAdamW:
    """:class:`FlatAdamW`'s interface over ``torch.optim.AdamW`` and
    ``torch.nn.utils.clip_grad_norm_``: what BC trains with when the fast paths are off
    (``BCConfig.fast_path``, ``PROTEGE_FAST_PATH=0``). No private torch internals."""

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = [p for p in params if p.requires_grad]
        if not self.params:
            raise ValueError("no trainable parameters")
        self.optimizer = torch.optim.AdamW(
            self.params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay
        )

    def zero_grad(self) -> None:
        self.optimizer.zero_grad()

    def clip_grad_norm(self, max_norm: float) -> float:
        """Scale the gradient to at most ``max_norm`` (global L2 norm); returns the norm."""
        return float(torch.nn.utils.clip_grad_norm_(self.params, max_norm))

    def step(self, lr: float | None = None) -> None:
        if lr is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        self.optimizer.step()

    def release(self) -> None:
        """Drop the gradients (as :meth:`FlatAdamW.release` does)."""
        for p in self.params:
            p.grad = None


class RowsAdamW:
    """AdamW over given flat tensors, each updated as its own :class:`FlatAdamW` would be
    (one fused kernel call for all of them; each tensor's elements take the kernel's vector
    or scalar path as they would alone). For the rows of a
    :class:`~protege.policies.stacked.StackedMLP`: K members, each its own optimizer."""

    def __init__(
        self,
        params: list[torch.Tensor],
        grads: list[torch.Tensor],
        lr: float,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        if not params or len(params) != len(grads):
            raise ValueError("one gradient per parameter tensor expected")
        self.params, self.grads = params, grads
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]
        self.step_count = torch.zeros((), dtype=torch.float32)

    def step(self, lr: float | None = None) -> None:
        fused_adamw_step(self, self.params, self.grads, self.exp_avg, self.exp_avg_sq, lr)

    def count(self) -> None:
        """Advance the step count: a step then made of :meth:`update` calls on parts."""
        self.step_count.add_(1)

    def update(self, lr: float | None, members: slice) -> None:
        """The step of the tensors ``members`` (after :meth:`count`): parts updated in any
        order, or in parallel, make the same step as :meth:`step`."""
        fused_adamw_step(
            self,
            self.params[members],
            self.grads[members],
            self.exp_avg[members],
            self.exp_avg_sq[members],
            lr,
            count=False,
        )
