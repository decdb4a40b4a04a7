"""Policies on observations of several parts: an encoder per part, fused before the head.

A task whose observation space is a ``Dict`` of parts (state vectors and camera images, see
:mod:`protege.data.obs`) gets a policy with ``PolicyConfig.obs_parts`` set and the ``parts``
encoder (:class:`PartsEncoder`): a CNN per camera part
(:class:`~protege.policies.encoders.CNNEncoder`, each with its own random-shift
augmentation), an MLP (or nothing: the normalized values themselves) per vector part, the
features concatenated and passed through the trunk's Linear+ReLU layers of ``hidden_sizes``.
Every head works on the fused features.

:class:`PartStats` holds one part's normalization statistics (vector parts are z-scored as a
single observation array is; image parts are scaled by their CNN), and :func:`as_tensors`
turns a numpy batch of parts into tensors, checking every part's shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from protege.errors import ConfigError, DataError
from protege.policies.encoders import CNNEncoder, Encoder, MLPEncoder, register_encoder
from protege.policies.mlp import check_activation, linear_layers, mlp, mlp_forward, transposed


def is_image_part(shape: Sequence[int]) -> bool:
    """Whether a part of this shape is a camera image ``(H, W, C)`` (encoded by a CNN)."""
    return len(shape) == 3


@register_encoder
class PartsEncoder(Encoder):
    """An encoder per observation part, features concatenated, then a trunk.

    Built as ``PartsEncoder(obs_shape, hidden_sizes, ...)`` where ``obs_shape`` maps each
    part's name to its shape (``PolicyConfig.obs_parts``). Takes a dict of ``(B, [K,]
    *part_shape)`` tensors (image parts raw uint8, vector parts normalized floats) and returns
    ``(B, out_dim)`` features.

    Args:
        obs_shape: part name → shape, in order; a 3-D part is an image.
        hidden_sizes: the trunk's Linear+ReLU layers after the concatenation (empty: the
            concatenated features go to the head as they are).
        n_obs_steps: observations of history per part (K).
        random_shift: DrQ's random-shift pad for every image part, each drawn on its own.
        state_sizes: each vector part's own Linear+ReLU layers (empty: its normalized values
            are its features).
        image_sizes: each image part's fully connected layers after its convolutions.
        channels: every image part's convolution channels (see
            :class:`~protege.policies.encoders.CNNEncoder`; small images need small kernels).
        kernels: every image part's convolution kernel sizes.
        strides: every image part's convolution strides.
        keypoints: every image part's spatial-softmax keypoints (0: its convolutions'
            output flattened; see :class:`~protege.policies.encoders.CNNEncoder`).
        activation: only ``"relu"``.
    """

    name = "parts"
    takes_uint8 = True

    def __init__(
        self,
        obs_shape: Mapping[str, Sequence[int]],
        hidden_sizes: Sequence[int] = (256, 256),
        n_obs_steps: int = 1,
        random_shift: int = 0,
        state_sizes: Sequence[int] = (),
        image_sizes: Sequence[int] = (256,),
        channels: Sequence[int] = (32, 64, 64),
        kernels: Sequence[int] = (8, 4, 3),
        strides: Sequence[int] = (4, 2, 1),
        keypoints: int = 0,
        activation: str = "relu",
        **kw: Any,
    ) -> None:
        super().__init__()
        check_activation(activation, "the parts encoder")
        if not isinstance(obs_shape, Mapping) or not obs_shape:
            raise ConfigError("the parts encoder needs observation parts (PolicyConfig.obs_parts)")
        self.names = list(obs_shape)
        encoders: list[Encoder] = []
        for name, shape in obs_shape.items():
            if is_image_part(shape):
                try:
                    enc: Encoder = CNNEncoder(
                        shape,
                        image_sizes,
                        n_obs_steps,
                        random_shift,
                        channels,
                        kernels,
                        strides,
                        keypoints,
                    )
                except ConfigError as exc:
                    raise ConfigError(f"observation part {name!r}: {exc}") from None
            else:
                enc = MLPEncoder(shape, state_sizes, n_obs_steps)
            encoders.append(enc)
        self.parts = nn.ModuleList(encoders)
        fused = sum(e.out_dim for e in encoders)
        self.trunk = mlp(fused, hidden_sizes)
        self.linears = linear_layers(self.trunk)
        self.out_dim = int(hidden_sizes[-1]) if hidden_sizes else fused

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        feats = [enc(obs[name]) for name, enc in zip(self.names, self.parts, strict=True)]
        x = torch.cat(feats, dim=1)
        return mlp_forward(x, transposed(self.linears), relu_last=True)


class PartStats(nn.Module):
    """One part's normalization statistics (``mean`` and ``std``, of the part's shape for a
    normalized vector part, scalars 0 and 1 otherwise)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, shape: Sequence[int]):
        super().__init__()
        self.register_buffer("mean", torch.zeros(tuple(shape)))
        self.register_buffer("std", torch.ones(tuple(shape)))

    def fit(self, values: np.ndarray) -> None:
        """Mean and standard deviation of ``values`` ``(N, *shape)``; a feature that never
        varies is left unscaled."""
        v64 = np.asarray(values, np.float64)
        std = v64.std(0)
        self.mean.copy_(torch.as_tensor(v64.mean(0), dtype=torch.float32))
        self.std.copy_(torch.as_tensor(np.where(std < 1e-6, 1.0, std), dtype=torch.float32))


def as_tensors(obs: Any, parts: Mapping[str, tuple[int, ...]], k: int) -> dict[str, torch.Tensor]:
    """A numpy batch of parts as tensors ``(N, [K,] *shape)``, every part checked: the parts
    the policy was built for, each ``(N, *shape)`` (taken as K copies, no history) or, with
    ``k > 1``, ``(N, K, *shape)``. A DataError names the part that does not fit."""
    if not isinstance(obs, Mapping):
        raise DataError(
            f"policy expects observations of parts {list(parts)}, got one array of shape "
            f"{tuple(np.shape(obs))}"
        )
    missing, unknown = sorted(set(parts) - set(obs)), sorted(set(obs) - set(parts))
    if missing or unknown:
        raise DataError(
            f"policy expects observation parts {list(parts)}: missing {missing}, unknown {unknown}"
        )
    out: dict[str, torch.Tensor] = {}
    for name, shape in parts.items():
        t = torch.from_numpy(np.ascontiguousarray(obs[name]))
        got = tuple(t.shape[1:])
        if k > 1 and got == shape:
            t = t[:, None].expand(-1, k, *shape)
        elif got != ((k, *shape) if k > 1 else shape):
            stacked = f" (or {(k, *shape)} with history)" if k > 1 else ""
            raise DataError(
                f"policy expects observation part {name!r} of shape {shape}{stacked}, got {got}"
            )
        out[name] = t
    rows = {name: len(t) for name, t in out.items()}
    if len(set(rows.values())) > 1:
        raise DataError(f"observation parts have different numbers of rows: {rows}")
    return out


def to_tensors(obs: Any) -> Any:
    """A numpy batch (an array, or a dict of parts) as tensors, unchecked."""
    if isinstance(obs, Mapping):
        return {name: torch.as_tensor(np.asarray(v)) for name, v in obs.items()}
    return torch.as_tensor(np.asarray(obs))


def flat_tensor(obs: Any) -> torch.Tensor:
    """``(N, D)`` float32: a tensor flattened, or every part flattened and concatenated in
    order (image bytes as their values 0-255): the input of a network that takes one vector
    per observation (ThriftyDAgger's success critic)."""
    if isinstance(obs, Mapping):
        return torch.cat([v.float().flatten(1) for v in obs.values()], dim=1)
    return obs.float().flatten(1)
