"""Space descriptions that can be written to JSON and checked against data."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from protege.errors import DataError


def space_to_json(space: gym.Space) -> dict[str, Any]:
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
    raise DataError(f"protege stores Box and Discrete spaces, not {space!r}")


def describe_space(space: gym.Space) -> str:
    """A one-line summary: ``Discrete(4)`` or ``Box float32 (8,) in [-1, 1]``."""
    if isinstance(space, gym.spaces.Box):
        lo, hi = np.min(space.low), np.max(space.high)
        return f"Box {np.dtype(space.dtype).name} {tuple(space.shape)} in [{lo:g}, {hi:g}]"
    return str(space)


def space_from_json(desc: dict[str, Any], where: str) -> gym.Space:
    try:
        if desc["kind"] == "discrete":
            return gym.spaces.Discrete(int(desc["n"]), start=int(desc.get("start", 0)))
        if desc["kind"] == "box":
            shape = tuple(int(s) for s in desc["shape"])
            dtype = np.dtype(desc["dtype"])
            low = np.asarray(desc["low"], np.float64).reshape(shape)
            high = np.asarray(desc["high"], np.float64).reshape(shape)
            return gym.spaces.Box(low.astype(dtype), high.astype(dtype), shape, dtype)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{where}: malformed space description {desc!r} ({exc})") from None
    raise DataError(f"{where}: unknown space kind {desc.get('kind')!r}")


def data_shape_dtype(space: gym.Space) -> tuple[tuple[int, ...], np.dtype]:
    """Per-row shape and dtype that data of this space is stored with."""
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
