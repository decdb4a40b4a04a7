"""The per-step record of a person at the keyboard, and the file it is kept in.

:class:`HumanCounts` is what the person has given (steps, labels, takeovers, seconds of
attention and of watching; defined in :mod:`protege.teleop.supervisor`), :class:`EpisodeLog`
one episode as they saw it: who was in control at each step, the learner's proposed and the
person's actions (both, whoever was executed), takeover segment ids and wall-clock times. The
store holds labels and executed actions; this log holds the rest: next to the store,
``<store>.teleop.jsonl`` (:func:`log_path`) gets one line per stored episode
(:func:`append_log`).

Example:
    >>> append_log("runs/me/store", supervisor.episode, store_index=3, round=1)
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["EpisodeLog", "HumanCounts", "append_log", "log_path"]


@dataclass
class HumanCounts:
    """What the person has given so far (the definitions are in
    :mod:`protege.teleop.supervisor`)."""

    steps: int = 0
    labels: int = 0
    human_steps: int = 0
    interventions: int = 0
    attention_seconds: float = 0.0
    session_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EpisodeLog:
    """One episode as the person saw it: per step who was in control, both actions, time."""

    index: int
    """Episodes since the supervisor started (0-based)."""
    in_control: list[bool] = field(default_factory=list)
    learner_actions: list[Any] = field(default_factory=list)
    """The learner's proposal at each step (None in pure demonstration)."""
    human_actions: list[Any] = field(default_factory=list)
    """The person's action at each step, also where the learner's was executed."""
    segment: list[int] = field(default_factory=list)
    """The takeover segment (intervention) id a step belongs to, −1 where the learner drove."""
    t_wall: list[float] = field(default_factory=list)
    """Seconds since the session started, at each decision."""
    t0_unix: float | None = None
    """The Unix time (``time.time()``) of ``t_wall`` 0, so ``t0_unix + t_wall[k]`` is when
    step k was decided, comparable with clocks outside the process."""
    dt: list[float] = field(default_factory=list)
    """Wall seconds charged to each step (see ``attention_seconds``)."""
    counts: HumanCounts = field(default_factory=HumanCounts)
    quit: bool = False
    """The person quit during this episode (it was truncated there)."""

    def __len__(self) -> int:
        return len(self.in_control)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def log_path(store_path: str | os.PathLike[str]) -> Path:
    """Where the per-step log of the store at ``store_path`` is written."""
    return Path(f"{Path(store_path)}.teleop.jsonl")


def append_log(store_path: str | os.PathLike[str], record: EpisodeLog, **fields: Any) -> None:
    """Append one episode's per-step record (and ``fields``: its store index, round, ...) to
    the log of the store at ``store_path``, fsynced like the store itself."""
    line = {**fields, **record.to_dict()}
    with open(log_path(store_path), "a") as f:
        f.write(json.dumps(line) + "\n")
        f.flush()
        os.fsync(f.fileno())
