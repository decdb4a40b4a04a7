"""FlatAdamW (torch's fused AdamW kernel on one flat buffer) is torch.optim.AdamW."""

from __future__ import annotations

import math

import pytest
import torch

from protege.algos.optim import FlatAdamW


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


@pytest.mark.parametrize("fused", [False, True], ids=["for-loop", "fused"])
def test_flat_adamw_matches_torch_adamw_over_100_steps(fused: bool) -> None:
    """Weight decay, a cosine learning rate set before every step, and gradient clipping
    that binds on most steps but not all: after 100 steps the weights and Adam's moments
    agree with torch's to within a few float32 ulps (atol 5e-7 on weights of size ~0.5;
    a missed weight-decay term or a step-count slip moves them by ≥ 1e-4)."""
    ours, ref = _net(), _net()
    flat = FlatAdamW(ours.parameters(), lr=1e-2, weight_decay=0.1)
    torch_opt = torch.optim.AdamW(ref.parameters(), lr=1e-2, weight_decay=0.1, fused=fused)
    gen = torch.Generator().manual_seed(1)
    clipped = 0
    for step in range(100):
        x, y = torch.randn(32, 5, generator=gen), 3 * torch.randn(32, 3, generator=gen)
        lr = 1e-2 * 0.5 * (1 + math.cos(math.pi * step / 100))
        flat.zero_grad()
        (ours(x) - y).square().mean().backward()
        norm = flat.clip_grad_norm(1.0)
        flat.step(lr)
        torch_opt.zero_grad()
        (ref(x) - y).square().mean().backward()
        torch_norm = torch.nn.utils.clip_grad_norm_(list(ref.parameters()), 1.0)
        for group in torch_opt.param_groups:
            group["lr"] = lr
        torch_opt.step()
        assert norm == pytest.approx(float(torch_norm), rel=1e-5)
        clipped += norm > 1.0
    assert 10 < clipped < 100  # both branches of the clipping ran
    flat.release()
    for p, q in zip(ours.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-6, atol=5e-7)
        assert p.grad is None
    for p, q in zip(
        flat.exp_avg.split([p.numel() for p in ref.parameters()]), ref.parameters(), strict=True
    ):
        torch.testing.assert_close(
            p.view_as(q), torch_opt.state[q]["exp_avg"], rtol=1e-5, atol=1e-7
        )
    assert float(flat.step_count) == 100


def test_flat_adamw_refuses_mixed_dtypes_and_no_parameters() -> None:
    with pytest.raises(ValueError, match="no trainable parameters"):
        FlatAdamW([torch.nn.Parameter(torch.zeros(2), requires_grad=False)], lr=1e-3)
    mixed = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2).double())]
    with pytest.raises(ValueError, match="one dtype and device"):
        FlatAdamW(mixed, lr=1e-3)
