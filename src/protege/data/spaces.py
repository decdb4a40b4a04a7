"""Space descriptions that can be written to JSON and checked against data."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from protege.data.obs import MAX_PARTS, part_spaces
from protege.errors import DataError


def space_to_json(space: gym.Space) -> dict[str, Any]:
    """The JSON description of a Box, a Discrete, or a Dict of Box parts (observations)."""
    if isinstance(space, gym.spaces.Dict):
        parts = part_spaces(space)
        return {"kind": "dict", "spaces": {name: space_to_json(s) for name, s in parts.items()}}
    if isinstance(space, gym.spaces.Discrete):
        return {"kind": "discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.Box):
        return {
            "kind": "box",
            "shape": list(space.shape),
            "dtype": np.dtype(space.dtype).name,
            "low": np.asarray(space.low, np.float64).ravel().tolist(),
            "high": np.asarray(space.high, np.float64).ravel().tolist(),
        }
    raise DataError(f"protege stores Box, Discrete and Dict spaces, not {space!r}")


def describe_space(space: gym.Space) -> str:
    """A one-line summary: ``Discrete(4)`` or ``Box float32 (8,) in [-1, 1]``."""
    if isinstance(space, gym.spaces.Box):
        lo, hi = np.min(space.low), np.max(space.high)
        return f"Box {np.dtype(space.dtype).name} {tuple(space.shape)} in [{lo:g}, {hi:g}]"
    if isinstance(space, gym.spaces.Dict):
        inner = ", ".join(f"{k}: {describe_space(s)}" for k, s in space.spaces.items())
        return f"Dict({inner})"
    return str(space)


MAX_ELEMENTS = 2**26
"""Most numbers one observation or action of a stored space may hold (a 4096×4096×4 image)."""

_DTYPES = frozenset(
    ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16")
) | {"uint32", "uint64"}
_KEYS = {
    "discrete": {"kind", "n", "start"},
    "box": {"kind", "shape", "dtype", "low", "high"},
    "dict": {"kind", "spaces"},
}


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def space_from_json(desc: Any, where: str, allow_dict: bool = False) -> gym.Space:
    """The space ``desc`` (written by :func:`space_to_json`) describes, every field checked for
    type and range; raises a DataError naming ``where`` and the field otherwise. A Dict
    (``allow_dict``: observation spaces) has Box parts only, at most ``MAX_PARTS``."""

    def bad(what: str) -> DataError:
        return DataError(f"{where}: malformed space description ({what})")

    if not isinstance(desc, dict) or desc.get("kind") not in _KEYS:
        kind = desc.get("kind") if isinstance(desc, dict) else desc
        raise DataError(f"{where}: unknown space kind {kind!r}")
    kind = desc["kind"]
    if kind == "dict" and not allow_dict:
        raise bad("a Dict space only describes observations, and its parts are Boxes")
    if set(desc) != _KEYS[kind] and not (kind == "discrete" and set(desc) == {"kind", "n"}):
        raise bad(f"fields {sorted(desc)}; a {kind} space has {sorted(_KEYS[kind])}")
    if kind == "discrete":
        n, start = desc["n"], desc.get("start", 0)
        if not _is_int(n) or not 1 <= n <= 2**31:
            raise bad(f"n = {n!r}; expected an integer in [1, 2**31]")
        if not _is_int(start) or not -(2**62) <= start <= 2**62:
            raise bad(f"start = {start!r}; expected an integer in [-2**62, 2**62]")
        return gym.spaces.Discrete(n, start=start)
    if kind == "dict":
        spaces = desc["spaces"]
        if not isinstance(spaces, dict) or not 1 <= len(spaces) <= MAX_PARTS:
            raise bad(f"spaces must be an object of 1 to {MAX_PARTS} parts")
        parts = {}
        for name, sub in spaces.items():
            if not isinstance(sub, dict) or sub.get("kind") != "box":
                raise bad(f"part {name!r} must be a box")
            parts[name] = space_from_json(sub, f"{where}: part {name!r}")
        space = gym.spaces.Dict(parts)
        if list(space.spaces) != list(spaces):
            raise bad(f"parts {list(spaces)} must be listed in sorted order")
        part_spaces(space, where)  # names
        return space
    shape, dtype = desc["shape"], desc["dtype"]
    if not isinstance(shape, list) or len(shape) > 8 or not all(_is_int(s) for s in shape):
        raise bad(f"shape = {shape!r}; expected a list of at most 8 integers")
    size = 1
    for s in shape:
        if not 1 <= s <= MAX_ELEMENTS:
            raise bad(f"shape = {shape!r}; every size must be in [1, {MAX_ELEMENTS}]")
        size *= s
    if size > MAX_ELEMENTS:
        raise bad(f"shape = {shape!r} holds {size} numbers; at most {MAX_ELEMENTS}")
    if dtype not in _DTYPES:
        raise bad(f"dtype = {dtype!r}; expected one of {sorted(_DTYPES)}")
    bounds = []
    for key in ("low", "high"):
        values = desc[key]
        if (
            not isinstance(values, list)
            or len(values) != size
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        ):
            raise bad(f"{key} must be a list of {size} numbers")
        arr = np.asarray(values, np.float64)
        if np.isnan(arr).any():
            raise bad(f"{key} contains NaN")
        bounds.append(arr.reshape(shape))
    low, high = bounds
    if np.any(low > high):
        raise bad("low > high")
    np_dtype = np.dtype(dtype)
    if np_dtype.kind in "iu":
        info = np.iinfo(np_dtype.type)  # type: ignore[type-var]
        if np.any(low < info.min) or np.any(high > info.max):
            raise bad(f"bounds outside the range of {dtype}")
    with np.errstate(all="ignore"):
        return gym.spaces.Box(low.astype(np_dtype), high.astype(np_dtype), tuple(shape), np_dtype)


def data_shape_dtype(space: gym.Space) -> tuple[tuple[int, ...], np.dtype]:
    """Per-row shape and dtype that data of this space (a Box or Discrete; a Dict's parts
    one by one) is stored with."""
    if isinstance(space, gym.spaces.Discrete):
        return (), np.dtype(np.int64)
    if isinstance(space, gym.spaces.Box):
        dtype = np.dtype(space.dtype)
        if dtype.kind == "f":
            dtype = np.dtype(np.float32)
        return tuple(space.shape), dtype
    raise DataError(f"protege stores Box and Discrete spaces, not {space!r}")


def check_rows(values: np.ndarray, space: gym.Space, field: str, where: str) -> np.ndarray:
    """Return ``values`` cast to the space's storage dtype, or raise a DataError saying why not."""
    shape, dtype = data_shape_dtype(space)
    arr = np.asarray(values)
    if arr.ndim < 1 or tuple(arr.shape[1:]) != shape:
        raise DataError(
            f"{where}: {field} have shape {tuple(arr.shape[1:])} per step; "
            f"the space {space} needs {shape}"
        )
    if dtype.kind == "f":
        if arr.dtype.kind not in "fiub":
            raise DataError(f"{where}: {field} have dtype {arr.dtype}; expected numbers")
        arr = arr.astype(dtype, copy=False)
        bad = ~np.isfinite(arr)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise DataError(f"{where}: {field} contain NaN or inf (first at step {row})")
    else:
        if arr.dtype.kind not in "iub" and not (
            arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))
        ):
            raise DataError(f"{where}: {field} have dtype {arr.dtype}; expected integers")
        arr = arr.astype(dtype, copy=False)
        if isinstance(space, gym.spaces.Discrete):
            lo, hi = int(space.start), int(space.start + space.n)
            if arr.size and (arr.min() < lo or arr.max() >= hi):
                raise DataError(f"{where}: {field} outside the space's range [{lo}, {hi})")
    return arr


def check_obs_rows(values: Any, space: gym.Space, where: str) -> Any:
    """:func:`check_rows` for observations: one array, or (a Dict space) each part, cast to
    its storage dtype; a DataError names the part that does not fit."""
    if not isinstance(space, gym.spaces.Dict):
        if isinstance(values, dict):
            raise DataError(
                f"{where}: observations are parts {sorted(values)}; the store's are one {space}"
            )
        return check_rows(values, space, "observations", where)
    parts = part_spaces(space, where)
    if not isinstance(values, dict):
        raise DataError(f"{where}: observations are one array; the store's are parts {list(parts)}")
    missing, unknown = sorted(set(parts) - set(values)), sorted(set(values) - set(parts))
    if missing or unknown:
        raise DataError(f"{where}: observation parts missing {missing}, unknown {unknown}")
    return {
        name: check_rows(values[name], sub, f"observation part {name!r}", where)
        for name, sub in parts.items()
    }
