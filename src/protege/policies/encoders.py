"""Observation encoders: observations ``(B, *obs_shape)`` → features ``(B, F)``.

Encoders register by name in ``ENCODERS`` (``encoder`` in config.json, ``--encoder`` on the CLI).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ENCODERS: dict[str, type[Encoder]] = {}


def register_encoder(cls: type[Encoder]) -> type[Encoder]:
    ENCODERS[cls.name] = cls
    return cls


class Encoder(nn.Module):
    name: ClassVar[str]
    out_dim: int


def mlp(in_dim: int, hidden_sizes: Sequence[int], activation: type[nn.Module] = nn.ReLU):
    layers: list[nn.Module] = []
    for size in hidden_sizes:
        layers += [nn.Linear(in_dim, size), activation()]
        in_dim = size
    return nn.Sequential(*layers)


@register_encoder
class MLPEncoder(Encoder):
    """Flattens the observation and applies Linear+ReLU layers of ``hidden_sizes``."""

    name = "mlp"

    def __init__(
        self, obs_shape: Sequence[int], hidden_sizes: Sequence[int] = (256, 256), **kw: Any
    ) -> None:
        super().__init__()
        in_dim = int(np.prod(obs_shape))
        self.net = mlp(in_dim, hidden_sizes)
        self.out_dim = hidden_sizes[-1] if hidden_sizes else in_dim
        self._linears = [m for m in self.net if isinstance(m, nn.Linear)]

    def forward(self, obs_BO: torch.Tensor) -> torch.Tensor:
        # Functional calls instead of nn.Sequential: at the batch sizes of control (1-64 rows),
        # per-module call overhead costs more than the matrix products themselves.
        x = obs_BO.flatten(1)
        for layer in self._linears:
            x = torch.relu(F.linear(x, layer.weight, layer.bias))
        return x
