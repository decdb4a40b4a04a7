"""The on-disk demonstration store: append-only, durable, checked, fast to load.

A store is a directory::

    meta.json          format version, task, observation and action spaces, codec; its CRC32
    episodes.jsonl     one line per committed episode (an :class:`EpisodeRecord`): number,
                       first step, length, round, flags, CRC32 per field, the line's CRC32
    obs.bin            raw rows, T+1 per episode
    actions.bin        labels (expert actions), T per episode
    executed.bin       executed actions, T per episode
    rewards.bin        float32, T per episode
    actor.bin          uint8 (0 expert, 1 learner), T per episode
    labeled.bin        uint8 (1 where ``actions`` holds an expert label), T per episode

**Image observations** (uint8 ``(H, W, C)`` frames) are stored compressed instead (see
:mod:`protege.data.frames`): ``obs.bin`` holds one zlib stream per frame and ``obs.idx`` the
int64 end offset of every frame; the index line adds where the episode's frames start in
``obs.bin`` (``obs_start``), their compressed size (``obs_bytes``) and the CRC32 of its
``obs.idx`` rows (``obs_idx_crc``), while its ``obs`` CRC covers the compressed bytes.
``transitions().obs`` is then a lazy :class:`~protege.data.frames.FrameArray` that decompresses
only the rows a batch asks for.

**Checks.** Opening a store validates ``meta.json`` and every index line field by field (type
and range) and against their own CRC32 (format version 3; stores of versions 1 and 2 are read
without those checksums); loading checks every episode's CRC32 per field, that float fields are
finite, discrete actions in range and the index's label counts match the data. Only regular
files are read: a FIFO, a directory or a symlink loop where a file should be is refused.

**Durability.** Appending an episode writes its rows to the ``.bin`` files, fsyncs them, then
appends and fsyncs its index line. An episode exists once its index line does: a crash (even
``kill -9``) loses at most the episode being written. Opening a store for writing first
verifies every committed episode; only then are the stray bytes of an interrupted append cut
off. A store that does not verify is never modified: the error says how to recover its intact
episodes (``protege info --check``, ``protege repair``; :mod:`protege.data.check`). Creating a
store builds it in a private directory and renames it into place, so of two processes creating
the same store one wins and the other gets a DataError.

Example:
    >>> store = Store.create("demos", env.observation_space, env.action_space, task="cartpole")
    >>> store.append(episode)
    >>> data = Store.open("demos").transitions()
"""

from __future__ import annotations

import contextlib
import json
import os
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from protege.data.episode import Episode
from protege.data.files import append_durably as _append_durably
from protege.data.files import (
    create_dir,
    file_size,
    lock_dir,
    open_regular,
    read_bytes,
    require_size,
    write_atomic,
)
from protege.data.frames import CODEC, DEFAULT_LEVEL, FrameArray, FrameFile, is_image_space
from protege.data.frames import compress_frames as _compress_frames
from protege.data.index import read_index as _read_index
from protege.data.index import read_meta
from protege.data.records import (
    FIELDS,
    VERSION,
    EpisodeRecord,
    StoreMeta,
    check_extras,
    parse_meta,
    parse_record,
)
from protege.data.spaces import check_rows, data_shape_dtype, describe_space, space_to_json
from protege.data.transitions import Transitions
from protege.data.validate import check_counts, check_finite, check_range, check_returns
from protege.errors import DataError

RECOVER = (
    "nothing was changed; `protege info --check {path}` reports every episode and "
    "`protege repair {path} --out NEWDIR` copies the intact ones into a new store"
)


class Store:
    """A directory of episodes. Create with :meth:`create`, read with :meth:`open`."""

    def __init__(
        self, path: Path, meta: StoreMeta, index: list[EpisodeRecord], lock_fd: int | None = None
    ):
        self.path = path
        self.meta = meta
        """The validated ``meta.json``."""
        self._index = index
        self._lock_fd = lock_fd
        self.observation_space = meta.observation_space
        self.action_space = meta.action_space
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
        self.obs_codec: str | None = meta.obs_codec
        """``"zlib"`` if observations are stored as compressed frames, else None."""
        self._level = meta.obs_codec_level or DEFAULT_LEVEL

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

        The store is built in a private directory next to ``path`` and renamed into place
        (``path`` must not exist or be an empty directory): of several processes creating
        the same store, one wins and the others get a DataError (or, with ``exist_ok``, open
        the winner's store, which refuses a second writer).
        """
        path = Path(path)
        if file_size(path / "meta.json") is not None:
            return cls._existing(path, observation_space, action_space, exist_ok)
        if compress_obs is None:
            compress_obs = is_image_space(observation_space)
        if compress_obs and not 1 <= compress_level <= 9:
            raise DataError(f"compress_level must be in 1..9, got {compress_level}")
        meta = StoreMeta(
            VERSION,
            task,
            observation_space,
            action_space,
            CODEC if compress_obs else None,
            int(compress_level) if compress_obs else None,
        )
        text = json.dumps(meta.to_json(), indent=2)
        parse_meta(text.encode(), f"{path / 'meta.json'}")  # only what a reader accepts
        names = [f"{name}.bin" for name in FIELDS] + ["obs.idx"] * bool(compress_obs)
        try:
            empty = dict.fromkeys([*names, "episodes.jsonl"], "")
            lock_fd = create_dir(path, empty, "meta.json", text)
        except FileExistsError:
            if file_size(path / "meta.json") is None:
                raise DataError(f"{path}: another process is creating a store here") from None
            return cls._existing(path, observation_space, action_space, exist_ok)
        return cls(path, meta, [], lock_fd)

    @classmethod
    def _existing(
        cls, path: Path, observation_space: gym.Space, action_space: gym.Space, exist_ok: bool
    ) -> Store:
        if not exist_ok:
            raise DataError(f"{path}: a store already exists here (pass exist_ok to append)")
        store = cls.open(path, writable=True)
        try:
            store.check_spaces(observation_space, action_space)
        except DataError:
            store.close()
            raise
        return store

    @classmethod
    def open(cls, path: str | os.PathLike, writable: bool = False) -> Store:
        """Open an existing store; raises :class:`DataError` naming the file if it is bad.

        For writing (``writable``), every committed episode is verified first (as
        :meth:`transitions` does) and only then are the bytes of an interrupted append cut
        off; a store that does not verify is refused and left untouched."""
        path = Path(path)
        meta = read_meta(path)
        lock_fd = lock_dir(path) if writable else None
        try:
            try:
                index = _read_index(path / "episodes.jsonl", meta)
            except DataError as exc:
                raise DataError(
                    f"{exc}; {RECOVER.format(path=path)}" if writable else exc
                ) from None
            store = cls(path, meta, index, lock_fd)
            if writable:
                store._verify_for_writing()
        except BaseException:
            if lock_fd is not None:
                os.close(lock_fd)
            raise
        return store

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
        return self.meta.task

    def __len__(self) -> int:
        return len(self._index)

    @property
    def n_transitions(self) -> int:
        return sum(e.length for e in self._index)

    @property
    def n_labels(self) -> int:
        return sum(e.labels for e in self._index)

    @property
    def index(self) -> list[EpisodeRecord]:
        """One validated record per committed episode, in store order."""
        return list(self._index)

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
            where = f"{self.path}: episode {len(self)}"
            rows = self._encode(episode, where)
            data = {name: rows[name].tobytes() for name in FIELDS}
            frames: dict[str, Any] = {}
            idx = b""
            if self.obs_codec is not None:
                obs_start = self._obs_bytes_committed()
                data["obs"], sizes = _compress_frames(rows["obs"], self._level)
                idx = (obs_start + np.cumsum(sizes)).astype("<i8").tobytes()
                frames = {
                    "obs_start": obs_start,
                    "obs_bytes": len(data["obs"]),
                    "obs_idx_crc": zlib.crc32(idx),
                }
            record = EpisodeRecord(
                number=len(self),
                start=self.n_transitions,
                length=len(episode),
                round=int(episode.round),
                terminated=bool(episode.terminated),
                truncated=bool(episode.truncated),
                seed=episode.seed,
                episode_return=episode.episode_return,
                labels=int(rows["labeled"].sum()),
                learner_steps=int((rows["actor"] == 1).sum()),
                crc=tuple(zlib.crc32(data[name]) for name in FIELDS),
                extras=check_extras(dict(episode.extras), f"{where}: extras"),
                **frames,
            )
            line = record.to_line(self.meta.version)
            # Only what a reader accepts is written (round ≥ 0, a finite return, ...).
            parse_record(
                line[:-1], f"{where}", len(self), self.meta.version, self.obs_codec is not None
            )
            if idx:
                _append_durably(self.path / "obs.idx", idx)
            for name in FIELDS:
                _append_durably(self.path / f"{name}.bin", data[name])
            # The commit: once this line (with its newline) is on disk, the episode exists.
            _append_durably(self.path / "episodes.jsonl", line)
            self._index.append(record)

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
        lengths = np.array([e.length for e in self._index], np.int64)
        return lengths + 1 if name == "obs" else lengths

    def _row_bytes(self, name: str) -> int:
        shape, dtype = self._layout[name]
        return int(np.prod(shape, dtype=np.int64)) * dtype.itemsize

    def _obs_bytes_committed(self) -> int:
        return sum(int(e.obs_bytes or 0) for e in self._index)

    def _check_size(self, file: Path, need: int) -> None:
        have = require_size(file)
        if have < need:
            raise DataError(
                f"{file}: truncated; episodes.jsonl commits {need} bytes but the file has {have}"
            )

    def _read_frames(self) -> FrameArray:
        """Every committed frame (T+1 per episode) as a lazy array, after checking the
        offsets and the CRC32 of every episode's compressed bytes and offsets."""
        shape, dtype = self._layout["obs"]
        rows = self._rows_per_episode("obs")
        total = int(rows.sum())
        idx_file, obs_file = self.path / "obs.idx", self.path / "obs.bin"
        self._check_size(idx_file, 8 * total)
        self._check_size(obs_file, self._obs_bytes_committed())
        ends = np.frombuffer(read_bytes(idx_file, 0, 8 * total), dtype="<i8").astype(np.int64)
        bounds = np.concatenate([[0], np.cumsum(rows)])
        for i, entry in enumerate(self._index):
            part = ends[bounds[i] : bounds[i + 1]]
            if zlib.crc32(part.astype("<i8").tobytes()) != entry.obs_idx_crc:
                raise DataError(f"{idx_file}: episode {i} is corrupt (CRC32 mismatch)")
            start = int(entry.obs_start or 0)
            end = start + int(entry.obs_bytes or 0)
            if int(part[-1]) != end or np.any(np.diff(np.concatenate([[start], part])) <= 0):
                raise DataError(f"{idx_file}: episode {i} has inconsistent frame offsets")
        # Plain reads, one episode at a time, not the memory map: checking every byte must
        # not leave the whole file mapped into this process's resident memory.
        fd = open_regular(obs_file)
        with os.fdopen(fd, "rb") as f:
            for i, entry in enumerate(self._index):
                if zlib.crc32(f.read(int(entry.obs_bytes or 0))) != entry.crc[0]:
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
        self._check_size(file, total * self._row_bytes(name))
        fd = open_regular(file)
        with os.fdopen(fd, "rb") as f:
            flat = np.fromfile(f, dtype=dtype, count=total * int(np.prod(shape, dtype=np.int64)))
        raw = flat.view(np.uint8)
        col = FIELDS.index(name)
        offsets = np.concatenate([[0], np.cumsum(rows)]) * self._row_bytes(name)
        for i, entry in enumerate(self._index):
            if zlib.crc32(raw[offsets[i] : offsets[i + 1]].data) != entry.crc[col]:
                raise DataError(f"{file}: episode {i} is corrupt (CRC32 mismatch)")
        values = flat.reshape((total, *shape))
        if dtype.kind == "f":
            check_finite(values, rows, file)
        elif name in ("actions", "executed") and isinstance(self.action_space, gym.spaces.Discrete):
            check_range(values, rows, file, self.action_space)
        elif name in ("actor", "labeled"):
            counts = [e.labels if name == "labeled" else e.learner_steps for e in self._index]
            check_counts(values, rows, file, counts)
        return values

    def _read_fields(self) -> dict[str, Any]:
        fields = {name: self._read_field(name) for name in FIELDS}
        check_returns(fields["rewards"], self._index, self.path / "rewards.bin")
        return fields

    def transitions(self) -> Transitions:
        """Every committed step as one set of aligned arrays (see :class:`Transitions`)."""
        if not self._index:
            raise DataError(f"{self.path}: the store is empty (no committed episodes)")
        fields = self._read_fields()
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
            rounds=np.array([e.round for e in self._index], np.int64),
            final_obs=fields["obs"][~keep],
            terminated=np.array([e.terminated for e in self._index], bool),
        )

    def episodes(self) -> Iterator[Episode]:
        """Yield the stored episodes, with their final observations."""
        if not self._index:
            return
        fields = self._read_fields()
        t0 = o0 = 0
        for entry in self._index:
            t = entry.length
            yield Episode(
                # np.asarray decompresses one episode's frames at a time (a no-op for raw rows)
                obs=np.asarray(fields["obs"][o0 : o0 + t + 1]),
                actions=fields["actions"][t0 : t0 + t],
                rewards=fields["rewards"][t0 : t0 + t],
                terminated=entry.terminated,
                truncated=entry.truncated,
                executed=fields["executed"][t0 : t0 + t],
                actor=fields["actor"][t0 : t0 + t],
                labeled=fields["labeled"][t0 : t0 + t].astype(bool),
                round=entry.round,
                seed=entry.seed,
            )
            t0 += t
            o0 += t + 1

    # --------------------------------------------------------------------------- internals
    def _verify_for_writing(self) -> None:
        """Check every committed episode, then cut off what an interrupted append left.

        Nothing is cut unless everything before it verified: a store that does not verify
        (a corrupt line, a CRC32 mismatch, a file shorter than its index says) is refused,
        untouched, with the way to recover its intact episodes."""
        try:
            if self._index:
                fields = self._read_fields()
                if isinstance(fields["obs"], FrameArray):
                    fields["obs"].file.close()
            files = [(self.path / f"{name}.bin", self._committed_bytes(name)) for name in FIELDS]
            if self.obs_codec is not None:
                files.append((self.path / "obs.idx", 8 * int(self._rows_per_episode("obs").sum())))
            for file, need in files:
                self._check_size(file, need)
        except DataError as exc:
            raise DataError(f"{exc}; {RECOVER.format(path=self.path)}") from None
        self._truncate_to_committed(files)

    def _truncate_to_committed(self, files: list[tuple[Path, int]]) -> None:
        """Cut off the bytes of an episode whose append was interrupted (only ever called
        once every committed episode has verified)."""
        for file, need in files:
            if require_size(file) > need:
                os.truncate(file, need)
        # An index line cut off by a crash has no newline; rewrite the file without it.
        index_file = self.path / "episodes.jsonl"
        text = read_bytes(index_file)
        if text and not text.endswith(b"\n"):
            keep = text[: text.rfind(b"\n") + 1]
            write_atomic(index_file, keep.decode())
