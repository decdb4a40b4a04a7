"""Compressed image observations: one zlib stream per frame, an offsets index, lazy row access.

A store whose observations are images (a ``Box`` of uint8 with three dimensions, such as
CarRacing's 96×96×3 frames) keeps them compressed instead of raw::

    obs.bin    every frame compressed on its own (zlib), concatenated
    obs.idx    int64: the end offset in obs.bin of every frame (T+1 per episode)

CarRacing frames are mostly flat colour and compress about 13× (2.0 kB a frame at level 6):
100,000 frames take about 200 MB instead of 2.8 GB. Compressing frames one by one keeps any
frame readable on its own: a training batch decompresses only the rows it samples (about 10,000
frames/s on one core), and never the whole dataset.

:class:`FrameArray` is what ``Store.transitions().obs`` is for such a store: a read-only,
lazy ``(N, H, W, C)`` uint8 array. Indexing it with a slice, an integer array or a boolean mask
gives another ``FrameArray`` (nothing is decompressed); an integer gives one frame;
:meth:`FrameArray.take` (or ``np.asarray``) decompresses. It is safe to read from several
threads: ``zlib.decompress`` releases the GIL, so a prefetch thread decompresses while torch
trains.
"""

from __future__ import annotations

import mmap
import zlib
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from protege.errors import DataError

CODEC = "zlib"
"""The only codec so far: one zlib stream per frame (stdlib, no extra dependency)."""
DEFAULT_LEVEL = 6
"""zlib level. On CarRacing frames: level 1 → 2.6 kB a frame, 3 → 2.4 kB, 6 → 2.0 kB; level 6
compresses about 2,000 frames/s on one core, far faster than the env makes them."""


def is_image_space(space: gym.Space) -> bool:
    """Whether observations of ``space`` are stored compressed by default: uint8 ``(H, W, C)``."""
    return (
        isinstance(space, gym.spaces.Box)
        and len(space.shape) == 3
        and np.dtype(space.dtype) == np.uint8
    )


def compress_frames(frames: np.ndarray, level: int = DEFAULT_LEVEL) -> tuple[bytes, np.ndarray]:
    """Compress each row of ``frames`` on its own: (concatenated bytes, (T,) int64 sizes)."""
    chunks = [zlib.compress(np.ascontiguousarray(f).data, level) for f in frames]
    return b"".join(chunks), np.array([len(c) for c in chunks], np.int64)


class FrameFile:
    """The read side of one ``obs.bin``: a memory map and the start/end offset of each frame.

    Args:
        path: the compressed frames.
        ends: ``(N,)`` int64 end offset of every frame (the ``obs.idx`` values).
        shape: the shape of one frame.
        dtype: the dtype of one frame.
    """

    def __init__(self, path: Path, ends: np.ndarray, shape: tuple[int, ...], dtype: np.dtype):
        self.path = path
        self.ends = np.asarray(ends, np.int64)
        self.starts = np.concatenate([[0], self.ends[:-1]]).astype(np.int64)
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.frame_bytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        size = int(self.ends[-1]) if len(self.ends) else 0
        self._map: mmap.mmap | None = None
        self._view: memoryview | bytes = b""
        if size:
            with open(path, "rb") as f:
                self._map = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ)
            self._view = memoryview(self._map)

    def __len__(self) -> int:
        return len(self.ends)

    def raw(self, start: int, end: int) -> memoryview | bytes:
        """Compressed bytes ``[start, end)`` of the file (zero-copy)."""
        return self._view[start:end]

    def read(self, frames: np.ndarray) -> np.ndarray:
        """Decompress the frames with these indices: ``(*frames.shape, *shape)``.

        Each distinct frame is decompressed once, however often it is asked for (a frame
        stack repeats an episode's first frame; neighbouring samples share frames).
        """
        frames = np.asarray(frames, np.int64)
        out = np.empty((frames.size, *self.shape), self.dtype)
        if frames.size == 0:
            return out.reshape((*frames.shape, *self.shape))
        unique, first, inverse = np.unique(frames.ravel(), return_index=True, return_inverse=True)
        if unique[0] < 0 or unique[-1] >= len(self.ends):
            raise IndexError(f"frame index out of range [0, {len(self.ends)})")
        flat = out.reshape(frames.size, -1).view(np.uint8)
        for k, row in enumerate(unique.tolist()):
            try:
                data = zlib.decompress(self._view[self.starts[row] : self.ends[row]])
            except zlib.error as exc:
                raise DataError(f"{self.path}: frame {row} does not decompress ({exc})") from None
            if len(data) != self.frame_bytes:
                raise DataError(
                    f"{self.path}: frame {row} holds {len(data)} bytes, not {self.frame_bytes}"
                )
            flat[first[k]] = np.frombuffer(data, np.uint8)
        dup = np.flatnonzero(first[inverse] != np.arange(frames.size))
        if dup.size:
            flat[dup] = flat[first[inverse[dup]]]
        return out.reshape((*frames.shape, *self.shape))

    def close(self) -> None:
        if isinstance(self._view, memoryview):
            self._view.release()
        self._view = b""
        if self._map is not None:
            self._map.close()
            self._map = None


class FrameArray:
    """A lazy, read-only ``(N, H, W, C)`` array of compressed frames.

    ``rows`` maps this array's rows to frames of the file. Indexing with a slice, an integer
    array or a boolean mask returns another ``FrameArray`` without decompressing; an integer
    returns one frame (ndarray); ``take(indices)`` and ``np.asarray(frames)`` decompress.

    Example:
        >>> data = Store.open("demos/carracing").transitions()
        >>> data.obs                       # FrameArray(shape=(81234, 96, 96, 3), dtype=uint8)
        >>> batch = data.obs.take(rows)    # (B, 96, 96, 3) uint8, only these rows decompressed
    """

    def __init__(self, file: FrameFile, rows: np.ndarray | None = None):
        self.file = file
        self.rows = np.arange(len(file), dtype=np.int64) if rows is None else rows

    # ------------------------------------------------------------------ array protocol
    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.file.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.file.dtype

    @property
    def ndim(self) -> int:
        return 1 + len(self.file.shape)

    @property
    def nbytes(self) -> int:
        """Bytes the frames would take decompressed."""
        return len(self.rows) * self.file.frame_bytes

    @property
    def compressed_nbytes(self) -> int:
        """Bytes the rows of this array take compressed (repeated rows counted again)."""
        return int((self.file.ends[self.rows] - self.file.starts[self.rows]).sum())

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"FrameArray(shape={self.shape}, dtype={self.dtype}, file={self.file.path})"

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, tuple):
            if not key:
                return self
            head = self[key[0]]
            rest = key[1:]
            if isinstance(head, FrameArray):
                return head.take(np.arange(len(head)))[(slice(None), *rest)]
            return head[rest]
        if isinstance(key, (int, np.integer)):
            return self.file.read(np.array([self.rows[int(key)]]))[0]
        if isinstance(key, slice):
            return FrameArray(self.file, self.rows[key])
        arr = np.asarray(key)
        if arr.dtype == bool:
            if arr.shape != (len(self.rows),):
                raise IndexError(f"boolean index of shape {arr.shape} for {len(self.rows)} rows")
            return FrameArray(self.file, self.rows[arr])
        if arr.dtype.kind in "iu":
            return FrameArray(self.file, self.rows[arr.astype(np.int64)])
        raise IndexError(f"FrameArray cannot be indexed with {key!r}")

    def take(self, indices: np.ndarray) -> np.ndarray:
        """Decompress rows ``indices`` (any shape): ``(*indices.shape, H, W, C)``."""
        return self.file.read(self.rows[np.asarray(indices, np.int64)])

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = self.take(np.arange(len(self.rows)))
        return out if dtype is None else out.astype(dtype, copy=False)

    def __iter__(self) -> Any:
        for i in range(len(self.rows)):
            yield self[i]
