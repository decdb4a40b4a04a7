"""The observation files of a store: one stream for a Box store, one per part for parts.

A store of one observation array keeps it in ``obs.bin`` (raw rows, or compressed frames with
their offsets in ``obs.idx``, see :mod:`protege.data.frames`). A store whose observation space
is a ``Dict`` of parts (:mod:`protege.data.obs`) keeps each part in its own files,
``obs.NAME.bin`` (and ``obs.NAME.idx`` for a part stored as compressed frames: by default the
camera images, uint8 ``(H, W, C)``). Its index lines carry each part's CRC32 (and, for frames,
where its bytes start, how many and the CRC32 of its offsets) under ``"obs_parts"``;
``meta.json`` names the compressed parts (``"obs_codec_parts"``).

:class:`ObsStream` describes one stream; :func:`encode` turns an episode's observations
into the bytes each file gets, and :func:`read` loads every committed row of a stream,
checked against the index (sizes, CRC32 per episode, frame offsets, finite floats).
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from protege.data.files import open_regular, read_bytes, require_size
from protege.data.frames import FrameArray, FrameFile, compress_frames
from protege.data.records import EpisodeRecord, PartRecord, StoreMeta, parts_crc
from protege.data.spaces import data_shape_dtype
from protege.data.validate import check_finite
from protege.errors import DataError


@dataclass(frozen=True)
class ObsStream:
    """One observation stream of a store: the ``obs`` of a Box store (``part`` None) or one
    part of a store of parts."""

    part: str | None
    shape: tuple[int, ...]
    dtype: np.dtype
    compressed: bool

    @property
    def stem(self) -> str:
        return "obs" if self.part is None else f"obs.{self.part}"

    @property
    def bin_name(self) -> str:
        return f"{self.stem}.bin"

    @property
    def idx_name(self) -> str:
        return f"{self.stem}.idx"

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    @property
    def file_names(self) -> list[str]:
        return [self.bin_name] + [self.idx_name] * self.compressed


def obs_streams(meta: StoreMeta) -> list[ObsStream]:
    """The observation streams of a store with this ``meta.json``, in part order."""
    parts = meta.parts
    if parts is None:
        shape, dtype = data_shape_dtype(meta.observation_space)
        return [ObsStream(None, shape, dtype, meta.obs_codec is not None)]
    spaces = meta.observation_space.spaces  # type: ignore[attr-defined]
    return [ObsStream(name, *data_shape_dtype(spaces[name]), c) for name, c in parts.items()]


def committed_obs_bytes(stream: ObsStream, index: list[EpisodeRecord]) -> int:
    """Bytes the committed episodes take in the stream's ``.bin`` file."""
    if stream.compressed:
        return sum(int(e.obs_stream(stream.part).nbytes or 0) for e in index)
    return sum(e.length + 1 for e in index) * stream.row_bytes


def committed_files(stream: ObsStream, index: list[EpisodeRecord]) -> list[tuple[str, int]]:
    """(file name, committed bytes) of each of the stream's files."""
    files = [(stream.bin_name, committed_obs_bytes(stream, index))]
    if stream.compressed:
        files.append((stream.idx_name, 8 * sum(e.length + 1 for e in index)))
    return files


@dataclass
class Encoded:
    """One episode's observations as the store writes them."""

    data: dict[str, bytes]
    """File name → the bytes appended to it."""
    crc: int
    """The index line's ``obs`` CRC32."""
    record: dict[str, Any]
    """The index line's other observation fields (``obs_start``... or ``obs_parts``)."""


def encode(streams: list[ObsStream], rows: Any, level: int, index: list[EpisodeRecord]) -> Encoded:
    """The bytes and index fields of an episode's observations ``rows`` (an array, or a
    dict of parts, each already checked and cast to its storage dtype)."""
    data: dict[str, bytes] = {}
    parts: dict[str, PartRecord] = {}
    for s in streams:
        values = rows if s.part is None else rows[s.part]
        if s.compressed:
            start = committed_obs_bytes(s, index)
            blob, sizes = compress_frames(values, level)
            idx = (start + np.cumsum(sizes)).astype("<i8").tobytes()
            data[s.bin_name], data[s.idx_name] = blob, idx
            part = PartRecord(zlib.crc32(blob), start, len(blob), zlib.crc32(idx))
        else:
            data[s.bin_name] = np.ascontiguousarray(values).tobytes()
            part = PartRecord(zlib.crc32(data[s.bin_name]))
        parts[s.part or ""] = part
    if streams[0].part is None:
        p = parts[""]
        if p.nbytes is None:
            return Encoded(data, p.crc, {})
        fields = {"obs_start": p.start, "obs_bytes": p.nbytes, "obs_idx_crc": p.idx_crc}
        return Encoded(data, p.crc, fields)
    return Encoded(data, parts_crc(parts), {"obs_parts": parts})


def read(path: Path, stream: ObsStream, index: list[EpisodeRecord]) -> np.ndarray | FrameArray:
    """Every committed row of the stream (T+1 per episode), checked: the file sizes, each
    episode's CRC32 (and, for frames, its offsets), finite floats. Compressed frames come
    back as a lazy :class:`FrameArray`."""
    rows = np.array([e.length + 1 for e in index], np.int64)
    if stream.compressed:
        return _read_frames(path, stream, index, rows)
    file = path / stream.bin_name
    total = int(rows.sum())
    check_size(file, total * stream.row_bytes)
    fd = open_regular(file)
    with os.fdopen(fd, "rb") as f:
        count = total * int(np.prod(stream.shape, dtype=np.int64))
        flat = np.fromfile(f, dtype=stream.dtype, count=count)
    raw = flat.view(np.uint8)
    offsets = np.concatenate([[0], np.cumsum(rows)]) * stream.row_bytes
    for i, entry in enumerate(index):
        if zlib.crc32(raw[offsets[i] : offsets[i + 1]].data) != entry.obs_stream(stream.part).crc:
            raise DataError(f"{file}: episode {i} is corrupt (CRC32 mismatch)")
    values = flat.reshape((total, *stream.shape))
    if stream.dtype.kind == "f":
        check_finite(values, rows, file)
    return values


def check_size(file: Path, need: int) -> None:
    """Raise a DataError if ``file`` is shorter than the ``need`` bytes the index commits."""
    have = require_size(file)
    if have < need:
        raise DataError(
            f"{file}: truncated; episodes.jsonl commits {need} bytes but the file has {have}"
        )


def _read_frames(
    path: Path, stream: ObsStream, index: list[EpisodeRecord], rows: np.ndarray
) -> FrameArray:
    total = int(rows.sum())
    idx_file, obs_file = path / stream.idx_name, path / stream.bin_name
    check_size(idx_file, 8 * total)
    check_size(obs_file, committed_obs_bytes(stream, index))
    ends = np.frombuffer(read_bytes(idx_file, 0, 8 * total), dtype="<i8").astype(np.int64)
    bounds = np.concatenate([[0], np.cumsum(rows)])
    for i, entry in enumerate(index):
        rec = entry.obs_stream(stream.part)
        part = ends[bounds[i] : bounds[i + 1]]
        if zlib.crc32(part.astype("<i8").tobytes()) != rec.idx_crc:
            raise DataError(f"{idx_file}: episode {i} is corrupt (CRC32 mismatch)")
        start = int(rec.start or 0)
        end = start + int(rec.nbytes or 0)
        if int(part[-1]) != end or np.any(np.diff(np.concatenate([[start], part])) <= 0):
            raise DataError(f"{idx_file}: episode {i} has inconsistent frame offsets")
    # Plain reads, one episode at a time, not the memory map: checking every byte must
    # not leave the whole file mapped into this process's resident memory.
    fd = open_regular(obs_file)
    with os.fdopen(fd, "rb") as f:
        for i, entry in enumerate(index):
            rec = entry.obs_stream(stream.part)
            if zlib.crc32(f.read(int(rec.nbytes or 0))) != rec.crc:
                raise DataError(f"{obs_file}: episode {i} is corrupt (CRC32 mismatch)")
    return FrameArray(FrameFile(obs_file, ends, stream.shape, stream.dtype))
