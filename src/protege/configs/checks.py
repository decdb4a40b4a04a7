"""Range checks the config dataclasses run in ``__post_init__`` (standard library only).

Each raises a :class:`~protege.errors.ConfigError` naming the field, the accepted range and
the value, so ``protege train --lr nan`` ends in one line, before any work starts.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

from protege.errors import ConfigError

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
