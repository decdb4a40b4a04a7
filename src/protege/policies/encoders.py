"""Observation encoders: observations ``(B, *obs_shape)`` → features ``(B, F)``.

Encoders register by name in ``ENCODERS`` (``encoder`` in config.json, ``--encoder`` on the CLI).
With ``n_obs_steps = K > 1`` (frame stacking) an encoder receives the K most recent
observations, oldest first, as ``(B, K, *obs_shape)``; with K = 1, ``(B, *obs_shape)``.
Every encoder is built as ``cls(obs_shape, hidden_sizes, n_obs_steps=K, random_shift=P,
**encoder_kwargs)`` and outputs ``(B, out_dim)``, which is all a head needs, so every encoder
composes with every head.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from protege.errors import ConfigError
from protege.policies.mlp import check_activation, linear_layers, mlp, mlp_forward, transposed

ENCODERS: dict[str, type[Encoder]] = {}


def register_encoder(cls: type[Encoder]) -> type[Encoder]:
    ENCODERS[cls.name] = cls
    return cls


class Encoder(nn.Module):
    name: ClassVar[str]
    out_dim: int
    takes_uint8: ClassVar[bool] = False
    """True if the encoder takes raw uint8 observations itself (image encoders scale them);
    the policy then hands them over without casting to float."""


@register_encoder
class MLPEncoder(Encoder):
    """Flattens the observation (all K of them with ``n_obs_steps = K``) and applies
    Linear+ReLU layers of ``hidden_sizes``.

    ``activation`` (an ``encoder_kwargs`` key) may only be ``"relu"``: the fast paths of
    :mod:`protege.policies.mlp` are written for it, and any other value is refused rather
    than ignored.
    """

    name = "mlp"

    def __init__(
        self,
        obs_shape: Sequence[int],
        hidden_sizes: Sequence[int] = (256, 256),
        n_obs_steps: int = 1,
        random_shift: int = 0,
        activation: str = "relu",
        **kw: Any,
    ) -> None:
        super().__init__()
        if random_shift:
            raise ConfigError("random_shift is an image augmentation: use the cnn encoder")
        check_activation(activation, "the mlp encoder")
        in_dim = int(np.prod(obs_shape)) * int(n_obs_steps)
        self.net = mlp(in_dim, hidden_sizes)
        self.out_dim = hidden_sizes[-1] if hidden_sizes else in_dim
        self.linears = linear_layers(self.net)

    def forward(self, obs_BO: torch.Tensor) -> torch.Tensor:
        # The layers' arithmetic, not nn.Sequential: at the batch sizes of control (1-64
        # rows), per-module call overhead costs more than the matrix products themselves.
        return mlp_forward(obs_BO.flatten(1), transposed(self.linears), relu_last=True)


@register_encoder
class CNNEncoder(Encoder):
    """A Nature-CNN image encoder for ``(H, W, C)`` uint8 frames (Mnih et al. 2015 scale).

    Frames come in channels-last as the env gives them, with values 0-255 (any dtype), and are
    scaled to [0, 1] here, so the policy leaves image observations unnormalized
    (``normalize_obs=False``). With ``n_obs_steps = K`` the K frames are stacked along the
    channels (``K·C`` input channels, oldest first). Then conv 8×8/4 → 4×4/2 → 3×3/1 with
    ReLU (``channels`` (32, 64, 64) by default), flatten, and Linear+ReLU layers of
    ``hidden_sizes``. On 96×96 frames the conv output is 64×8×8 = 4096 features.

    **Keypoints** (``keypoints = K > 0``; the spatial softmax of Levine et al. 2016, which
    robomimic puts after its ResNet): instead of flattening, a 1×1 convolution makes K feature
    maps, each is turned into a distribution over its positions by a softmax, and its expected
    (x, y) in [-1, 1]² is the feature: 2K numbers saying *where* things are, finer than the
    map's cells, with far fewer weights after them than a flattened map needs. For tasks
    where the policy must find a small object in the frame.

    **Random shift** (DrQ, Kostrikov, Yarats & Fergus 2020): with ``random_shift = P > 0`` and
    the module in training mode, each sample (all K frames of it alike) is padded by P pixels
    on every side by repeating the border and cropped back to H×W at a random offset in
    [0, 2P]², a shift of up to ±P pixels. Only training steps are augmented: in eval mode
    (``policy.eval()``, which ``bc.fit`` leaves the policy in) or with gradients off (``act``
    and ``predict_chunk`` run in inference mode, even on a policy left in training mode)
    frames pass unchanged, so acting is deterministic.

    Args:
        obs_shape: ``(H, W, C)``.
        hidden_sizes: the fully connected layers after the convolutions.
        n_obs_steps: frames of history per sample (K).
        random_shift: pad P of the random-shift augmentation (0: off).
        channels: output channels of each convolution.
        kernels: kernel size of each convolution (as many as ``channels``).
        strides: stride of each convolution (as many as ``channels``).
        keypoints: K > 0: spatial softmax to K keypoints after the convolutions instead of
            flattening them (0: flatten).
        activation: of the fully connected layers; only ``"relu"``.
    """

    name = "cnn"
    takes_uint8 = True

    def __init__(
        self,
        obs_shape: Sequence[int],
        hidden_sizes: Sequence[int] = (256,),
        n_obs_steps: int = 1,
        random_shift: int = 0,
        channels: Sequence[int] = (32, 64, 64),
        kernels: Sequence[int] = (8, 4, 3),
        strides: Sequence[int] = (4, 2, 1),
        keypoints: int = 0,
        activation: str = "relu",
        **kw: Any,
    ) -> None:
        super().__init__()
        check_activation(activation, "the cnn encoder")
        if len(obs_shape) != 3:
            raise ConfigError(
                f"the cnn encoder takes (H, W, C) frames, not shape {tuple(obs_shape)}"
            )
        if not len(channels) == len(kernels) == len(strides) >= 1:
            raise ConfigError("channels, kernels and strides need the same (≥ 1) length")
        if not 0 <= int(keypoints) <= 1024:
            raise ConfigError(f"keypoints must be in [0, 1024], got {keypoints}")
        if not 0 <= random_shift < min(obs_shape[0], obs_shape[1]) or n_obs_steps < 1:
            raise ConfigError(
                f"random_shift must be in [0, {min(obs_shape[0], obs_shape[1])}) and "
                f"n_obs_steps ≥ 1, got {random_shift} and {n_obs_steps}"
            )
        h, w, c = (int(v) for v in obs_shape)
        self.obs_shape = (h, w, c)
        self.n_obs_steps = int(n_obs_steps)
        self.random_shift = int(random_shift)
        layers: list[nn.Module] = []
        in_ch = c * self.n_obs_steps
        for ch, k, st in zip(channels, kernels, strides, strict=True):
            layers += [nn.Conv2d(in_ch, int(ch), int(k), int(st)), nn.ReLU()]
            in_ch = int(ch)
            h, w = (h - int(k)) // int(st) + 1, (w - int(k)) // int(st) + 1
            if h < 1 or w < 1:
                raise ConfigError(
                    f"frames of shape {tuple(obs_shape)} are too small for these convolutions"
                )
        self.convs = nn.Sequential(*layers)
        self.keypoints = SpatialSoftmax(in_ch, h, w, int(keypoints)) if keypoints else None
        self.conv_dim = 2 * int(keypoints) if keypoints else in_ch * h * w
        self.fc = mlp(self.conv_dim, hidden_sizes)
        self.linears = linear_layers(self.fc)
        self.out_dim = int(hidden_sizes[-1]) if hidden_sizes else self.conv_dim

    def to_nchw(self, obs: torch.Tensor) -> torch.Tensor:
        """``(B, [K,] H, W, C)`` → contiguous ``(B, K·C, H, W)`` in the input's dtype."""
        if obs.dim() == 5:
            b, k, h, w, c = obs.shape
            return obs.permute(0, 1, 4, 2, 3).reshape(b, k * c, h, w)
        return obs.permute(0, 3, 1, 2).contiguous()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = self.to_nchw(obs)  # still uint8 if the frames are: 4× less to move than floats
        if self.random_shift > 0 and self.training and torch.is_grad_enabled():
            x = random_shift(x, self.random_shift)
        x = self.convs(x.float().mul_(1.0 / 255.0))
        if self.keypoints is not None:
            x = self.keypoints(x)
        return mlp_forward(x.flatten(1), transposed(self.linears), relu_last=True)


class SpatialSoftmax(nn.Module):
    """Feature maps ``(B, C, H, W)`` → ``(B, 2K)`` keypoints: a 1×1 convolution to K maps, a
    softmax over each map's H·W positions, and each map's expected (x, y), both in [-1, 1]
    (x = -1 the left column, y = -1 the top row), ordered x₁, y₁, x₂, y₂, ..."""

    grid: torch.Tensor

    def __init__(self, channels: int, height: int, width: int, keypoints: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels, keypoints, 1)
        ys, xs = torch.meshgrid(
            torch.linspace(-1.0, 1.0, height), torch.linspace(-1.0, 1.0, width), indexing="ij"
        )
        # Rebuilt from the shape, not saved: checkpoints hold only learned weights.
        self.register_buffer("grid", torch.stack([xs.flatten(), ys.flatten()], 1), False)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.proj(maps).flatten(2), dim=-1)  # (B, K, H·W)
        return (weights @ self.grid).flatten(1)


def random_shift(
    frames_BCHW: torch.Tensor, pad: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """DrQ's augmentation: pad by repeating the border, crop back at a random offset per sample.

    ``(B, C, H, W)`` in (any dtype), same shape out; every channel (so every stacked frame) of
    a sample is shifted alike, by a uniform integer in [-pad, pad] along each axis. The result
    equals ``F.pad(x, [pad] * 4, mode="replicate")`` cropped at offset ``shift + pad``, built
    from slices instead (no padded copy, and it works on uint8).
    """
    b, _, h, w = frames_BCHW.shape
    if pad >= min(h, w):
        raise ValueError(f"random_shift pad {pad} must be smaller than the frame ({h}×{w})")
    shifts = torch.randint(-pad, pad + 1, (b, 2), generator=generator).tolist()
    out = torch.empty_like(frames_BCHW)
    for i, (sy, sx) in enumerate(shifts):
        # out[:, y, x] = src[:, clamp(y + sy), clamp(x + sx)]
        src, dst = frames_BCHW[i], out[i]
        r0, r1 = max(0, -sy), h - max(0, sy)
        c0, c1 = max(0, -sx), w - max(0, sx)
        dst[:, r0:r1, c0:c1] = src[:, r0 + sy : r1 + sy, c0 + sx : c1 + sx]
        if c0:
            dst[:, r0:r1, :c0] = dst[:, r0:r1, c0 : c0 + 1]
        if c1 < w:
            dst[:, r0:r1, c1:] = dst[:, r0:r1, c1 - 1 : c1]
        if r0:
            dst[:, :r0] = dst[:, r0 : r0 + 1]
        if r1 < h:
            dst[:, r1:] = dst[:, r1 - 1 : r1]
    return out
