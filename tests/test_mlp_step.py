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


@pytest.mark.parametrize("switch", ["config", "process"])
def test_fast_path_off_trains_through_autograd_to_the_same_weights(tmp_path, monkeypatch, switch):
    """BCConfig(fast_path=False), or the process-wide switch (PROTEGE_FAST_PATH=0), trains
    with autograd and torch.optim.AdamW and never touches MLPStep or FlatAdamW; from the same
    seed it lands on the fast path's weights up to float rounding's drift."""
    from protege.algos import bc, mlp_step, optim
    from protege.data.episode import Episode
    from protege.data.store import Store
    from protege.policies import mlp

    rng = np.random.default_rng(0)
    obs = rng.normal(size=(401, 4)).astype(np.float32)
    box = gym.spaces.Box(-5, 5, (2,), np.float32)
    store = Store.create(tmp_path / "s", gym.spaces.Box(-9, 9, (4,), np.float32), box, task="t")
    actions = np.tanh(obs[:-1, :2] * [1.5, -0.5]).astype(np.float32)
    store.append(Episode(obs=obs, actions=actions, rewards=np.zeros(400, np.float32)))
    data = store.transitions()
    space = gym.spaces.Box(-9, 9, (4,), np.float32)
    cfg = {"steps": 150, "batch_size": 64, "weight_decay": 1e-3, "grad_clip": 1.0}

    def fit(fast: bool) -> tuple[Policy, list[float]]:
        policy = Policy(PolicyConfig.for_spaces(space, box, hidden_sizes=(32, 32)), seed=0)
        config = bc.BCConfig(**cfg, progress=False, eval_every=50, val_fraction=0)
        if not fast:
            if switch == "config":
                config.fast_path = False
            else:
                monkeypatch.setattr(mlp, "FAST_PATHS", False)
            monkeypatch.setattr(mlp_step.MLPStep, "__call__", _refuse)
            monkeypatch.setattr(optim.FlatAdamW, "step", _refuse)
        result = bc.fit(policy, data, config)
        return policy, [row["train_loss"] for row in result.history]

    fast, fast_losses = fit(True)
    slow, slow_losses = fit(False)
    assert slow_losses == pytest.approx(fast_losses, rel=1e-3)
    assert slow_losses[-1] < 0.3 * slow_losses[0]  # it learned
    for p, q in zip(fast.parameters(), slow.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=2e-3)


def _refuse(*args, **kwargs):
    raise AssertionError("a fast path ran with the fast paths off")
