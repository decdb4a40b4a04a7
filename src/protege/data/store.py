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

**Observation parts** (a ``Dict`` observation space: state vectors and camera images, see
:mod:`protege.data.obs`): each part has its own files, ``obs.NAME.bin`` (and ``obs.NAME.idx``
for a part stored as compressed frames, by default the images); see
:mod:`protege.data.obs_streams`. ``transitions().obs`` is then a dict of parts.

**Checks.** Opening a store validates ``meta.json`` and every index line field by field (type
and range) and against their own CRC32 (format version 3; stores of versions 1 and 2 are read
without those checksums); loading checks every episode's CRC32 per field, that float fields are
finite, discrete actions in range and the index's label counts match the data. Only regular
files are read: a FIFO, a directory or a symlink loop where a file should be is refused.

**Durability.** Appending an episode writes its rows to the ``.bin`` files, fsyncs them, then
appends and fsyncs its index line. An episode exists once its index line does: a crash (even
``kill -9``) loses at most the episode being written. :meth:`Store.append_group` commits
several episodes with one fsync per file (a group commit, :mod:`protege.data.store_commit`):
a crash then loses at most that group. Opening a store for writing first
verifies every committed episode; only then are the stray bytes of an interrupted append cut
off. A store that does not verify is never modified: the error says how to recover its intact
episodes (``protege info --check``, ``protege repair``; :mod:`protege.data.repair`). Creating a
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
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from protege.data import obs_streams, store_commit
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
from protege.data.frames import CODEC, DEFAULT_LEVEL, FrameArray, is_image_space
from protege.data.index import read_index as _read_index
from protege.data.index import read_meta
from protege.data.obs import as_numpy, n_rows, part_spaces, take
from protege.data.records import (
    FIELDS,
    VERSION,
    EpisodeRecord,
    StoreMeta,
    parse_meta,
)
from protege.data.spaces import (
    data_shape_dtype,
    describe_space,
    space_to_json,
)
from protege.data.transitions import Transitions
from protege.data.validate import check_counts, check_finite, check_range, check_returns
from protege.errors import DataError

RECOVER = (
    "nothing was changed; `protege info --check {path}` reports every episode and "
    "`protege repair {path} --out NEWDIR` copies the intact ones into a new store"
)
"""The advice a refused store's error ends with (``{path}`` filled in)."""


class Store:
    """A directory of episodes. Create with :meth:`create`, read with :meth:`open`."""

    def __init__(
        self, path: Path, meta: StoreMeta, index: list[EpisodeRecord], lock_fd: int | None = None
    ):
        self.path = path
        """The store's directory."""
        self.meta = meta
        """The validated ``meta.json``."""
        self._index = index
        self._lock_fd = lock_fd
        self.observation_space = meta.observation_space
        """The observation space every episode's observations are in."""
        self.action_space = meta.action_space
        """The action space of the labels and executed actions."""
        self._streams = obs_streams.obs_streams(meta)
        act_shape, act_dtype = data_shape_dtype(self.action_space)
        first = self._streams[0]
        self._layout: dict[str, tuple[tuple[int, ...], np.dtype]] = {
            # "obs": the one observation array's row (a store of parts has a stream per part)
            **({"obs": (first.shape, first.dtype)} if first.part is None else {}),
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
        images, uint8 ``(H, W, C)``); ``compress_level`` is the zlib level (1-9). With a
        ``Dict`` observation space (parts), None or True compress the image parts, False none.

        The store is built in a private directory next to ``path`` and renamed into place
        (``path`` must not exist or be an empty directory): of several processes creating
        the same store, one wins and the others get a DataError (or, with ``exist_ok``, open
        the winner's store, which refuses a second writer).
        """
        path = Path(path)
        if file_size(path / "meta.json") is not None:
            return cls._existing(path, observation_space, action_space, exist_ok)
        coded: tuple[str, ...] = ()
        if isinstance(observation_space, gym.spaces.Dict):
            parts = part_spaces(observation_space, f"{path}: observation space")
            if compress_obs is not False:
                coded = tuple(n for n, sub in parts.items() if is_image_space(sub))
            compress_obs = bool(coded)
        elif compress_obs is None:
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
            coded,
        )
        text = json.dumps(meta.to_json(), indent=2)
        parse_meta(text.encode(), f"{path / 'meta.json'}")  # only what a reader accepts
        streams = obs_streams.obs_streams(meta)
        names = [f"{name}.bin" for name in FIELDS[1:]]
        names += [name for stream in streams for name in stream.file_names]
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
        """Release the write lock (a store opened for reading holds none); ``with`` does it."""
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
        """The name of the task the store was collected on (None if not recorded)."""
        return self.meta.task

    def __len__(self) -> int:
        return len(self._index)

    @property
    def n_transitions(self) -> int:
        """Steps over all committed episodes."""
        return sum(e.length for e in self._index)

    @property
    def n_labels(self) -> int:
        """Labelled steps (expert labels) over all committed episodes."""
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
        self.append_group([episode])

    def extend(self, episodes: Iterable[Episode]) -> None:
        """Append several episodes, each committed (fsynced) before the next is written."""
        self._require_writable()
        for episode in episodes:
            self.append_group([episode])

    def append_group(self, episodes: Sequence[Episode]) -> None:
        """Append ``episodes`` as one group commit (:mod:`protege.data.store_commit`): all
        validated before anything is written, each file fsynced once for the group, then
        their index lines written and fsynced at once. They count (``len``, :attr:`index`)
        only once all are on disk; a crash loses at most this group's episodes."""
        self._require_writable()
        group = store_commit.encode(
            self.path, self.meta, self._streams, self._level, self._index, episodes
        )
        store_commit.write(self.path, group, _append_durably)
        self._index.extend(group.records)

    def _require_writable(self) -> None:
        if self._lock_fd is None:
            raise DataError(f"{self.path}: opened read-only; use Store.open(path, writable=True)")

    # ----------------------------------------------------------------------------- reading
    def _rows_per_episode(self, name: str) -> np.ndarray:
        lengths = np.array([e.length for e in self._index], np.int64)
        return lengths + 1 if name == "obs" else lengths

    def _row_bytes(self, name: str) -> int:
        shape, dtype = self._layout[name]
        return int(np.prod(shape, dtype=np.int64)) * dtype.itemsize

    def _committed_files(self) -> list[tuple[Path, int]]:
        """Every data file and the bytes its committed episodes take."""
        files = [
            (self.path / name, size)
            for stream in self._streams
            for name, size in obs_streams.committed_files(stream, self._index)
        ]
        for name in FIELDS[1:]:
            need = int(self._rows_per_episode(name).sum()) * self._row_bytes(name)
            files.append((self.path / f"{name}.bin", need))
        return files

    def _read_obs(self) -> Any:
        """Every committed observation (T+1 per episode): an array (a lazy FrameArray for
        compressed frames), or a dict of them for a store of parts."""
        read = [obs_streams.read(self.path, s, self._index) for s in self._streams]
        if self.meta.parts is None:
            return read[0]
        return {s.part: values for s, values in zip(self._streams, read, strict=True)}

    def _read_field(self, name: str) -> Any:
        if name == "obs":
            return self._read_obs()
        shape, dtype = self._layout[name]
        file = self.path / f"{name}.bin"
        rows = self._rows_per_episode(name)
        total = int(rows.sum())
        obs_streams.check_size(file, total * self._row_bytes(name))
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
        keep = np.ones(n_rows(fields["obs"]), bool)
        keep[np.cumsum(lengths + 1) - 1] = False
        return Transitions(
            obs=take(fields["obs"], keep),
            actions=fields["actions"],
            executed=fields["executed"],
            rewards=fields["rewards"],
            actor=fields["actor"],
            labeled=fields["labeled"].astype(bool),
            episode_starts=starts,
            episode_lengths=lengths,
            rounds=np.array([e.round for e in self._index], np.int64),
            final_obs=take(fields["obs"], ~keep),
            terminated=np.array([e.terminated for e in self._index], bool),
            success=np.array([e.extras.get("success", np.nan) for e in self._index], float),
        )

    def episodes(self) -> Iterator[Episode]:
        """Yield the stored episodes, with their final observations and extras."""
        if not self._index:
            return
        fields = self._read_fields()
        t0 = o0 = 0
        for entry in self._index:
            t = entry.length
            yield Episode(
                # as_numpy decompresses one episode's frames at a time (a no-op for raw rows)
                obs=as_numpy(take(fields["obs"], slice(o0, o0 + t + 1))),
                actions=fields["actions"][t0 : t0 + t],
                rewards=fields["rewards"][t0 : t0 + t],
                terminated=entry.terminated,
                truncated=entry.truncated,
                executed=fields["executed"][t0 : t0 + t],
                actor=fields["actor"][t0 : t0 + t],
                labeled=fields["labeled"][t0 : t0 + t].astype(bool),
                round=entry.round,
                seed=entry.seed,
                extras=dict(entry.extras),
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
                obs = self._read_fields()["obs"]
                for values in obs.values() if isinstance(obs, dict) else [obs]:
                    if isinstance(values, FrameArray):
                        values.file.close()
            files = self._committed_files()
            for file, need in files:
                obs_streams.check_size(file, need)
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
