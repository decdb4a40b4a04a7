"""Type and range checks, standard library only.

``check_*``: a config field's range, raising :class:`~protege.errors.ConfigError` naming the
field and its flag (the config dataclasses' ``__post_init__``). ``require_*``: values read from
untrusted JSON (checkpoints' config files), returning the value or raising ``ConfigError``
naming the field; the loaders turn that into a :class:`~protege.errors.CheckpointError` naming
the file. Types are strict: ``true`` is not an integer, ``"64"`` is not a number, ``NaN`` is
not finite.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable
from typing import Any

from protege.errors import ConfigError

MAX_PARTS = 32
"""Most named parts an observation may have (a Dict observation space)."""
PART_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}")
"""What an observation part's name may be: it names files of a store (``obs.NAME.bin``)."""

MAX_SIZE = 2**16
"""The largest layer width, chunk size or observation history a config accepts."""
MAX_COUNT = 10**7
"""The largest number of episodes, envs or rounds a config accepts."""
MAX_STEPS = 10**9
"""The largest number of gradient steps a config accepts."""
MAX_SEED = 2**63 - 1
"""Seeds are non-negative 64-bit integers (numpy and torch take no other)."""


def _named(owner: str, name: str) -> str:
    """``BCConfig.lr (--lr)``: the field and the flag it is on the command line."""
    return f"{owner}.{name} (--{name.replace('_', '-')})"


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(owner: str, name: str, value: Any, lo: int, hi: int) -> None:
    """``value`` is an int in ``[lo, hi]``; else a ConfigError naming ``owner.name``."""
    if not _is_int(value) or not lo <= value <= hi:
        raise ConfigError(
            f"{_named(owner, name)} must be an integer in [{lo}, {hi}], got {value!r}"
        )


def check_float(
    owner: str,
    name: str,
    value: Any,
    lo: float = -math.inf,
    hi: float = math.inf,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> None:
    """``value`` is a finite number in ``[lo, hi]`` (``lo_open``, ``hi_open``: excluding
    that end)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        x = float(value)
        ok = (
            math.isfinite(x)
            and (x > lo if lo_open else x >= lo)
            and (x < hi if hi_open else x <= hi)
        )
    if not ok:
        low = f"({lo}" if lo_open else f"[{lo}"
        high = "∞)" if hi == math.inf else f"{hi})" if hi_open else f"{hi}]"
        raise ConfigError(
            f"{_named(owner, name)} must be a finite number in {low}, {high}, got {value!r}"
        )


def check_sizes(owner: str, name: str, values: Iterable[Any], *, empty: bool = True) -> None:
    """Every entry of ``values`` is an int in ``[1, MAX_SIZE]`` (layer widths, channels)."""
    values = tuple(values)
    if not empty and not values:
        raise ConfigError(f"{_named(owner, name)} needs at least one value")
    for v in values:
        if not _is_int(v) or not 1 <= v <= MAX_SIZE:
            raise ConfigError(
                f"{_named(owner, name)} must hold integers in [1, {MAX_SIZE}], got {list(values)!r}"
            )


# ------------------------------------------------- untrusted JSON (checkpoints)
MAX_WIDTH = 65_536
"""Any layer width, observation dimension or count of discrete actions."""
MAX_CHUNK = 4_096
"""Chunk sizes, observation histories and action dimensions in a checkpoint."""
MAX_LAYERS = 64
"""Entries of a list of layer sizes (and of any list in head or encoder settings)."""
MAX_PARAMETERS = 100_000_000
"""Parameters and buffers of one network: 400 MB of float32. protege's largest networks (a
Nature-CNN on 96×96 frames with a diffusion head) hold a few million; a config beyond this
bound is refused before anything is allocated."""


def require_int(value: Any, field: str, lo: int, hi: int) -> int:
    """``value`` if it is an integer (not a bool) in ``[lo, hi]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"field {field!r} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"field {field!r} must be in [{lo}, {hi}], got {value}")
    return value


def require_bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"field {field!r} must be true or false, got {value!r}")
    return value


def require_number(value: Any, field: str, finite: bool = True) -> float:
    """``value`` as a float if it is a number (not a bool); never NaN, and finite if asked."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"field {field!r} must be a number, got {value!r}")
    if math.isnan(value) or (finite and math.isinf(value)):
        raise ConfigError(f"field {field!r} must be a finite number, got {value!r}")
    return float(value)


def require_str(value: Any, field: str, max_len: int = 64) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= max_len:
        raise ConfigError(f"field {field!r} must be a string of 1 to {max_len} characters")
    return value


def require_int_list(
    value: Any, field: str, lo: int, hi: int, min_len: int = 0, max_len: int = MAX_LAYERS
) -> list[int]:
    """``value`` if it is a list of ``min_len`` to ``max_len`` integers, each in ``[lo, hi]``."""
    if not isinstance(value, list | tuple) or not min_len <= len(value) <= max_len:
        raise ConfigError(
            f"field {field!r} must be a list of {min_len} to {max_len} integers, got {value!r}"
        )
    return [require_int(v, f"{field}[{i}]", lo, hi) for i, v in enumerate(value)]


def require_settings(value: Any, field: str) -> dict[str, Any]:
    """A head's or encoder's settings: an object of at most 32 plain JSON values (numbers in
    range, short strings, short lists of those). Which keys a head accepts is checked where
    the head is known (:mod:`protege.policies.checks`)."""
    if not isinstance(value, dict) or len(value) > 32:
        raise ConfigError(f"field {field!r} must be an object of at most 32 settings")
    for key, v in value.items():
        name = f"{field}.{key}"
        require_str(key, f"{field} key")
        items = v if isinstance(v, list) else [v]
        if isinstance(v, list) and len(v) > MAX_LAYERS:
            raise ConfigError(f"field {name!r} must have at most {MAX_LAYERS} entries")
        for item in items:
            if item is None or isinstance(item, bool):
                continue
            if isinstance(item, int):
                require_int(item, name, -MAX_WIDTH, MAX_WIDTH)
            elif isinstance(item, float):
                require_number(item, name)
            elif isinstance(item, str):
                require_str(item, name)
            else:
                raise ConfigError(f"field {name!r} must be a number, string or list of them")
    return value


DEVICE_SPEC = re.compile(r"^(auto|cpu|mps|cuda(:\d{1,3})?)$")
"""What ``--device`` takes: auto, cpu, cuda, cuda:N or mps."""
PRECISIONS = ("fp32", "bf16")
"""What ``--precision`` takes."""


def check_device_spec(field: str, value: Any) -> str:
    """``value`` if it names a device (auto, cpu, cuda, cuda:N, mps), else a ConfigError.
    Whether this machine has it is :func:`protege.device.resolve_device`'s to say."""
    if not isinstance(value, str) or not DEVICE_SPEC.match(value):
        raise ConfigError(f"{field} must be auto, cpu, cuda, cuda:N or mps, not {value!r}")
    return value


def check_precision(field: str, value: Any) -> str:
    """``value`` if it is fp32 or bf16, else a ConfigError."""
    if value not in PRECISIONS:
        raise ConfigError(f"{field} must be one of {PRECISIONS}, not {value!r}")
    return str(value)
