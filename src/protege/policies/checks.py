"""Checks that make a checkpoint untrusted input: head and encoder settings against what the
head or encoder accepts, a network's size before it is allocated, and tensors against the
network they are loaded into (names, shapes, dtypes, finite values)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from protege.configs.checks import MAX_PARAMETERS
from protege.errors import CheckpointError, ConfigError, ProtegeError

HEAD_ARGS = frozenset({"self", "feature_dim", "act_dim", "chunk_size", "n_actions"})
"""Head constructor arguments the policy sets from its config (never ``head_kwargs`` keys)."""
ENCODER_ARGS = frozenset({"self", "obs_shape", "hidden_sizes", "n_obs_steps", "random_shift"})
"""Encoder constructor arguments set from config fields (never ``encoder_kwargs`` keys)."""


def check_settings(
    cls: Callable[..., Any], settings: dict[str, Any], reserved: Iterable[str], field: str
) -> None:
    """Refuse a setting that ``cls``'s constructor does not take as a named argument (or that
    a config field sets), and one whose type differs from the argument's default: an integer
    where the default is an integer, true/false where it is a bool, a number where it is a
    float, a string where it is a string, a list where it is a sequence."""
    params = {
        name: p
        for name, p in inspect.signature(cls).parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name not in reserved
    }
    for key, value in settings.items():
        if key not in params:
            raise ConfigError(
                f"{field}: unknown setting {key!r} for {getattr(cls, 'name', cls)!r}; "
                f"accepted: {sorted(params)}"
            )
        default = params[key].default
        if default is inspect.Parameter.empty or default is None:
            continue
        ok = {
            bool: isinstance(value, bool),
            int: isinstance(value, int) and not isinstance(value, bool),
            float: isinstance(value, int | float) and not isinstance(value, bool),
            str: isinstance(value, str),
            tuple: isinstance(value, list | tuple),
            list: isinstance(value, list | tuple),
        }.get(type(default), True)
        if not ok:
            raise ConfigError(
                f"{field}.{key} must be of the type of its default {default!r}, got {value!r}"
            )


def network_size(build: Callable[[], nn.Module]) -> int:
    """Parameters and buffers (persistent or not) of the network ``build`` makes, counted on
    the meta device: shapes only, nothing allocated, the global RNG untouched."""
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        module = build()
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() for t in tensors)


def check_size(build: Callable[[], nn.Module], where: str) -> None:
    """Refuse (``CheckpointError`` naming ``where``) a network over ``MAX_PARAMETERS`` values,
    or one whose settings its constructors refuse, before any memory is allocated."""
    try:
        n = network_size(build)
    except (ProtegeError, ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{where}: {exc}") from None
    if n > MAX_PARAMETERS:
        raise CheckpointError(
            f"{where}: the network would hold {n:,} values, over the bound of {MAX_PARAMETERS:,}"
        )


def read_tensors(module: nn.Module, file: Path, described_by: str) -> dict[str, torch.Tensor]:
    """The tensors of ``file`` (safetensors: nothing in it can run), checked against
    ``module``'s state dict before they are read: the same names, then each tensor's shape
    (from the header, so no data is read for a misshaped one), dtype and finite values."""
    expected = module.state_dict()
    try:
        with safe_open(str(file), framework="pt") as f:
            names = set(f.keys())
            missing, extra = sorted(set(expected) - names), sorted(names - set(expected))
            if missing or extra:
                raise CheckpointError(
                    f"{file}: weights do not match {described_by}: "
                    f"missing {missing}, unexpected {extra}"
                )
            tensors = {}
            for name, want in expected.items():
                shape = tuple(f.get_slice(name).get_shape())
                if shape != tuple(want.shape):
                    raise CheckpointError(
                        f"{file}: weights do not match {described_by}: tensor {name!r} has shape "
                        f"{shape}, not "
                        f"{tuple(want.shape)}"
                    )
                t = f.get_tensor(name)
                if t.dtype != want.dtype:
                    raise CheckpointError(
                        f"{file}: weights do not match {described_by}: tensor {name!r} has dtype "
                        f"{t.dtype}, not "
                        f"{want.dtype}"
                    )
                if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                    raise CheckpointError(f"{file}: tensor {name!r} holds NaN or infinite values")
                tensors[name] = t
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{file}: not a valid safetensors file ({exc}); protege never unpickles"
        ) from None
    return tensors
