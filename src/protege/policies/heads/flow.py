"""Flow-matching head: straight-line interpolation, Euler or midpoint integration.

Training (Lipman et al. 2023, "Flow Matching for Generative Modeling"; Liu et al. 2023,
"Flow Straight and Fast: rectified flow"): with ``t ~ U[0, 1]``, noise ``ε ~ N(0, I)`` and the
action chunk ``x_0``, the point ``x_t = (1 − t) · x_0 + t · ε`` moves with velocity
``u = ε − x_0``; an MLP regresses ``‖v_θ(x_t, t, features) − u‖²`` over valid chunk steps.
Same convention as LeRobot's pi0 family: t = 1 is noise, t = 0 is data.

Sampling integrates ``dx/dt = v_θ`` from ``x_1 ~ N(0, I)`` at t = 1 down to t = 0 in
``num_steps`` steps (1 to 20) with the ``integrator`` "euler" (one network call per step) or
"midpoint" (two). One Euler step returns ``x_1 − v(x_1, 1) ≈ E[x_0]``: the mean action.

``mode`` integrates from zero noise: deterministic and batch-independent; like the diffusion
head's mode it can fall between modes of a multimodal distribution in more than one
dimension, so evaluate multimodal tasks with sampling. ``has_log_prob`` is False.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from protege.device import randn
from protege.policies.heads.base import Head, Metrics, masked_mean, register_head
from protege.policies.heads.diffusion import DenoiserMLP, forward_fill_padded

Velocity = Callable[[torch.Tensor, float], torch.Tensor]
"""v(x_BD, t) -> (B, D)."""

TIME_SCALE = 100.0
"""t ∈ [0, 1] is embedded as t·100, the range the sinusoidal embedding sees for DDPM steps."""


# ----------------------------------------------------------------------- stateless pieces
def interpolate(x0: torch.Tensor, noise: torch.Tensor, t_B: torch.Tensor) -> torch.Tensor:
    """The straight-line path ``x_t = (1 − t) x_0 + t ε``."""
    t = t_B.view(-1, *([1] * (x0.dim() - 1)))
    return (1 - t) * x0 + t * noise


def target_velocity(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``dx_t/dt = ε − x_0`` along the straight-line path."""
    return noise - x0


def euler_step(x: torch.Tensor, v: Velocity, t: float, dt: float) -> torch.Tensor:
    return torch.add(x, v(x, t), alpha=dt)


def midpoint_step(x: torch.Tensor, v: Velocity, t: float, dt: float) -> torch.Tensor:
    x_mid = torch.add(x, v(x, t), alpha=0.5 * dt)
    return torch.add(x, v(x_mid, t + 0.5 * dt), alpha=dt)


INTEGRATORS = {"euler": euler_step, "midpoint": midpoint_step}


def integrate(x1: torch.Tensor, v: Velocity, num_steps: int, integrator: str) -> torch.Tensor:
    """Integrate ``dx/dt = v(x, t)`` from t = 1 to t = 0 in ``num_steps`` equal steps."""
    step = INTEGRATORS[integrator]
    dt = -1.0 / num_steps
    x = x1
    for i in range(num_steps):
        x = step(x, v, 1.0 + i * dt, dt)
    return x


def evaluation_times(num_steps: int, integrator: str) -> list[float]:
    """The times at which :func:`integrate` calls the velocity (same float arithmetic)."""
    dt = -1.0 / num_steps
    starts = [1.0 + i * dt for i in range(num_steps)]
    if integrator == "midpoint":
        return starts + [t + 0.5 * dt for t in starts]
    return starts


# --------------------------------------------------------------------------------- head
@register_head
class FlowHead(Head):
    """Flow-matching action chunks.

    Head kwargs: ``num_steps`` (10, 1..20; may be changed on a built head), ``integrator``
    ("euler" or "midpoint"), ``hidden_dim`` (256), ``n_blocks`` (2), ``time_embed_dim`` (32).

    Example:
        >>> cfg = PolicyConfig.for_spaces(obs_space, act_space, head="flow",
        ...     head_kwargs={"num_steps": 5, "integrator": "midpoint"})
    """

    name = "flow"
    has_log_prob = False

    def __init__(
        self,
        feature_dim: int,
        act_dim: int,
        chunk_size: int,
        num_steps: int = 10,
        integrator: str = "euler",
        hidden_dim: int = 256,
        n_blocks: int = 2,
        time_embed_dim: int = 32,
        **kwargs: Any,
    ) -> None:
        super().__init__(feature_dim, act_dim, chunk_size)
        if not 1 <= num_steps <= 20:
            raise ValueError(f"num_steps must be in [1, 20], got {num_steps}")
        if integrator not in INTEGRATORS:
            raise ValueError(f"integrator must be one of {sorted(INTEGRATORS)}, not {integrator!r}")
        self.num_steps = num_steps
        self.integrator = integrator
        self.net = DenoiserMLP(
            chunk_size * act_dim, feature_dim, hidden_dim, n_blocks, time_embed_dim
        )

    def loss(
        self, features_BF: torch.Tensor, actions_BHA: torch.Tensor, pad_mask_BH: torch.Tensor | None
    ) -> tuple[torch.Tensor, Metrics]:
        x0 = forward_fill_padded(actions_BHA, pad_mask_BH).flatten(1)
        B = x0.shape[0]
        t_B = torch.rand(B, device=x0.device)
        noise = torch.randn_like(x0)
        v = self.net(interpolate(x0, noise, t_B), t_B * TIME_SCALE, features_BF)
        err_BH = (v - target_velocity(x0, noise)).pow(2).view(B, self.chunk_size, -1).mean(-1)
        loss = masked_mean(err_BH, pad_mask_BH)
        return loss, {"velocity_mse": loss.detach()}

    def generate(self, features_BF: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        """Integrate from the noise ``x1`` (B, H·A) to actions ``(B, H, A)``."""
        times = evaluation_times(self.num_steps, self.integrator)
        temb = self.net.embed_time(torch.tensor(times, device=features_BF.device) * TIME_SCALE)[
            :, None
        ]
        mod = self.net.modulation(features_BF, temb)
        index = {t: i for i, t in enumerate(times)}

        def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
            i = index[t]
            return self.net.trunk(x, [(scale1p[i], shift[i]) for scale1p, shift in mod])

        x0 = integrate(x1, velocity, self.num_steps, self.integrator)
        return x0.view(-1, self.chunk_size, self.act_dim)

    def sample(
        self, features_BF: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        shape = (features_BF.shape[0], self.chunk_size * self.act_dim)
        return self.generate(features_BF, randn(shape, generator, features_BF))

    def mode(self, features_BF: torch.Tensor) -> torch.Tensor:
        shape = (features_BF.shape[0], self.chunk_size * self.act_dim)
        return self.generate(features_BF, features_BF.new_zeros(shape))
