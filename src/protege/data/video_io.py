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


def decode_video(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Every frame of the first video stream of ``path``: ((N, H, W, 3) uint8 RGB, (N,) seconds).

    Raises a DataError naming the file if it is missing or cannot be decoded.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: video file not found")
    frames, times = [], []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{path}: no video stream")
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                times.append(float(frame.time) if frame.time is not None else np.nan)
    except (av.FFmpegError, ValueError) as exc:
        raise DataError(f"{path}: cannot decode the video ({exc})") from None
    if not frames:
        raise DataError(f"{path}: cannot decode the video (no frames decoded)")
    return np.stack(frames), np.asarray(times, np.float64)
