"""What the demos share: timing their steps and writing ``results.json``."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from protege.data.files import write_atomic


@contextmanager
def timed(
    timings: dict[str, float], step: str, cpu_timings: dict[str, float] | None = None
) -> Iterator[None]:
    """Add the block's wall seconds to ``timings[step]`` and, given ``cpu_timings``, the CPU
    seconds this process spent in it (all its threads) to ``cpu_timings[step]``.

    A step timed twice adds up (the demos evaluate or train in several blocks).
    """
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        timings[step] = timings.get(step, 0.0) + time.perf_counter() - t0
        if cpu_timings is not None:
            cpu_timings[step] = cpu_timings.get(step, 0.0) + time.process_time() - c0


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or ±inf as None (JSON null) and numpy scalars as Python ones,
    through nested dicts, lists and tuples (tuples become lists, as ``json`` writes them).

    NaN is how the demos say "not measured" (no disagreement for the expert, no validation
    loss, a car that never left the road); JSON has no NaN. Arrays become lists and paths
    strings.
    """
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def write_json(path: str | os.PathLike[str], value: Any) -> Path:
    """``value`` (see :func:`json_safe`) as indented, strictly valid JSON at ``path``.

    Atomically: written to a temporary file beside it, then renamed over it, so a reader
    (or a crash) never sees half a file.
    """
    path = Path(path)
    write_atomic(path, json.dumps(json_safe(value), indent=2, allow_nan=False) + "\n")
    return path
