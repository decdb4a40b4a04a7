"""Verify a store episode by episode, and copy its intact episodes into a new store.

:func:`check_store` never stops at the first problem (as loading does): it reports every
index line and every episode — CRC32 of every field and of the frame offsets, frames that
decompress to their size, finite floats, discrete actions in range, label and learner-step
counts and the return against the data. :func:`repair` copies every episode that verifies
into a new store; the original is only read. (``protege info --check`` and ``protege repair``.)

Index lines of format version 3 say where their episode's rows start, so every intact episode
is found even after a corrupt or missing line; in stores of versions 1 and 2 an episode is
located from the lengths of the lines before it, so the episodes after a corrupt line cannot
be recovered.
"""

from __future__ import annotations

import os
import shutil
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import gymnasium as gym
import numpy as np

from protege.data.episode import Episode
from protege.data.files import open_regular, read_bytes, require_size
from protege.data.index import advance_parts, check_torn, read_meta
from protege.data.obs_streams import ObsStream, obs_streams
from protege.data.records import FIELDS, EpisodeRecord, StoreMeta, parse_record
from protege.data.spaces import data_shape_dtype
from protege.errors import DataError


@dataclass
class EpisodeCheck:
    """One line of ``episodes.jsonl`` and the episode it describes."""

    line: int
    """1-based line number."""
    record: EpisodeRecord | None
    """None if the line itself is corrupt (or its episode cannot be located)."""
    problem: str | None = None
    """None when the episode verified."""


@dataclass
class StoreCheck:
    """Everything :func:`check_store` found."""

    path: Path
    meta: StoreMeta | None = None
    episodes: list[EpisodeCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Problems of the store as a whole (meta.json, missing or unreadable files)."""
    notes: list[str] = field(default_factory=list)
    """What is not a problem but worth saying (an interrupted append, no checksums)."""

    @property
    def intact(self) -> list[EpisodeCheck]:
        return [e for e in self.episodes if e.problem is None]

    @property
    def ok(self) -> bool:
        return not self.problems and len(self.intact) == len(self.episodes)


Keep = Callable[[EpisodeRecord, dict[str, Any]], None]


def check_store(path: str | os.PathLike, keep: Keep | None = None) -> StoreCheck:
    """Verify the store at ``path`` line by line and episode by episode (see the module).

    ``keep(record, arrays)`` is called with every episode that verifies, in line order
    (``arrays``: the six fields, frames decompressed)."""
    path = Path(path)
    report = StoreCheck(path)
    try:
        report.meta = meta = read_meta(path)
    except DataError as exc:
        report.problems.append(str(exc))
        return report
    if not meta.checksummed:
        report.notes.append(
            f"format version {meta.version}: meta.json and the index lines carry no checksums "
            "(their fields are validated, not checked against a CRC32)"
        )
    index_file = path / "episodes.jsonl"
    try:
        raw = read_bytes(index_file) if require_size(index_file) else b""
    except DataError as exc:
        report.problems.append(str(exc))
        return report
    lines = raw.split(b"\n")
    torn = lines.pop()
    try:
        check_torn(torn, index_file, len(lines) + 1)
        if torn:
            report.notes.append(
                f"{index_file}: line {len(lines) + 1} is an interrupted append ({len(torn)} "
                "bytes, not committed)"
            )
    except DataError as exc:
        report.problems.append(str(exc))
    with _Reader(path, meta) as reader:
        report.problems.extend(reader.errors)
        _check_lines(report, meta, lines, index_file, reader, keep)
    return report


def _check_lines(
    report: StoreCheck,
    meta: StoreMeta,
    lines: list[bytes],
    index_file: Path,
    reader: _Reader,
    keep: Keep | None,
) -> None:
    compressed = meta.obs_codec is not None
    located = True
    start = obs_start = 0
    parts_start = dict.fromkeys(meta.obs_codec_parts, 0)
    seen: set[int] = set()
    for n, line in enumerate(lines):
        where = f"{index_file}: line {n + 1}"
        if not located:
            report.episodes.append(
                EpisodeCheck(
                    n + 1, None, f"{where}: cannot be located (an earlier line is corrupt)"
                )
            )
            continue
        try:
            if meta.checksummed:
                record = parse_record(line, where, None, meta.version, compressed, parts=meta.parts)
            else:
                record = parse_record(
                    line, where, n, meta.version, compressed, start, obs_start, meta.parts,
                    parts_start,
                )  # fmt: skip
        except DataError as exc:
            report.episodes.append(EpisodeCheck(n + 1, None, str(exc)))
            located = meta.checksummed
            continue
        start += record.length
        obs_start += record.obs_bytes or 0
        advance_parts(parts_start, record)
        if record.number in seen:
            problem: str | None = f"{where}: a second line for episode {record.number}"
            report.episodes.append(EpisodeCheck(n + 1, record, problem))
            continue
        seen.add(record.number)
        try:
            arrays = reader.episode(record)
            problem = None
        except DataError as exc:
            problem = str(exc)
        report.episodes.append(EpisodeCheck(n + 1, record, problem))
        if problem is None and keep is not None:
            keep(record, arrays)


class _Reader:
    """The store's data files, open once, read episode by episode."""

    def __init__(self, path: Path, meta: StoreMeta):
        self.path, self.meta = path, meta
        self.streams = obs_streams(meta)
        act = data_shape_dtype(meta.action_space)
        self.layout = {
            "actions": act,
            "executed": act,
            "rewards": ((), np.dtype(np.float32)),
            "actor": ((), np.dtype(np.uint8)),
            "labeled": ((), np.dtype(np.uint8)),
        }
        self.files: dict[str, IO[bytes]] = {}
        self.errors: list[str] = []
        names = [name for stream in self.streams for name in stream.file_names]
        for name in [*names, *(f"{n}.bin" for n in FIELDS[1:])]:
            try:
                self.files[name] = os.fdopen(open_regular(path / name), "rb")
            except DataError as exc:
                self.errors.append(str(exc))

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        for f in self.files.values():
            f.close()

    def _read(self, name: str, start: int, count: int) -> bytes:
        file = self.path / name
        if name not in self.files:
            raise DataError(f"{file}: missing or unreadable")
        f = self.files[name]
        f.seek(start)
        data = f.read(count)
        if len(data) != count:
            raise DataError(f"{file}: truncated before the end of this episode")
        return data

    def episode(self, rec: EpisodeRecord) -> dict[str, Any]:
        """Every field of episode ``rec``, checked; raises a DataError naming the problem.
        ``"obs"`` is an array, or a dict of them for a store of observation parts."""
        out: dict[str, Any] = {}
        parts = {s.part: self._obs(rec, s) for s in self.streams}
        out["obs"] = parts if self.meta.parts is not None else parts[None]
        for col, name in enumerate(FIELDS[1:], start=1):
            shape, dtype = self.layout[name]
            rows, first = rec.length, rec.start
            row_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            data = self._read(f"{name}.bin", first * row_bytes, rows * row_bytes)
            if zlib.crc32(data) != rec.crc[col]:
                raise DataError(f"{self.path / name}.bin: CRC32 mismatch")
            out[name] = np.frombuffer(data, dtype).reshape((rows, *shape))
        _check_values(out, rec, self.meta.action_space, self.path)
        return out

    def _obs(self, rec: EpisodeRecord, stream: ObsStream) -> np.ndarray:
        """The episode's T+1 rows of one observation stream, checked."""
        if stream.compressed:
            return self._frames(rec, stream)
        rows, size = rec.length + 1, stream.row_bytes
        data = self._read(stream.bin_name, (rec.start + rec.number) * size, rows * size)
        if zlib.crc32(data) != rec.obs_stream(stream.part).crc:
            raise DataError(f"{self.path / stream.bin_name}: CRC32 mismatch")
        return np.frombuffer(data, stream.dtype).reshape((rows, *stream.shape))

    def _frames(self, rec: EpisodeRecord, stream: ObsStream) -> np.ndarray:
        rows, shape, dtype = rec.length + 1, stream.shape, stream.dtype
        bin_file, idx_file = self.path / stream.bin_name, self.path / stream.idx_name
        part = rec.obs_stream(stream.part)
        idx = self._read(stream.idx_name, 8 * (rec.start + rec.number), 8 * rows)
        if zlib.crc32(idx) != part.idx_crc:
            raise DataError(f"{idx_file}: CRC32 mismatch")
        start, size = int(part.start or 0), int(part.nbytes or 0)
        ends = np.frombuffer(idx, "<i8").astype(np.int64)
        bounds = np.concatenate([[start], ends])
        if ends[-1] != start + size or np.any(np.diff(bounds) <= 0):
            raise DataError(f"{idx_file}: inconsistent frame offsets")
        data = self._read(stream.bin_name, start, size)
        if zlib.crc32(data) != part.crc:
            raise DataError(f"{bin_file}: CRC32 mismatch")
        frames = np.empty((rows, *shape), dtype)
        want = frames[0].nbytes
        for i in range(rows):
            try:
                frame = zlib.decompress(data[bounds[i] - start : bounds[i + 1] - start])
            except zlib.error as exc:
                raise DataError(f"{bin_file}: frame {i} does not decompress ({exc})") from None
            if len(frame) != want:
                raise DataError(f"{bin_file}: frame {i} has {len(frame)} bytes, not {want}")
            frames[i] = np.frombuffer(frame, dtype).reshape(shape)
        return frames


def _check_values(
    out: dict[str, Any], rec: EpisodeRecord, action_space: gym.Space, path: Path
) -> None:
    obs = out["obs"]
    named = {f"obs.{k}": v for k, v in obs.items()} if isinstance(obs, dict) else {"obs": obs}
    for name, values in {**named, **out}.items():
        if isinstance(values, dict):
            continue
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise DataError(f"{path / name}.bin: contains NaN or inf")
    if isinstance(action_space, gym.spaces.Discrete):
        lo, hi = int(action_space.start), int(action_space.start + action_space.n)
        for name in ("actions", "executed"):
            if np.any((out[name] < lo) | (out[name] >= hi)):
                raise DataError(f"{path / name}.bin: actions outside [{lo}, {hi})")
    for name, count in (("actor", rec.learner_steps), ("labeled", rec.labels)):
        if out[name].max() > 1 or int(out[name].sum()) != count:
            raise DataError(f"{path / name}.bin: does not match the index line ({count} ones)")
    total = float(np.sum(out["rewards"], dtype=np.float64))
    if abs(total - rec.episode_return) > 1e-9 * float(np.abs(out["rewards"]).sum()) + 1e-12:
        raise DataError(f"{path / 'rewards.bin'}: rewards sum to {total!r}, not the return")


def repair(source: str | os.PathLike, out: str | os.PathLike) -> StoreCheck:
    """Copy every episode of ``source`` that verifies into a new store at ``out`` (format
    version 3, same task, spaces and codec), in line order; ``source`` is only read. An
    imported store's ``source.json`` (the dataset's original names, for export) comes along.

    Returns the check of ``source`` (which episodes were copied, which not, and why)."""
    from protege.data.interop import SOURCE_FILE
    from protege.data.store import Store

    meta = read_meta(Path(source))
    store = Store.create(
        out,
        meta.observation_space,
        meta.action_space,
        task=meta.task,
        compress_obs=meta.obs_codec is not None,
        compress_level=meta.obs_codec_level or 6,
    )

    def keep(rec: EpisodeRecord, a: dict[str, Any]) -> None:
        store.append(
            Episode(
                obs=a["obs"],
                actions=a["actions"],
                rewards=a["rewards"],
                terminated=rec.terminated,
                truncated=rec.truncated,
                executed=a["executed"],
                actor=a["actor"],
                labeled=a["labeled"].astype(bool),
                round=rec.round,
                seed=rec.seed,
                extras=dict(rec.extras),
            )
        )

    if (Path(source) / SOURCE_FILE).exists():
        shutil.copyfile(Path(source) / SOURCE_FILE, Path(out) / SOURCE_FILE)
    with store:
        return check_store(source, keep)
