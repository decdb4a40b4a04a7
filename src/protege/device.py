"""Where tensors live: ``--device auto|cpu|cuda|cuda:N|mps`` resolved to a ``torch.device``,
and ``--precision fp32|bf16`` as an autocast context.

``auto`` is CUDA if torch sees a GPU, else Apple's MPS if available, else the CPU. Asking for
a device this machine does not have is one :class:`~protege.errors.ConfigError` saying so
(the command line exits with code 2), never a torch traceback. The CPU fast paths
(:mod:`protege.policies.mlp`) run only on the CPU; on any other device the plain torch path
is taken (:func:`fast_paths_apply`).

Example:
    >>> device = resolve_device("auto")          # torch.device("cpu") on a machine without GPU
    >>> policy.to(device)
    >>> with autocast(device, "bf16"):
    ...     loss = policy.head.loss(policy.features(obs), actions, None)
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch

from protege.configs.checks import check_device_spec, check_precision
from protege.errors import ConfigError


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """The device ``spec`` names (None means ``auto``); a ConfigError if this machine has
    no such device."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    spec = check_device_spec("device", "auto" if spec is None else spec)
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"CUDA is not available on this machine (torch {torch.__version__} build); "
                "use --device cpu or auto"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"--device {spec}: this machine has {count} CUDA device(s) (cuda:0..cuda:"
                f"{count - 1}); use one of those, cpu or auto"
            )
    elif device.type == "mps" and not _mps_available():
        raise ConfigError(
            f"MPS is not available on this machine (torch {torch.__version__} build); "
            "use --device cpu or auto"
        )
    return device


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def fast_paths_apply(device: torch.device) -> bool:
    """True when the CPU fast paths may run on tensors of ``device`` (the CPU only)."""
    return device.type == "cpu"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` to bfloat16 for ``precision="bf16"`` (works on the CPU too), a
    no-op for ``"fp32"``."""
    if check_precision("precision", precision) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def to_device(x: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """A tensor, or a dict of tensors, on ``device`` (the same objects when already there)."""
    if isinstance(x, dict):
        return {k: v.to(device, non_blocking=non_blocking) for k, v in x.items()}
    return x.to(device, non_blocking=non_blocking)


def pinned(x: Any, device: torch.device) -> Any:
    """Page-locked host memory for a fast, asynchronous copy to a CUDA ``device`` (the same
    tensors for any other device)."""
    if device.type != "cuda":
        return x
    if isinstance(x, dict):
        return {k: v.pin_memory() for k, v in x.items()}
    return x.pin_memory()


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A tensor's values as numpy (copied to the host first when on a device)."""
    return t.detach().cpu().numpy()


def randn(
    shape: tuple[int, ...] | torch.Size,
    generator: torch.Generator | None,
    like: torch.Tensor,
) -> torch.Tensor:
    """Standard normal noise on ``like``'s device and dtype. A ``generator`` draws on its own
    device (a CPU generator: the same numbers whatever device the policy is on), then the
    noise moves; without one, torch's global RNG of ``like``'s device draws."""
    if generator is None:
        return torch.randn(shape, device=like.device, dtype=like.dtype)
    noise = torch.randn(shape, generator=generator, device=generator.device, dtype=like.dtype)
    return noise.to(like.device)


def rand(
    shape: tuple[int, ...] | torch.Size,
    generator: torch.Generator | None,
    like: torch.Tensor,
) -> torch.Tensor:
    """Uniform [0, 1) noise, drawn as :func:`randn` draws."""
    if generator is None:
        return torch.rand(shape, device=like.device, dtype=like.dtype)
    noise = torch.rand(shape, generator=generator, device=generator.device, dtype=like.dtype)
    return noise.to(like.device)


def multinomial(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """``torch.multinomial(probs, 1)``; a generator on another device than ``probs`` (a CPU
    generator, a policy on a GPU) draws from a host copy."""
    if generator is None or generator.device == probs.device:
        return torch.multinomial(probs, 1, generator=generator)
    return torch.multinomial(probs.cpu(), 1, generator=generator).to(probs.device)
