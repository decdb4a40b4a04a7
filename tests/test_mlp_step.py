"""MLPStep computes BC's loss and gradients by hand: they must equal autograd's."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from protege.algos.bc import bc_loss
from protege.algos.mlp_step import MLPStep
from protege.policies import Policy, PolicyConfig


def _policy(head: str, chunk: int, hidden: tuple[int, ...], discrete: bool) -> Policy:
    obs_space = gym.spaces.Box(-1, 1, (3, 2), np.float32)
    act_space = gym.spaces.Discrete(5) if discrete else gym.spaces.Box(-1, 1, (3,), np.float32)
    cfg = PolicyConfig.for_spaces(
        obs_space, act_space, head=head, hidden_sizes=hidden, chunk_size=chunk
    )
    return Policy(cfg, seed=0)


def _batch(policy: Policy, B: int, masked: bool, gen: torch.Generator):
    H = policy.config.chunk_size
    obs = torch.randn(B, 3, 2, generator=gen)
    if policy.config.discrete:
        acts = torch.randint(0, 5, (B, H, 1), generator=gen).float()
    else:
        acts = torch.randn(B, H, 3, generator=gen)
    mask = None
    if masked:
        mask = torch.rand(B, H, generator=gen) > 0.3
        mask[0] = False  # a row with no valid step
    return obs, acts, mask


def _grads(policy: Policy) -> list[torch.Tensor]:
    return [p.grad.clone() for p in policy.parameters()]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("head", "discrete"), [("categorical", True), ("mse", False), ("gaussian", False)]
)
@pytest.mark.parametrize(("chunk", "masked"), [(1, False), (4, True), (4, False)])
@pytest.mark.parametrize("hidden", [(32, 16), ()])
def test_loss_and_gradients_equal_autograd(head, discrete, chunk, masked, hidden):
    policy = _policy(head, chunk, hidden, discrete)
    if head == "gaussian":  # some log-stds beyond the clamp, where the gradient is zero
        with torch.no_grad():
            policy.head.linear.bias.view(chunk, 2, -1)[:, 1].uniform_(-8.0, 3.0)
    gen = torch.Generator().manual_seed(1)
    step = MLPStep(policy)
    for B in (7, 7, 13):  # buffers reused for the same batch size, new ones for another
        obs, acts, mask = _batch(policy, B, masked, gen)
        for p in policy.parameters():
            p.grad = None
        ref, _ = bc_loss(policy, obs, acts, mask)
        ref.backward()
        expected = _grads(policy)
        for p in policy.parameters():
            p.grad = torch.full_like(p, 123.0)  # overwritten, not accumulated
        step = MLPStep(policy) if B == 13 else step
        loss = step(obs, acts, mask)
        torch.testing.assert_close(loss, ref.detach(), rtol=1e-5, atol=1e-6)
        for got, want in zip(_grads(policy), expected, strict=True):
            # float32 rounding, relative to the gradient's scale (σ = e⁻⁷ makes it large)
            scale = float(want.abs().max()) + 1e-6
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * scale)


def test_applies_only_to_mlp_with_linear_head():
    assert MLPStep.applies(_policy("categorical", 1, (8,), True))
    assert MLPStep.applies(_policy("mse", 1, (8,), False))
    assert not MLPStep.applies(_policy("mog", 1, (8,), False))
    assert not MLPStep.applies(_policy("flow", 1, (8,), False))
    frozen = _policy("mse", 1, (8,), False)
    frozen.encoder.requires_grad_(False)
    assert not MLPStep.applies(frozen)
    with pytest.raises(ValueError, match="MLP encoder"):
        MLPStep(_policy("mog", 1, (8,), False))
