"""Camera frames to and from mp4 video with PyAV (which bundles FFmpeg with its codecs).

Writing uses H.264 (libx264) or AV1 (SVT-AV1) in yuv420p, a keyframe every 2 frames (cheap
seeking, as LeRobot writes); the chroma planes are subsampled, so decoded pixels are close
to, not equal to, what was written. Reading decodes any codec FFmpeg has a decoder for (AV1
with dav1d, H.264, HEVC, VP9...).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from protege.errors import DataError

ENCODERS = {"h264": "libx264", "av1": "libsvtav1"}
"""Video codec (as LeRobot's ``video.codec`` names it) → the FFmpeg encoder protege uses."""

_OPTIONS = {"h264": {"crf": "18", "g": "2"}, "av1": {"crf": "30", "g": "2", "preset": "8"}}


class VideoWriter:
    """Append uint8 RGB frames (each (H, W, 3), H and W even) to one mp4 file; frame i is shown
    at i / fps seconds. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: str | os.PathLike, fps: int, codec: str = "h264"):
        import av

        if codec not in ENCODERS:
            raise DataError(f"unknown video codec {codec!r}; expected one of {sorted(ENCODERS)}")
        # SVT-AV1 logs its configuration to stderr unless told otherwise (1: errors only).
        os.environ.setdefault("SVT_LOG", "1")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps, self.codec = int(fps), codec
        self.n_frames = 0
        """Frames written so far."""
        self.n_bytes = 0
        """Bytes of encoded video muxed so far."""
        self._container: Any = av.open(str(self.path), "w", format="mp4")
        self._stream: Any = None

    def add(self, frames: Iterable[np.ndarray]) -> None:
        """Encode ``frames`` after those already written."""
        import av

        for frame in frames:
            if self._stream is None:
                self._open_stream(frame.shape)
            elif frame.shape != (self._stream.height, self._stream.width, 3):
                raise DataError(
                    f"{self.path}: a frame of shape {frame.shape} after frames of "
                    f"shape {(self._stream.height, self._stream.width, 3)}"
                )
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            video_frame.pts, video_frame.time_base = self.n_frames, Fraction(1, self.fps)
            self._mux(self._stream.encode(video_frame))
            self.n_frames += 1

    def _open_stream(self, shape: tuple[int, ...]) -> None:
        if len(shape) != 3 or shape[2] != 3 or shape[0] % 2 or shape[1] % 2:
            raise DataError(
                f"{self.path}: frames of shape {shape} cannot be written as yuv420p video (it "
                "needs RGB frames of even height and width); keep the images in the parquet "
                "files instead"
            )
        self._stream = self._container.add_stream(ENCODERS[self.codec], rate=self.fps)
        self._stream.height, self._stream.width = shape[:2]
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = dict(_OPTIONS[self.codec])

    def _mux(self, packets: list[Any]) -> None:
        self.n_bytes += sum(p.size for p in packets)
        self._container.mux(packets)

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        if self._container is None:
            return
        if self._stream is not None:
            self._mux(self._stream.encode(None))
        self._container.close()
        self._container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VideoReader:
    """Frames of the first video stream of an mp4 (or any container FFmpeg reads), fetched by
    time: :meth:`frames_at` seeks to the keyframe before the first time asked for and decodes
    only up to the last, so one episode of a long file is read without the others.

    Raises a DataError naming the file if it is missing or cannot be decoded.
    """

    def __init__(self, path: str | os.PathLike):
        import av

        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: video file not found")
        try:
            self._container: Any = av.open(str(self.path))
        except (av.FFmpegError, ValueError) as exc:
            raise DataError(f"{self.path}: cannot decode the video ({exc})") from None
        if not self._container.streams.video:
            self.close()
            raise DataError(f"{self.path}: cannot decode the video (no video stream)")
        self._stream = self._container.streams.video[0]
        if self._stream.codec_context is None:
            self.close()
            raise DataError(
                f"{self.path}: cannot decode the video (this FFmpeg has no decoder for its codec)"
            )

    def frames_at(self, times: np.ndarray, tolerance: float) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB: the frame shown at each of ``times`` (seconds, ascending),
        which must be within ``tolerance`` of a frame's presentation time."""
        import av

        times = np.asarray(times, np.float64)
        first, last = float(times.min()) - tolerance, float(times.max()) + tolerance
        frames, shown = [], []
        try:
            base = self._stream.time_base
            offset = max(0, int(first / base)) if base else 0
            self._container.seek(offset, stream=self._stream, backward=True)
            for frame in self._container.decode(self._stream):
                t = frame.time
                if t is None or t < first:
                    continue
                if t > last:
                    break
                frames.append(frame.to_ndarray(format="rgb24"))
                shown.append(float(t))
        except (av.FFmpegError, ValueError) as exc:
            raise DataError(f"{self.path}: cannot decode the video ({exc})") from None
        if not frames:
            raise DataError(
                f"{self.path}: cannot decode the video (no frame between {first:.4f} s and "
                f"{last:.4f} s)"
            )
        order = np.argsort(shown, kind="stable")  # decoders give presentation order; be sure
        at = np.asarray(shown)[order]
        frames = [frames[i] for i in order]
        after = np.searchsorted(at, times)
        lo, hi = np.clip(after - 1, 0, len(at) - 1), np.clip(after, 0, len(at) - 1)
        nearest = np.where(np.abs(at[lo] - times) <= np.abs(at[hi] - times), lo, hi)
        off = np.abs(at[nearest] - times)
        if np.any(off > tolerance):
            i = int(np.argmax(off > tolerance))
            raise DataError(
                f"{self.path}: no frame at {times[i]:.4f} s (the nearest is at "
                f"{at[nearest[i]]:.4f} s)"
            )
        return np.stack(frames)[nearest]

    def close(self) -> None:
        """Close the file."""
        self._container.close()
