"""The expressive heads: statistical fits of a known bimodal law, masking, shapes, save/load.

Every fit uses a 1-D distribution with modes at -0.6 and +0.6 (std 0.08) and weights 0.6/0.4,
conditioned on a constant feature vector: a head that averages puts its samples at the mean
(-0.12), between the modes; an expressive head recovers both modes and their weights.
"""

from __future__ import annotations

import copy
from typing import Any, cast

import numpy as np
import pytest
import torch

from protege.policies import HEADS, Policy, PolicyConfig
from protege.policies.heads.base import Head, LinearHead
from protege.policies.heads.binned import BinnedAutoregressiveHead
from protege.policies.heads.diffusion import (
    cosine_alphas_cumprod,
    ddim_timesteps,
    forward_fill_padded,
)
from protege.policies.heads.flow import integrate
from protege.policies.heads.mog import MixtureOfGaussiansHead

EXPRESSIVE = ["mog", "binned", "diffusion", "flow"]
CONTINUOUS = ["mse", "gaussian", *EXPRESSIVE]
SMALL: dict[str, dict[str, Any]] = {
    "mse": {},
    "gaussian": {},
    "mog": {},
    "binned": {"hidden_sizes": (64, 64)},
    "diffusion": {"hidden_dim": 64},
    "flow": {"hidden_dim": 64},
}
MODES, WEIGHT, STD = (-0.6, 0.6), 0.6, 0.08
TRUE_MEAN = WEIGHT * MODES[0] + (1 - WEIGHT) * MODES[1]


def bimodal(n: int, gen: torch.Generator) -> torch.Tensor:
    """Exactly ``WEIGHT * n`` samples around the left mode, the rest around the right one."""
    n_left = int(WEIGHT * n)
    centers = torch.cat([torch.full((n_left,), MODES[0]), torch.full((n - n_left,), MODES[1])])
    return (centers + STD * torch.randn(n, generator=gen)).view(n, 1, 1)


def fit_bimodal(name: str, steps: int, lr: float = 1e-2, batch: int = 256) -> Head:
    torch.manual_seed(0)
    head = HEADS[name](4, 1, 1, **SMALL[name])
    gen = torch.Generator().manual_seed(0)
    data = bimodal(2000, gen)
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    features = torch.ones(batch, 4)
    for _ in range(steps):
        loss, _ = head.loss(features, data[torch.randint(len(data), (batch,), generator=gen)], None)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return head.eval()


@torch.no_grad()
def assert_recovers_modes(head: Head, weight_tol: float = 0.035, mode_tol: float = 0.07) -> None:
    x = head.sample(torch.ones(8000, 4), torch.Generator().manual_seed(1)).flatten()
    left = x < 0
    assert abs(float(left.float().mean()) - WEIGHT) < weight_tol
    assert abs(float(x[left].mean()) - MODES[0]) < mode_tol
    assert abs(float(x[~left].mean()) - MODES[1]) < mode_tol
    # Not a smear between the modes: nearly every sample lies near one of them.
    near = (x - MODES[0]).abs().minimum((x - MODES[1]).abs()) < 0.3
    assert float(near.float().mean()) > 0.9


@pytest.fixture(scope="module")
def fitted() -> dict[str, Head]:
    torch.set_num_threads(1)  # module fixtures run before conftest's per-test thread setting
    return {
        "mog": fit_bimodal("mog", 600),
        "binned": fit_bimodal("binned", 500),
        "diffusion": fit_bimodal("diffusion", 1000),
        "flow": fit_bimodal("flow", 1000),
    }


def configured(head: Head, **settings: Any) -> Any:
    """A copy of a fitted head with sampler ``settings`` changed (``num_steps=1``): the
    module's fitted heads are shared by its tests, so none may change them."""
    head = copy.deepcopy(head)
    for name, value in settings.items():
        assert hasattr(head, name), name
        setattr(head, name, value)
    return head


# -- statistical fits -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mog", "binned"])
def test_likelihood_heads_recover_both_modes_and_weights(fitted: dict[str, Head], name: str):
    assert_recovers_modes(fitted[name])


def test_mog_weights_and_mode(fitted: dict[str, Head]) -> None:
    head = cast(MixtureOfGaussiansHead, fitted["mog"])
    with torch.no_grad():
        log_w, mean, _ = head.distribution(torch.ones(1, 4))
        w, mu = log_w.exp()[0], mean[0, :, 0, 0]
        assert abs(float(w[mu < 0].sum()) - WEIGHT) < 0.02
        # mode = the mean of the heaviest component = the left mode
        assert abs(float(head.mode(torch.ones(1, 4))) - MODES[0]) < 0.03


def test_binned_mode_is_greedy_bin_centre(fitted: dict[str, Head]) -> None:
    head = cast(BinnedAutoregressiveHead, fitted["binned"])
    with torch.no_grad():
        m = float(head.mode(torch.ones(1, 4)))
    assert abs(m - MODES[0]) < 0.1
    centers = head.centers
    assert torch.isclose(centers, torch.tensor(m)).any()


@pytest.mark.parametrize("steps", [10, 100])
def test_diffusion_ddim_recovers_both_modes(fitted: dict[str, Head], steps: int) -> None:
    head = configured(fitted["diffusion"], num_inference_steps=steps)
    assert_recovers_modes(head)


@pytest.mark.parametrize(("integrator", "steps"), [("euler", 10), ("midpoint", 5)])
def test_flow_few_steps_recover_both_modes(
    fitted: dict[str, Head], integrator: str, steps: int
) -> None:
    head = configured(fitted["flow"], integrator=integrator, num_steps=steps)
    assert_recovers_modes(head)


def test_one_euler_step_returns_the_mean(fitted: dict[str, Head]) -> None:
    """x_0 = x_1 − v(x_1, 1) and at t = 1 the optimal v is x_1 − E[x_0]: one step gives the mean
    for every noise draw — the L2 answer a flow head with too few steps falls back to."""
    head = configured(fitted["flow"], integrator="euler", num_steps=1)
    with torch.no_grad():
        x = head.sample(torch.ones(2000, 4), torch.Generator().manual_seed(2)).flatten()
    assert abs(float(x.mean()) - TRUE_MEAN) < 0.05
    assert float(x.std()) < 0.1


@pytest.mark.parametrize("name", ["mog", "binned"])
def test_log_prob_is_a_density(name: str) -> None:
    """exp(log_prob) integrates to 1 over the action line (act_dim 1, chunk 1)."""
    torch.manual_seed(0)
    head = HEADS[name](4, 1, 1, **SMALL[name])
    # the binned density lives on its bins' range (±3 with the default "std" normalization)
    grid = torch.linspace(-3, 3, 24001) if name == "binned" else torch.linspace(-40, 40, 160001)
    with torch.no_grad():
        logp = head.log_prob(torch.randn(1, 4).expand(len(grid), 4), grid.view(-1, 1, 1))
    assert logp.shape == (len(grid), 1)
    mass = torch.trapezoid(logp.exp().flatten(), grid)
    assert abs(float(mass) - 1.0) < 0.01


@pytest.mark.parametrize("name", ["diffusion", "flow"])
def test_generative_heads_say_they_have_no_likelihood(name: str) -> None:
    head = HEADS[name](4, 2, 3)
    assert not head.has_log_prob and head.stochastic
    with pytest.raises(TypeError):
        head.log_prob(torch.zeros(1, 4), torch.zeros(1, 3, 2))


# -- chunks: shapes, masking -----------------------------------------------------------------


@pytest.mark.parametrize("name", CONTINUOUS)
@pytest.mark.parametrize("chunk", [1, 5])
def test_chunk_shapes_and_seeded_sampling(name: str, chunk: int) -> None:
    torch.manual_seed(0)
    head = HEADS[name](8, 3, chunk, **SMALL[name]).eval()
    f = torch.randn(6, 8)
    with torch.no_grad():
        a = head.sample(f, torch.Generator().manual_seed(3))
        b = head.sample(f, torch.Generator().manual_seed(3))
        m = head.mode(f)
    assert a.shape == m.shape == (6, chunk, 3)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(m, head.mode(f))
    # a row's sample and mode do not depend on the rest of the batch
    with torch.no_grad():
        torch.testing.assert_close(head.mode(f[:1]), m[:1])


@pytest.mark.parametrize("name", CONTINUOUS)
def test_padded_steps_do_not_affect_the_loss(name: str) -> None:
    torch.manual_seed(0)
    head = HEADS[name](8, 2, 4, **SMALL[name])
    f = torch.randn(6, 8)
    actions = torch.randn(6, 4, 2)
    mask = torch.ones(6, 4, dtype=torch.bool)
    mask[0, 2:] = False
    mask[3, 1:] = False
    mask[5, 3] = False
    other = torch.where(mask[..., None], actions, 100 * torch.randn(6, 4, 2))

    def loss(a: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
        torch.manual_seed(1)  # diffusion and flow draw noise and times from torch's RNG
        return head.loss(f, a, m)[0]

    torch.testing.assert_close(loss(actions, mask), loss(other, mask))
    # no mask = every step valid
    torch.testing.assert_close(loss(actions, None), loss(actions, torch.ones_like(mask)))
    # the padded steps really are left out: a fully valid chunk gives another value
    assert not torch.isclose(loss(other, mask), loss(other, torch.ones_like(mask)))


def test_forward_fill_padded() -> None:
    a = torch.arange(1.0, 6.0).view(1, 5, 1)
    mask = torch.tensor([[True, True, False, True, False]])
    out = forward_fill_padded(a, mask).flatten().tolist()
    assert out == [1.0, 2.0, 2.0, 4.0, 4.0]
    assert forward_fill_padded(a, torch.zeros_like(mask)).abs().sum() == 0


# -- schedules and integrators ---------------------------------------------------------------


def test_ddim_timesteps_and_cosine_schedule() -> None:
    assert ddim_timesteps(100, 4) == [75, 50, 25, 0]
    assert ddim_timesteps(100, 1) == [0]
    assert ddim_timesteps(100, 100) == list(range(99, -1, -1))
    for bad in (0, 101):
        with pytest.raises(ValueError):
            ddim_timesteps(100, bad)
    ac = cosine_alphas_cumprod(100)
    assert ac.shape == (100,)
    assert float(ac[0]) > 0.999 and float(ac[-1]) < 1e-5
    assert bool((ac[1:] < ac[:-1]).all())


@pytest.mark.parametrize(("integrator", "tol"), [("euler", 0.05), ("midpoint", 2e-3)])
def test_integrators_on_a_known_ode(integrator: str, tol: float) -> None:
    """dx/dt = x from t = 1 to 0 gives x_0 = x_1 / e; midpoint is second order."""
    x1 = torch.ones(1, 1)
    x0 = integrate(x1, lambda x, t: x, 10, integrator)
    assert abs(float(x0) - np.exp(-1)) < tol


def test_step_counts_are_validated() -> None:
    with pytest.raises(ValueError):
        HEADS["flow"](4, 1, 1, num_steps=21)
    with pytest.raises(ValueError):
        HEADS["flow"](4, 1, 1, integrator="rk4")
    with pytest.raises(ValueError):
        HEADS["diffusion"](4, 1, 1, num_inference_steps=101)


# -- save / load -----------------------------------------------------------------------------


def _policy(name: str) -> Policy:
    torch.manual_seed(0)
    if HEADS[name].discrete:
        cfg = PolicyConfig(
            obs_shape=(4,), act_dim=1, discrete=True, n_actions=3, head=name, chunk_size=3
        )
    else:
        cfg = PolicyConfig(
            obs_shape=(4,),
            act_dim=2,
            head=name,
            chunk_size=3,
            hidden_sizes=(32,),
            action_norm="minmax",
            head_kwargs={"num_inference_steps": 5} if name == "diffusion" else {},
        )
    policy = Policy(cfg)
    rng = np.random.default_rng(0)
    acts = rng.integers(0, 3, 50) if cfg.discrete else rng.normal(size=(50, 2)) * 3 + 1
    policy.set_normalization(rng.normal(size=(50, 4)), acts)
    with torch.no_grad():  # weights away from their initial values, buffers included
        for p in policy.parameters():
            p.add_(0.01 * torch.randn(p.shape))
    return policy.eval()


@pytest.mark.parametrize("name", sorted(HEADS))
def test_save_load_round_trip_gives_identical_outputs(name: str, tmp_path) -> None:
    policy = _policy(name)
    policy.save(tmp_path / name)
    loaded = Policy.load(tmp_path / name)
    obs = np.random.default_rng(1).normal(size=(7, 4)).astype(np.float32)
    np.testing.assert_array_equal(policy.predict_chunk(obs), loaded.predict_chunk(obs))
    sample = [
        p.predict_chunk(obs, deterministic=False, generator=torch.Generator().manual_seed(5))
        for p in (policy, loaded)
    ]
    np.testing.assert_array_equal(sample[0], sample[1])
    assert loaded.config == policy.config


# -- linear heads: one derivation of the loss ----------------------------------------------


def _textbook_loss(
    name: str, out: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor | None, H: int
) -> torch.Tensor:
    """Each linear head's loss written the obvious way, for autograd to differentiate."""
    B = len(out)
    if name == "categorical":
        per_step = torch.nn.functional.cross_entropy(
            out.view(B * H, -1), actions.long().flatten(), reduction="none"
        ).view(B, H)
    elif name == "mse":
        per_step = torch.nn.functional.mse_loss(
            out.view_as(actions), actions, reduction="none"
        ).mean(-1)
    else:
        mean, log_std = out.view(B, H, 2, -1).unbind(2)
        dist = torch.distributions.Normal(mean, log_std.clamp(-7.0, 2.0).exp())
        per_step = -dist.log_prob(actions).sum(-1)
    if mask is None:
        return per_step.mean()
    return per_step[mask].sum() / mask.sum()


@pytest.mark.parametrize("name", ["categorical", "mse", "gaussian"])
@pytest.mark.parametrize("masked", [False, True])
def test_linear_heads_derive_loss_and_gradient_as_autograd_does(name: str, masked: bool) -> None:
    """output_loss (the one derivation BC's fast path and loss() share) against autograd on
    a textbook formula; and loss() returns its value to the bit with its gradient."""
    torch.manual_seed(0)
    B, H = 9, 3
    discrete = HEADS[name].discrete
    head = HEADS[name](5, 1 if discrete else 2, H, **({"n_actions": 4} if discrete else {}))
    assert isinstance(head, LinearHead)
    features = torch.randn(B, 5)
    actions = torch.randint(0, 4, (B, H, 1)).float() if discrete else torch.randn(B, H, 2)
    if name == "gaussian":  # log-stds on both sides of the clamp, where the gradient is 0
        with torch.no_grad():
            head.linear.bias.view(H, 2, 2)[:, 1] = torch.tensor([[-9.0, 0.3], [2.5, -1], [0, 3]])
    mask = None
    if masked:
        mask = torch.rand(B, H) > 0.3
        mask[0] = False

    out = head.linear(features).detach().requires_grad_(True)
    want = _textbook_loss(name, out, actions, mask, H)
    (want_grad,) = torch.autograd.grad(want, out)
    loss, grad = head.output_loss(out.detach(), actions, mask, with_grad=True)
    assert grad is not None and grad.shape == out.shape and grad.is_contiguous()
    torch.testing.assert_close(loss, want.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, want_grad, rtol=1e-4, atol=1e-6)
    assert head.output_loss(out.detach(), actions, mask, with_grad=False)[1] is None

    # loss(): the same value, to the bit, and autograd carries the same gradient
    f = features.clone().requires_grad_(True)
    value, metrics = head.loss(f, actions, mask)
    assert torch.equal(value.detach(), loss) and torch.equal(metrics[head.loss_name], loss)
    value.backward()
    torch.testing.assert_close(f.grad, grad @ head.linear.weight.detach())
    with torch.no_grad():
        value, metrics = head.loss(features, actions, mask)
    assert torch.equal(value, loss)
    if discrete:
        assert 0.0 <= float(metrics["accuracy"]) <= 1.0
