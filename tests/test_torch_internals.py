"""Every private torch internal the CPU fast paths rely on, checked in one place.

The fast paths (:mod:`protege.policies.mlp`'s acting plan, :mod:`protege.algos.mlp_step`,
:mod:`protege.algos.optim`'s ``FlatAdamW`` and ``RowsAdamW``, the stacked ensembles and twin
critics of :mod:`protege.policies.stacked` and :mod:`protege.algos.success_td`) use a few
things torch does not promise to keep.
If a torch upgrade changes one, this test fails naming it; until the fast path is adapted,
``PROTEGE_FAST_PATH=0`` (or ``BCConfig(fast_path=False)``) runs without any of them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from protege.algos.mlp_step import THRESHOLD_BACKWARD


def _fused_adamw() -> None:
    """optim.FlatAdamW.step: torch._fused_adamw_ with these keywords, one AdamW step."""
    p, g = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 0.25])
    m, v, step = torch.zeros(2), torch.zeros(2), torch.ones(())
    torch._fused_adamw_(
        [p], [g], [m], [v], [], [step], amsgrad=False, lr=0.1, beta1=0.9, beta2=0.999,
        weight_decay=0.5, eps=1e-8, maximize=False, grad_scale=None, found_inf=None,
    )  # fmt: skip
    # step 1: decoupled decay p(1 − lr·wd), then p − lr·m̂/(√v̂ + eps) with m̂/√v̂ = sign(g)
    want = torch.tensor([1.0 * 0.95 - 0.1, -2.0 * 0.95 - 0.1])
    torch.testing.assert_close(p, want)
    torch.testing.assert_close(m, 0.1 * g)


def _threshold_backward() -> None:
    """mlp_step: aten.threshold_backward.grad_input zeroes, in place, where the output ≤ 0."""
    grad, out = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.5, 0.0, -1.0])
    result = THRESHOLD_BACKWARD(grad, out, 0.0, grad_input=grad)
    assert result.data_ptr() == grad.data_ptr()
    assert grad.tolist() == [1.0, 0.0, 0.0]


def _version_counter() -> None:
    """mlp.ActingPlan: Tensor._version rises with every in-place change."""
    t = torch.zeros(3)
    before = t._version
    t.add_(1)
    assert isinstance(before, int) and t._version > before


def _increment_version() -> None:
    """optim.FlatAdamW.step: torch.autograd.graph.increment_version bumps each tensor's
    _version (the parameters do not see the flat buffer's in-place update otherwise)."""
    from torch.autograd.graph import increment_version

    ts = [nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(3))]
    before = [t._version for t in ts]
    increment_version(ts)
    assert [t._version for t in ts] == [v + 1 for v in before]


def _views_of_one_buffer() -> None:
    """optim.FlatAdamW: a Parameter's .data and .grad can be views of flat buffers; autograd
    accumulates into such a .grad in place instead of replacing it, and in-place updates of
    the buffer show through the Parameter."""
    lin = nn.Linear(3, 2)
    flat, grad = torch.zeros(8), torch.zeros(8)
    for p, value, g in zip(lin.parameters(), flat.split([6, 2]), grad.split([6, 2]), strict=True):
        p.data = value.view_as(p)
        p.grad = g.view_as(p)
    lin(torch.ones(4, 3)).sum().backward()
    assert lin.bias.grad is not None and lin.bias.grad.data_ptr() == grad[6:].data_ptr()
    assert grad[6:].tolist() == [4.0, 4.0]
    flat.add_(1.0)
    assert lin.weight.data_ptr() == flat.data_ptr() and float(lin.weight.detach()[0, 0]) == 1.0


def _module_apply() -> None:
    """Policy._apply: nn.Module.to()/.double()/.float() route through Module._apply, which
    Policy overrides to drop its acting plan."""
    calls = []

    class Probe(nn.Linear):
        def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
            calls.append(1)
            return super()._apply(fn, recurse)

    Probe(2, 2).double().float().to(torch.float32)
    assert len(calls) == 3


def _foreach_polyak() -> None:
    """success_td.td_fit: the target twins' Polyak update, torch._foreach_mul_ then
    torch._foreach_add_(alpha=) over lists of tensors, in place."""
    target = [torch.ones(3), torch.full((2,), 2.0)]
    online = [torch.zeros(3), torch.ones(2)]
    torch._foreach_mul_(target, 0.5)
    torch._foreach_add_(target, online, alpha=0.5)
    assert torch.equal(target[0], torch.full((3,), 0.5))
    assert torch.equal(target[1], torch.full((2,), 1.5))


INTERNALS: dict[str, Callable[[], None]] = {
    "torch._fused_adamw_": _fused_adamw,
    "torch.ops.aten.threshold_backward.grad_input": _threshold_backward,
    "Tensor._version": _version_counter,
    "torch.autograd.graph.increment_version": _increment_version,
    "Parameter .data/.grad as views of flat buffers": _views_of_one_buffer,
    "nn.Module._apply": _module_apply,
    "torch._foreach_mul_ / torch._foreach_add_": _foreach_polyak,
}


def test_the_private_torch_internals_of_the_fast_paths_still_behave() -> None:
    failed = []
    for name, check in INTERNALS.items():
        try:
            check()
        except Exception as exc:
            failed.append(f"{name} ({check.__doc__}): {type(exc).__name__}: {exc}")
    assert not failed, (
        f"torch {torch.__version__} changed what protege's fast paths rely on; "
        "PROTEGE_FAST_PATH=0 runs without them:\n" + "\n".join(failed)
    )
