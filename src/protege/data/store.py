"""The on-disk demonstration store: append-only, durable, fast to load.

A store is a directory::

    meta.json          format version, task name, observation and action spaces
    episodes.jsonl     one line per committed episode: length, round, flags, CRC32 per field
    obs.bin            raw rows, T+1 per episode
    actions.bin        labels (expert actions), T per episode
    executed.bin       executed actions, T per episode
    rewards.bin        float32, T per episode
    actor.bin          uint8 (0 expert, 1 learner), T per episode
    labeled.bin        uint8 (1 where ``actions`` holds an expert label), T per episode

**Image observations** (uint8 ``(H, W, C)`` frames) are stored compressed instead (see
:mod:`protege.data.frames`): ``obs.bin`` holds one zlib stream per frame and ``obs.idx`` the
int64 end offset of every frame; the index line adds the episode's compressed size
(``obs_bytes``) and the CRC32 of its ``obs.idx`` rows (``obs_idx_crc``), while its ``obs`` CRC
covers the compressed bytes. Such a store is format version 2 (version 1 readers refuse it
instead of misreading it); every other store is written exactly as before, version 1.
``transitions().obs`` is then a lazy :class:`~protege.data.frames.FrameArray` that decompresses
only the rows a batch asks for.

Appending an episode writes its rows to the ``.bin`` files, fsyncs them, then appends and
fsyncs its index line. An episode exists once its index line does: a crash (even ``kill -9``)
loses at most the episode being written, whose stray bytes are cut off the next time the store
is opened for writing. Loading reads each file with one ``numpy.fromfile`` call and checks
every episode's CRC32 and that its observations, actions and rewards are finite, so corruption
is reported, never trained on.

Example:
    >>> store = Store.create("demos", env.observation_space, env.action_space, task="cartpole")
    >>> store.append(episode)
    >>> data = Store.open("demos").transitions()
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from protege.data.episode import Episode
from protege.data.frames import CODEC, DEFAULT_LEVEL, FrameArray, FrameFile, is_image_space
from protege.data.frames import compress_frames as _compress_frames
from protege.data.spaces import (
    check_rows,
    data_shape_dtype,
    describe_space,
    space_from_json,
    space_to_json,
)
from protege.errors import DataError

FORMAT = "protege-store"
VERSION = 1
COMPRESSED_VERSION = 2
"""Format version of stores whose observations are compressed frames."""
FIELDS = ("obs", "actions", "executed", "rewards", "actor", "labeled")


@dataclass(frozen=True)
class Transitions:
    """Every step of a store, concatenated. N = total steps.

    Arrays are aligned: ``obs[i]`` is the observation at which ``actions[i]`` was labeled.
    """

    obs: np.ndarray
    """(N, *obs_shape); for a store of compressed frames a lazy
    :class:`~protege.data.frames.FrameArray` (index it, then ``take`` or ``np.asarray``)."""
    actions: np.ndarray
    """(N, *act_shape): expert labels (meaningful where ``labeled``)."""
    executed: np.ndarray
    """(N, *act_shape)."""
    rewards: np.ndarray
    """(N,) float32."""
    actor: np.ndarray
    """(N,) uint8."""
    labeled: np.ndarray
    """(N,) bool."""
    episode_starts: np.ndarray
    """(E,) int64: index of each episode's first step."""
    episode_lengths: np.ndarray
    """(E,) int64."""
    rounds: np.ndarray
    """(E,) int64: the round each episode was collected in."""

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def n_labels(self) -> int:
        return int(self.labeled.sum())

    def episode_of_step(self) -> np.ndarray:
        """(N,) int64: the episode index of every step."""
        return np.repeat(np.arange(len(self.episode_lengths)), self.episode_lengths)

    def select_episodes(self, mask: np.ndarray) -> Transitions:
        """The subset made of the episodes where ``mask`` (E,) is true."""
        return self.take_episodes(np.flatnonzero(mask))

    def take_episodes(self, order: np.ndarray) -> Transitions:
        """The episodes ``order`` (indices, repeats allowed), in that order."""
        order = np.asarray(order, np.int64)
        lengths = self.episode_lengths[order].astype(np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        shift = np.repeat(self.episode_starts[order] - starts, lengths)
        steps = np.arange(len(shift)) + shift
        return Transitions(
            obs=self.obs[steps],
            actions=self.actions[steps],
            executed=self.executed[steps],
            rewards=self.rewards[steps],
            actor=self.actor[steps],
            labeled=self.labeled[steps],
            episode_starts=starts,
            episode_lengths=lengths,
            rounds=self.rounds[order],
        )


class Store:
    """A directory of episodes. Create with :meth:`create`, read with :meth:`open`."""

    def __init__(self, path: Path, meta: dict[str, Any], index: list[dict[str, Any]], writable):
        self.path = path
        self.meta = meta
        self._index = index
        self.observation_space = space_from_json(meta["observation_space"], str(path / "meta.json"))
        self.action_space = space_from_json(meta["action_space"], str(path / "meta.json"))
        obs_shape, obs_dtype = data_shape_dtype(self.observation_space)
        act_shape, act_dtype = data_shape_dtype(self.action_space)
        self._layout: dict[str, tuple[tuple[int, ...], np.dtype]] = {
            "obs": (obs_shape, obs_dtype),
            "actions": (act_shape, act_dtype),
            "executed": (act_shape, act_dtype),
            "rewards": ((), np.dtype(np.float32)),
            "actor": ((), np.dtype(np.uint8)),
            "labeled": ((), np.dtype(np.uint8)),
        }
        self.obs_codec: str | None = meta.get("obs_codec")
        """``"zlib"`` if observations are stored as compressed frames, else None."""
        self._level = int(meta.get("obs_codec_level", DEFAULT_LEVEL))
        if self.obs_codec is not None:
            for n, entry in enumerate(index, start=1):
                if not isinstance(entry.get("obs_bytes"), int) or "obs_idx_crc" not in entry:
                    raise DataError(
                        f"{path / 'episodes.jsonl'}: line {n} is corrupt (no frame offsets)"
                    )
        self._lock_fd: int | None = None
        if writable:
            self._lock()
            self._truncate_to_committed()

    # ----------------------------------------------------------------------- construction
    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        observation_space: gym.Space,
        action_space: gym.Space,
        task: str | None = None,
        exist_ok: bool = False,
        compress_obs: bool | None = None,
        compress_level: int = DEFAULT_LEVEL,
    ) -> Store:
        """Create an empty store (or, with ``exist_ok``, open an existing one for appending).

        ``compress_obs``: store observations as compressed frames (None: exactly when they are
        images, uint8 ``(H, W, C)``); ``compress_level`` is the zlib level (1-9).
        """
        path = Path(path)
        if (path / "meta.json").exists():
            if not exist_ok:
                raise DataError(f"{path}: a store already exists here (pass exist_ok to append)")
            store = cls.open(path, writable=True)
            store.check_spaces(observation_space, action_space)
            return store
        if compress_obs is None:
            compress_obs = is_image_space(observation_space)
        if compress_obs and not 1 <= compress_level <= 9:
            raise DataError(f"compress_level must be in 1..9, got {compress_level}")
        path.mkdir(parents=True, exist_ok=True)
        meta: dict[str, Any] = {
            "format": FORMAT,
            "version": COMPRESSED_VERSION if compress_obs else VERSION,
            "task": task,
            "observation_space": space_to_json(observation_space),
            "action_space": space_to_json(action_space),
        }
        if compress_obs:
            meta.update(obs_codec=CODEC, obs_codec_level=int(compress_level))
        for name in FIELDS:
            (path / f"{name}.bin").touch()
        if compress_obs:
            (path / "obs.idx").touch()
        (path / "episodes.jsonl").touch()
        write_atomic(path / "meta.json", json.dumps(meta, indent=2))
        _fsync_dir(path)
        return cls(path, meta, [], writable=True)

    @classmethod
    def open(cls, path: str | os.PathLike, writable: bool = False) -> Store:
        """Open an existing store; raises :class:`DataError` naming the file if it is bad."""
        path = Path(path)
        meta_path = path / "meta.json"
        if not path.exists():
            raise DataError(f"{path}: no such store (the directory does not exist)")
        if not meta_path.exists():
            raise DataError(f"{meta_path}: missing; {path} is not a protege store")
        try:
            meta = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"{meta_path}: corrupt JSON ({exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise DataError(f"{meta_path}: not a protege store (format field is missing)")
        if meta.get("version") not in (VERSION, COMPRESSED_VERSION):
            raise DataError(f"{meta_path}: store version {meta.get('version')}; expected {VERSION}")
        if meta.get("version") == COMPRESSED_VERSION and meta.get("obs_codec") != CODEC:
            raise DataError(f"{meta_path}: unknown observation codec {meta.get('obs_codec')!r}")
        for key in ("observation_space", "action_space"):
            if key not in meta:
                raise DataError(f"{meta_path}: field {key!r} is missing")
        return cls(path, meta, _read_index(path / "episodes.jsonl"), writable)

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    # ----------------------------------------------------------------------------- queries
    @property
    def task(self) -> str | None:
        return self.meta.get("task")

    def __len__(self) -> int:
        return len(self._index)

    @property
    def n_transitions(self) -> int:
        return sum(int(e["length"]) for e in self._index)

    @property
    def n_labels(self) -> int:
        return sum(int(e.get("labels", e["length"])) for e in self._index)

    @property
    def index(self) -> list[dict[str, Any]]:
        """One dict per committed episode (length, round, return, labels, flags)."""
        return [dict(e) for e in self._index]

    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        """Raise a DataError if this store's spaces differ from the given ones."""
        for what, mine, theirs in (
            ("observation", self.observation_space, observation_space),
            ("action", self.action_space, action_space),
        ):
            if space_to_json(mine) != space_to_json(theirs):
                raise DataError(
                    f"{self.path}: the store's {what} space ({describe_space(mine)}) does not "
                    f"match the task's ({describe_space(theirs)})"
                )

    # ----------------------------------------------------------------------------- writing
    def append(self, episode: Episode) -> None:
        """Validate ``episode`` and append it durably."""
        self.extend([episode])

    def extend(self, episodes: Iterable[Episode]) -> None:
        """Append several episodes, each committed (fsynced) before the next is written."""
        if self._lock_fd is None:
            raise DataError(f"{self.path}: opened read-only; use Store.open(path, writable=True)")
        for episode in episodes:
            rows = self._encode(episode, f"{self.path}: episode {len(self)}")
            crcs = []
            frames: dict[str, Any] = {}
            for name in FIELDS:
                if name == "obs" and self.obs_codec is not None:
                    data, sizes = _compress_frames(rows["obs"], self._level)
                    ends = self._obs_bytes_committed() + np.cumsum(sizes)
                    idx = ends.astype("<i8").tobytes()
                    _append_durably(self.path / "obs.idx", idx)
                    frames = {"obs_bytes": len(data), "obs_idx_crc": zlib.crc32(idx)}
                else:
                    data = rows[name].tobytes()
                crcs.append(zlib.crc32(data))
                _append_durably(self.path / f"{name}.bin", data)
            entry = {
                "length": len(episode),
                "round": int(episode.round),
                "terminated": bool(episode.terminated),
                "truncated": bool(episode.truncated),
                "seed": episode.seed,
                "return": episode.episode_return,
                "labels": int(rows["labeled"].sum()),
                "learner_steps": int((rows["actor"] == 1).sum()),
                "crc": crcs,
                **frames,
                **({"extras": episode.extras} if episode.extras else {}),
            }
            # The commit: once this line (with its newline) is on disk, the episode exists.
            _append_durably(self.path / "episodes.jsonl", (json.dumps(entry) + "\n").encode())
            self._index.append(entry)

    def _encode(self, ep: Episode, where: str) -> dict[str, np.ndarray]:
        obs = check_rows(ep.obs, self.observation_space, "observations", where)
        actions = check_rows(ep.actions, self.action_space, "actions", where)
        executed = check_rows(ep.executed_actions, self.action_space, "executed actions", where)
        rewards = np.asarray(ep.rewards, np.float32).reshape(len(ep))
        if not np.all(np.isfinite(rewards)):
            raise DataError(f"{where}: rewards contain NaN or inf")
        return {
            "obs": np.ascontiguousarray(obs),
            "actions": np.ascontiguousarray(actions),
            "executed": np.ascontiguousarray(executed),
            "rewards": rewards,
            "actor": np.asarray(ep.actors, np.uint8),
            "labeled": np.asarray(ep.label_mask, np.uint8),
        }

    # ----------------------------------------------------------------------------- reading
    def _rows_per_episode(self, name: str) -> np.ndarray:
        lengths = np.array([int(e["length"]) for e in self._index], np.int64)
        return lengths + 1 if name == "obs" else lengths

    def _row_bytes(self, name: str) -> int:
        shape, dtype = self._layout[name]
        return int(np.prod(shape, dtype=np.int64)) * dtype.itemsize

    def _obs_bytes_committed(self) -> int:
        return sum(int(e["obs_bytes"]) for e in self._index)

    def _read_frames(self) -> FrameArray:
        """Every committed frame (T+1 per episode) as a lazy array, after checking the
        offsets and the CRC32 of every episode's compressed bytes and offsets."""
        shape, dtype = self._layout["obs"]
        rows = self._rows_per_episode("obs")
        total = int(rows.sum())
        idx_file, obs_file = self.path / "obs.idx", self.path / "obs.bin"
        for file, need in ((idx_file, 8 * total), (obs_file, self._obs_bytes_committed())):
            if not file.exists():
                raise DataError(f"{file}: missing")
            have = file.stat().st_size
            if have < need:
                raise DataError(
                    f"{file}: truncated; episodes.jsonl commits {need} bytes but the file "
                    f"has {have}"
                )
        ends = np.fromfile(idx_file, dtype="<i8", count=total).astype(np.int64)
        bounds = np.concatenate([[0], np.cumsum(rows)])
        byte_end = 0
        for i, entry in enumerate(self._index):
            part = ends[bounds[i] : bounds[i + 1]]
            if zlib.crc32(part.astype("<i8").tobytes()) != entry.get("obs_idx_crc"):
                raise DataError(f"{idx_file}: episode {i} is corrupt (CRC32 mismatch)")
            start, byte_end = byte_end, byte_end + int(entry["obs_bytes"])
            if int(part[-1]) != byte_end or np.any(np.diff(np.concatenate([[start], part])) <= 0):
                raise DataError(f"{idx_file}: episode {i} has inconsistent frame offsets")
        # Plain reads, one episode at a time, not the memory map: checking every byte must
        # not leave the whole file mapped into this process's resident memory.
        with open(obs_file, "rb") as f:
            for i, entry in enumerate(self._index):
                if zlib.crc32(f.read(int(entry["obs_bytes"]))) != entry["crc"][0]:
                    raise DataError(f"{obs_file}: episode {i} is corrupt (CRC32 mismatch)")
        return FrameArray(FrameFile(obs_file, ends, shape, dtype))

    def _committed_bytes(self, name: str) -> int:
        if name == "obs" and self.obs_codec is not None:
            return self._obs_bytes_committed()
        return int(self._rows_per_episode(name).sum()) * self._row_bytes(name)

    def _read_field(self, name: str) -> Any:
        if name == "obs" and self.obs_codec is not None:
            return self._read_frames()
        shape, dtype = self._layout[name]
        file = self.path / f"{name}.bin"
        rows = self._rows_per_episode(name)
        total = int(rows.sum())
        need = total * self._row_bytes(name)
        if not file.exists():
            raise DataError(f"{file}: missing")
        have = file.stat().st_size
        if have < need:
            raise DataError(
                f"{file}: truncated; episodes.jsonl commits {need} bytes but the file has {have}"
            )
        flat = np.fromfile(file, dtype=dtype, count=total * int(np.prod(shape, dtype=np.int64)))
        raw = flat.view(np.uint8)
        col = FIELDS.index(name)
        offsets = np.concatenate([[0], np.cumsum(rows)]) * self._row_bytes(name)
        for i, entry in enumerate(self._index):
            if zlib.crc32(raw[offsets[i] : offsets[i + 1]].data) != entry["crc"][col]:
                raise DataError(f"{file}: episode {i} is corrupt (CRC32 mismatch)")
        values = flat.reshape((total, *shape))
        if dtype.kind == "f":
            _check_finite(values, rows, file)
        return values

    def transitions(self) -> Transitions:
        """Every committed step as one set of aligned arrays (see :class:`Transitions`)."""
        if not self._index:
            raise DataError(f"{self.path}: the store is empty (no committed episodes)")
        fields = {name: self._read_field(name) for name in FIELDS}
        lengths = self._rows_per_episode("actions")
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        # obs has one extra row per episode (the observation after the last step): drop it.
        keep = np.ones(len(fields["obs"]), bool)
        keep[np.cumsum(lengths + 1) - 1] = False
        return Transitions(
            obs=fields["obs"][keep],
            actions=fields["actions"],
            executed=fields["executed"],
            rewards=fields["rewards"],
            actor=fields["actor"],
            labeled=fields["labeled"].astype(bool),
            episode_starts=starts,
            episode_lengths=lengths,
            rounds=np.array([int(e["round"]) for e in self._index], np.int64),
        )

    def episodes(self) -> Iterator[Episode]:
        """Yield the stored episodes, with their final observations."""
        if not self._index:
            return
        fields = {name: self._read_field(name) for name in FIELDS}
        t0 = o0 = 0
        for entry in self._index:
            t = int(entry["length"])
            yield Episode(
                # np.asarray decompresses one episode's frames at a time (a no-op for raw rows)
                obs=np.asarray(fields["obs"][o0 : o0 + t + 1]),
                actions=fields["actions"][t0 : t0 + t],
                rewards=fields["rewards"][t0 : t0 + t],
                terminated=bool(entry["terminated"]),
                truncated=bool(entry["truncated"]),
                executed=fields["executed"][t0 : t0 + t],
                actor=fields["actor"][t0 : t0 + t],
                labeled=fields["labeled"][t0 : t0 + t].astype(bool),
                round=int(entry["round"]),
                seed=entry.get("seed"),
            )
            t0 += t
            o0 += t + 1

    # --------------------------------------------------------------------------- internals
    def _lock(self) -> None:
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataError(f"{self.path}: another process is writing to this store") from None
        self._lock_fd = fd

    def _truncate_to_committed(self) -> None:
        """Cut off the bytes of an episode whose append was interrupted."""
        files = [(self.path / f"{name}.bin", self._committed_bytes(name)) for name in FIELDS]
        if self.obs_codec is not None:
            files.append((self.path / "obs.idx", 8 * int(self._rows_per_episode("obs").sum())))
        for file, need in files:
            size = file.stat().st_size if file.exists() else 0
            if size < need:
                raise DataError(
                    f"{file}: truncated; episodes.jsonl commits {need} bytes but the file "
                    f"has {size}"
                )
            if size > need:
                os.truncate(file, need)
        # An index line cut off by a crash has no newline; rewrite the file without it.
        index_file = self.path / "episodes.jsonl"
        text = index_file.read_bytes()
        if text and not text.endswith(b"\n"):
            keep = text[: text.rfind(b"\n") + 1]
            write_atomic(index_file, keep.decode())


def _check_finite(values: np.ndarray, rows: np.ndarray, file: Path) -> None:
    """Raise a DataError naming ``file``, the episode and its row if ``values`` (every row of
    a float field, ``rows[i]`` of them for episode i) holds NaN or inf.

    Appends refuse such values, so they can only come from a store written by other means
    (a hand-edited file whose CRC32 was recomputed, another tool); a learner must never
    train on them."""
    bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if not bad.any():
        return
    first = int(np.argmax(bad))
    ends = np.cumsum(rows)
    episode = int(np.searchsorted(ends, first, side="right"))
    row = first - (int(ends[episode - 1]) if episode else 0)
    raise DataError(f"{file}: episode {episode} contains NaN or inf (first at row {row})")


def _read_index(file: Path) -> list[dict[str, Any]]:
    if not file.exists():
        raise DataError(f"{file}: missing")
    raw = file.read_bytes()
    lines = raw.split(b"\n")
    # The last element is b"" when the file ends with a newline; otherwise it is a line whose
    # append was interrupted, which is not committed.
    lines = lines[:-1]
    index = []
    for n, line in enumerate(lines, start=1):
        try:
            entry = json.loads(line)
            length = int(entry["length"])
            if length < 1 or len(entry["crc"]) != len(FIELDS):
                raise ValueError("bad length or crc list")
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as e:
            raise DataError(f"{file}: line {n} is corrupt ({e})") from None
        index.append(entry)
    return index


def _append_durably(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a crash leaves the old file or the new, never half."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
