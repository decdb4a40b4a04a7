"""Segments of the learner's trajectories, pairs of them, and the durable file of preferences.

A :class:`Segment` is up to ``length`` consecutive steps of one episode of a PPO batch
(:class:`~protege.algos.rl_rollout.RolloutBatch`): observations, actions, next observations,
whether the episode terminated at each step, and the task's true reward summed (what the
synthetic oracle compares; a person never sees it). :func:`sample_pairs` draws pairs of them.

:class:`PreferenceFile` keeps every answer as one JSON line (both segments in full, the
choice, who answered, the PPO update and the query's index in it), appended and fsynced
before the next query, so an answer exists once its line does. Like the store's index, a
last line without its newline is an append a crash interrupted: it is not committed, and
:meth:`PreferenceFile.open` cuts it off (saying so in ``repaired``) before appending more; a
line that is not a valid preference anywhere else is corruption, a
:class:`~protege.errors.DataError` naming the file and line.

Example:
    >>> prefs = PreferenceFile.open("runs/prefs/preferences.jsonl")
    >>> pairs = sample_pairs(batch, 10, 25, generator)
    >>> prefs.append(Preference(update=0, index=0, choice="left", source="true", pair=pairs[0]))
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from protege.algos.rl_rollout import RolloutBatch
from protege.data.files import append_durably
from protege.data.index import check_torn
from protege.errors import DataError

CHOICES = ("left", "right", "equal", "skip")
"""An answer: the left (first) segment is better, the right one, both alike, or no answer."""
LABEL = {"left": 1.0, "right": 0.0, "equal": 0.5}
"""The probability that the left segment is preferred, as Bradley–Terry is trained on."""
FORMAT = 1


@dataclass
class Segment:
    """Consecutive steps of one episode (``T`` ≤ the segment length)."""

    obs: np.ndarray
    """(T, *obs_shape) float32."""
    actions: np.ndarray
    """(T,) int64 for a discrete task, (T, A) float32 otherwise."""
    next_obs: np.ndarray
    done: np.ndarray
    """(T,) bool: the episode terminated at this step."""
    true_return: float
    """The task's reward summed over the steps (for the synthetic oracle and the measures)."""
    episode: int = 0
    """Index of its episode in the batch it came from."""
    start: int = 0
    """Its first step within that episode."""

    def __len__(self) -> int:
        return len(self.obs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "obs": self.obs.tolist(),
            "actions": self.actions.tolist(),
            "next_obs": self.next_obs.tolist(),
            "done": self.done.astype(bool).tolist(),
            "true_return": float(self.true_return),
            "episode": int(self.episode),
            "start": int(self.start),
        }

    @classmethod
    def from_dict(cls, d: Any, discrete: bool, where: str) -> Segment:
        """Parse and check a segment written by :meth:`to_dict`."""
        keys = {"obs", "actions", "next_obs", "done", "true_return", "episode", "start"}
        if not isinstance(d, dict) or set(d) != keys:
            raise DataError(f"{where}: a segment must have exactly the fields {sorted(keys)}")
        try:
            obs = np.asarray(d["obs"], np.float32)
            nxt = np.asarray(d["next_obs"], np.float32)
            acts = np.asarray(d["actions"], np.int64 if discrete else np.float32)
            done = np.asarray(d["done"])
        except (TypeError, ValueError) as exc:
            raise DataError(f"{where}: a segment's arrays are malformed ({exc})") from None
        n = len(obs) if obs.ndim else 0
        if n == 0 or nxt.shape != obs.shape or len(acts) != n or done.shape != (n,):
            raise DataError(f"{where}: a segment's obs, actions, next_obs and done disagree")
        if done.dtype != bool or not np.isfinite(obs).all() or not np.isfinite(nxt).all():
            raise DataError(f"{where}: a segment holds non-finite numbers or a non-boolean done")
        ret = d["true_return"]
        if not isinstance(ret, int | float) or isinstance(ret, bool) or not math.isfinite(ret):
            raise DataError(f"{where}: a segment's true_return must be a finite number")
        for k in ("episode", "start"):
            if not isinstance(d[k], int) or isinstance(d[k], bool) or d[k] < 0:
                raise DataError(f"{where}: a segment's {k} must be a non-negative integer")
        return cls(obs, acts, nxt, done, float(ret), d["episode"], d["start"])


@dataclass
class Preference:
    """One query and its answer."""

    update: int
    """The PPO update whose rollouts the pair came from."""
    index: int
    """The query's index within that update."""
    choice: str
    """One of :data:`CHOICES`."""
    source: str
    """Who answered: ``true``, ``noisy`` or ``human``."""
    left: Segment
    right: Segment
    seconds: float = 0.0
    """How long the answer took (a person's time; 0 for an oracle)."""

    @property
    def label(self) -> float | None:
        """P(left preferred) for Bradley–Terry; None for a skip."""
        return LABEL.get(self.choice)

    def to_line(self) -> bytes:
        d = {
            "format": FORMAT,
            "update": self.update,
            "index": self.index,
            "choice": self.choice,
            "source": self.source,
            "seconds": round(float(self.seconds), 4),
            "left": self.left.to_dict(),
            "right": self.right.to_dict(),
        }
        return (json.dumps(d, separators=(",", ":")) + "\n").encode()

    @classmethod
    def from_line(cls, line: bytes, discrete: bool, where: str) -> Preference:
        """Parse and check one line of a preference file."""
        try:
            d = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            raise DataError(f"{where}: not a JSON line") from None
        keys = {"format", "update", "index", "choice", "source", "seconds", "left", "right"}
        if not isinstance(d, dict) or set(d) != keys:
            raise DataError(f"{where}: a preference must have exactly the fields {sorted(keys)}")
        if d["format"] != FORMAT:
            raise DataError(f"{where}: format {d['format']!r}, this protege reads {FORMAT}")
        for k in ("update", "index"):
            if not isinstance(d[k], int) or isinstance(d[k], bool) or d[k] < 0:
                raise DataError(f"{where}: {k} must be a non-negative integer")
        if d["choice"] not in CHOICES:
            raise DataError(f"{where}: choice {d['choice']!r} is not one of {', '.join(CHOICES)}")
        if not isinstance(d["source"], str):
            raise DataError(f"{where}: source must be a string")
        secs = d["seconds"]
        if not isinstance(secs, int | float) or isinstance(secs, bool) or not secs >= 0:
            raise DataError(f"{where}: seconds must be a non-negative number")
        left = Segment.from_dict(d["left"], discrete, f"{where}, left segment")
        right = Segment.from_dict(d["right"], discrete, f"{where}, right segment")
        return cls(d["update"], d["index"], d["choice"], d["source"], left, right, float(secs))


class PreferenceFile:
    """The preferences of one run, one fsynced JSON line each (see the module docstring).

    Use :meth:`open`; ``records`` holds every committed preference in file order."""

    def __init__(self, path: Path, records: list[Preference], repaired: int):
        self.path = path
        self.records = records
        self.repaired = repaired
        """Bytes of an interrupted last line cut off when the file was opened (0: none)."""
        self._keys = {(p.update, p.index) for p in records}

    @classmethod
    def open(cls, path: str | os.PathLike[str], discrete: bool) -> PreferenceFile:
        """Read (or create) the file at ``path``; cut off an interrupted last line."""
        path = Path(path)
        try:
            raw = path.read_bytes() if path.exists() else b""
        except OSError as exc:
            raise DataError(f"{path}: cannot be read ({exc.strerror})") from None
        records = read_lines(raw, path, discrete)
        torn = len(raw) - (raw.rfind(b"\n") + 1)
        if torn:
            os.truncate(path, len(raw) - torn)
        path.touch()
        return cls(path, records, torn)

    def __len__(self) -> int:
        return len(self.records)

    def has(self, update: int, index: int) -> bool:
        """Whether the query ``index`` of update ``update`` is answered already."""
        return (update, index) in self._keys

    def get(self, update: int, index: int) -> Preference:
        for p in self.records:
            if (p.update, p.index) == (update, index):
                return p
        raise KeyError((update, index))

    def append(self, pref: Preference) -> None:
        """Commit ``pref`` (fsynced) and keep it in :attr:`records`."""
        if self.has(pref.update, pref.index):
            raise DataError(f"{self.path}: query {pref.index} of update {pref.update} is answered")
        append_durably(self.path, pref.to_line())
        self.records.append(pref)
        self._keys.add((pref.update, pref.index))

    def counts(self) -> dict[str, int]:
        """Answers by choice, and in all."""
        out = {c: 0 for c in CHOICES}
        for p in self.records:
            out[p.choice] += 1
        out["total"] = len(self.records)
        return out


def read_lines(raw: bytes, path: Path, discrete: bool) -> list[Preference]:
    """The committed preferences in ``raw`` (a preference file's bytes), every line checked."""
    lines = raw.split(b"\n")
    torn = lines.pop()
    try:
        check_torn(torn, path, len(lines) + 1)
    except DataError:
        raise DataError(
            f"{path}: line {len(lines) + 1} is corrupt (the last line has no newline and is "
            "not the beginning of a preference line)"
        ) from None
    out: list[Preference] = []
    seen: set[tuple[int, int]] = set()
    for n, line in enumerate(lines):
        where = f"{path}: line {n + 1}"
        pref = Preference.from_line(line, discrete, where)
        key = (pref.update, pref.index)
        if key in seen:
            raise DataError(f"{where}: query {pref.index} of update {pref.update} appears twice")
        seen.add(key)
        out.append(pref)
    return out


# ------------------------------------------------------------------------------ sampling
def episode_bounds(batch: RolloutBatch) -> list[tuple[int, int]]:
    """(first row, rows) of every episode in ``batch``."""
    ends = np.flatnonzero(batch.last) + 1
    starts = np.concatenate([[0], ends[:-1]])
    return [(int(s), int(e - s)) for s, e in zip(starts, ends, strict=True)]


def segment_at(batch: RolloutBatch, episode: int, first: int, start: int, length: int) -> Segment:
    """``length`` steps of ``batch``'s episode ``episode`` (its rows begin at ``first``) from
    its step ``start``."""
    rows = slice(first + start, first + start + length)
    actions = np.asarray(batch.actions[rows])
    return Segment(
        obs=np.asarray(batch.obs[rows], np.float32).copy(),
        actions=actions.astype(np.int64 if actions.dtype.kind in "iu" else np.float32),
        next_obs=np.asarray(batch.next_obs[rows], np.float32).copy(),
        done=np.asarray(batch.terminal[rows], bool).copy(),
        true_return=float(np.sum(batch.env_rewards[rows])),
        episode=episode,
        start=start,
    )


def sample_pairs(
    batch: RolloutBatch, n: int, length: int, rng: np.random.Generator
) -> list[tuple[Segment, Segment]]:
    """``n`` pairs of segments of up to ``length`` steps, every window of every episode of
    ``batch`` equally likely (an episode shorter than ``length`` is one window: itself); the
    two of a pair differ whenever the batch has more than one window."""
    bounds = episode_bounds(batch)
    windows = np.array([max(n_steps - length, 0) + 1 for _, n_steps in bounds])
    cum = np.cumsum(windows)
    total = int(cum[-1])

    def window(k: int) -> Segment:
        e = int(np.searchsorted(cum, k, side="right"))
        start = k - (int(cum[e - 1]) if e else 0)
        first, n_steps = bounds[e]
        return segment_at(batch, e, first, start, min(length, n_steps))

    pairs = []
    for _ in range(n):
        a = int(rng.integers(total))
        b = int(rng.integers(total - 1)) if total > 1 else 0
        if total > 1 and b >= a:
            b += 1
        pairs.append((window(a), window(b)))
    return pairs
