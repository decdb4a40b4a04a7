"""LeRobotDataset v3.0, read and written with pyarrow (and PyAV for videos).

The layout (as LeRobot 0.4 writes it)::

    meta/info.json                          codebase_version "v3.0", fps, features (dtype,
                                            shape, names), path templates, totals
    meta/stats.json                         per feature: min, max, mean, std, count, q01..q99
    meta/tasks.parquet                      task text (the pandas index) → task_index
    meta/episodes/chunk-000/file-000.parquet  one row per episode: length, tasks, where its
                                            frames are (data and video files, indices,
                                            timestamps), its stats (``stats/<feature>/<stat>``)
    data/chunk-000/file-000.parquet         one row per frame: the features, timestamp,
                                            frame_index, episode_index, index, task_index
    videos/<feature>/chunk-000/file-000.mp4 frames of a "video" feature, episodes one after
                                            another

An "image" feature is a PNG per frame inside the data parquet (``{bytes, path}``); a "video"
feature is frames of an mp4 file, located by the episode's ``from_timestamp`` plus the frame's
``timestamp``. Rewards and terminal flags use LeRobot's ``next.reward`` (float32) and
``next.done`` (bool) features. See :mod:`protege.data.external` for part names and the final
observation; :mod:`protege.data.lerobot_write` writes the layout.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from protege.data.episode import Episode
from protege.data.external import ExternalDataset, LazyEpisodes, action_space_of, choose_parts
from protege.errors import DataError

CODEBASE_VERSION = "v3.0"
DEFAULT_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")
"""The bookkeeping features every LeRobot dataset has, besides its own."""
REWARD, DONE = "next.reward", "next.done"


def part_name(key: str, taken: set[str]) -> str:
    """The protege part name of the LeRobot feature ``key`` (``observation.images.top`` →
    ``top``); the longer ``images.top`` if the short one is ``taken``."""
    rest = key.removeprefix("observation.")
    short = rest.removeprefix("images.")
    return short if short not in taken else rest


def feature_key(part: str, image: bool) -> str:
    """The LeRobot feature name a part without a recorded name is written as."""
    if not image or part == "image":
        return f"observation.{part}"
    return f"observation.images.{part}"


# ===================================================================================== read
def read_lerobot(root: str | os.PathLike, parts: list[str] | None = None) -> ExternalDataset:
    """Read the LeRobotDataset v3.0 at ``root`` (a local directory; nothing is downloaded).

    Every episode's observation parts are the ``observation.*`` features (state vectors as
    float32, images and video frames as uint8 (H, W, C)); ``parts`` keeps only those named
    (part or feature names). Actions are ``action``; rewards ``next.reward`` (zeros without
    it); ``terminated`` is the last ``next.done`` (without it, episodes are truncated).

    The metadata is read and checked now; the episodes are loaded when indexed or iterated
    (:class:`~protege.data.external.LazyEpisodes`), so datasets larger than memory stream.
    Raises a DataError naming the file that is missing or malformed.
    """
    root = Path(root)
    info = _read_info(root)
    features: dict[str, Any] = info["features"]
    obs_keys = [k for k in features if k.startswith("observation.")]
    if "action" not in features:
        raise DataError(f"{root / 'meta/info.json'}: no 'action' feature")
    if not obs_keys:
        raise DataError(f"{root / 'meta/info.json'}: no 'observation.*' feature")
    available: dict[str, str] = {}
    for key in obs_keys:
        available[part_name(key, set(available))] = key
    keys = choose_parts(available, parts, str(root))
    episodes_meta = _read_episodes_meta(root)
    tasks = _read_tasks(root)
    loader = _Loader(root, info, keys)
    action_space = action_space_of(loader.all_actions(episodes_meta))  # reads every data file
    loader.check_videos(episodes_meta)
    task_texts = []
    for meta in episodes_meta:
        ep_tasks = list(meta.get("tasks") or [])
        task_texts.append(str(ep_tasks[0]) if ep_tasks else (tasks[0] if tasks else ""))
    names = {p: features[k].get("names") for p, k in keys.items()}
    names["action"] = features["action"].get("names")
    ignored = sorted(set(features) - {*obs_keys, "action", REWARD, DONE, *DEFAULT_FEATURES})
    notes = [f"features not imported: {', '.join(ignored)}"] if ignored else []
    fps = info.get("fps")
    return ExternalDataset(
        episodes=LazyEpisodes(len(episodes_meta), lambda i: loader.load(episodes_meta[i])),
        keys=keys,
        names=names,
        fps=int(fps) if fps is not None else None,
        tasks=task_texts,
        info={"robot_type": info.get("robot_type")},
        notes=notes,
        parts={p: _part_spec(features[k]) for p, k in keys.items()},
        action_space=action_space,
    )


def _part_spec(ft: dict[str, Any]) -> tuple[tuple[int, ...], np.dtype]:
    shape = tuple(ft["shape"])
    if ft["dtype"] in ("image", "video"):
        if ft.get("names") == ["channels", "height", "width"]:
            shape = (shape[1], shape[2], shape[0])
        return shape, np.dtype(np.uint8)
    return shape, np.dtype(np.float32)


class _Loader:
    """Loads episodes, keeping the current data file and one open video per camera."""

    def __init__(self, root: Path, info: dict[str, Any], keys: dict[str, str]):
        self.root, self.info, self.keys = root, info, keys
        self.features: dict[str, Any] = info["features"]
        self.fps = float(info.get("fps") or 30)
        self._file: dict[str, Any] = {}
        self._videos: dict[str, Any] = {}

    def _data_file(self, meta: dict[str, Any], columns: list[str]) -> dict[str, Any]:
        import pyarrow.parquet as pq

        chunk, file = int(meta["data/chunk_index"]), int(meta["data/file_index"])
        path = self.root / self.info["data_path"].format(chunk_index=chunk, file_index=file)
        if self._file.get("path") != path or not set(columns) <= self._file["columns"]:
            if not path.is_file():
                raise DataError(f"{path}: data file not found")
            try:
                parquet = pq.ParquetFile(path)
                names = parquet.schema_arrow.names
                missing = [c for c in ("action", "episode_index", "frame_index") if c not in names]
                if missing:
                    raise DataError(f"{path}: no column {missing[0]!r}")
                table = parquet.read(columns=[c for c in columns if c in names])
            except DataError:
                raise
            except Exception as exc:  # pyarrow raises several types for a bad file
                raise DataError(f"{path}: not a readable parquet file ({exc})") from None
            self._file = {"path": path, "table": table, "columns": set(columns)}
        return self._file

    def all_actions(self, episodes_meta: list[dict[str, Any]]) -> np.ndarray:
        """Every episode's actions, concatenated (the action column only: cheap)."""
        out = []
        for meta in episodes_meta:
            file = self._data_file(meta, ["action", "episode_index", "frame_index"])
            rows = _episode_rows(file, int(meta["episode_index"]), int(meta["length"]))
            out.append(self._actions(rows, file["path"]))
        return np.concatenate(out)

    def check_videos(self, episodes_meta: list[dict[str, Any]]) -> None:
        """Open every video file the episodes use: each exists and has a decodable codec."""
        from protege.data.video_io import VideoReader

        for key in self.keys.values():
            if self.features[key]["dtype"] == "video":
                for path in dict.fromkeys(self._video_path(key, meta) for meta in episodes_meta):
                    VideoReader(path).close()

    def _video_path(self, key: str, meta: dict[str, Any]) -> Path:
        try:
            chunk = int(meta[f"videos/{key}/chunk_index"])
            file = int(meta[f"videos/{key}/file_index"])
        except (KeyError, TypeError, ValueError):
            raise DataError(
                f"{self.root / 'meta/episodes'}: episode {meta['episode_index']} has no video "
                f"location for {key!r}"
            ) from None
        return self.root / self.info["video_path"].format(
            video_key=key, chunk_index=chunk, file_index=file
        )

    def _actions(self, rows: dict[str, Any], path: Path) -> np.ndarray:
        ft = self.features["action"]
        actions = _to_numpy(rows["action"], ft, path, "action")
        if actions.dtype.kind == "f":
            return actions.astype(np.float32)
        if actions.dtype.kind in "iu" and tuple(ft["shape"]) == (1,):
            return actions.reshape(-1).astype(np.int64)
        raise DataError(f"{path}: actions of dtype {actions.dtype}; expected floats or integers")

    def load(self, meta: dict[str, Any]) -> Episode:
        """The episode ``meta`` (a row of the episodes metadata) describes."""
        stored = [k for k in self.keys.values() if self.features[k]["dtype"] != "video"]
        columns = [*stored, "action", REWARD, DONE, "episode_index", "frame_index", "timestamp"]
        file = self._data_file(meta, columns)
        path = file["path"]
        rows = _episode_rows(file, int(meta["episode_index"]), int(meta["length"]))
        obs: dict[str, np.ndarray] = {}
        for name, key in self.keys.items():
            ft = self.features[key]
            if ft["dtype"] == "video":
                frames = self._video_frames(key, meta, rows)
            elif ft["dtype"] == "image":
                frames = _decode_images(rows[key], path, key)
            else:
                frames = _to_numpy(rows[key], ft, path, key).astype(np.float32)
            obs[name] = np.concatenate([frames, frames[-1:]])  # final obs: repeat the last
        actions = self._actions(rows, path)
        t = len(actions)
        rewards = np.zeros(t, np.float32)
        if REWARD in rows:
            rewards = _to_numpy(rows[REWARD], self.features[REWARD], path, REWARD)
            rewards = rewards.reshape(t).astype(np.float32)
        done = False
        if DONE in rows:
            done = bool(_to_numpy(rows[DONE], self.features[DONE], path, DONE).reshape(t)[-1])
        return Episode(obs, actions, rewards, terminated=done, truncated=not done)

    def _video_frames(self, key: str, meta: dict[str, Any], rows: dict[str, Any]) -> np.ndarray:
        """One episode's frames of the video feature ``key``, found by timestamp."""
        from protege.data.video_io import VideoReader

        path = self._video_path(key, meta)
        try:
            start = float(meta[f"videos/{key}/from_timestamp"])
        except (KeyError, TypeError, ValueError):
            raise DataError(
                f"{self.root / 'meta/episodes'}: episode {meta['episode_index']} has no "
                f"from_timestamp for {key!r}"
            ) from None
        reader = self._videos.get(key)
        if reader is None or reader.path != path:
            if reader is not None:
                reader.close()
            reader = self._videos[key] = VideoReader(path)
        if "timestamp" in rows:
            stamps = np.asarray(rows["timestamp"].to_numpy(), np.float64)
        else:
            stamps = np.arange(int(meta["length"])) / self.fps
        return reader.frames_at(start + stamps, tolerance=0.25 / self.fps)


def _read_info(root: Path) -> dict[str, Any]:
    path = root / "meta" / "info.json"
    if not path.is_file():
        raise DataError(f"{path}: not found; {root} is not a LeRobotDataset v3.0 directory")
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable JSON ({exc})") from None
    if not isinstance(info, dict):
        raise DataError(f"{path}: expected a JSON object")
    version = info.get("codebase_version")
    if not (isinstance(version, str) and version.startswith("v3.")):
        raise DataError(
            f"{path}: codebase_version {version!r}; protege reads LeRobotDataset v3.0 (convert "
            "older datasets with LeRobot's v2.1 → v3.0 script)"
        )
    for field, kind in (("features", dict), ("data_path", str)):
        if not isinstance(info.get(field), kind):
            raise DataError(f"{path}: field {field!r} missing or not a {kind.__name__}")
    for key, ft in info["features"].items():
        if not (isinstance(ft, dict) and isinstance(ft.get("dtype"), str)):
            raise DataError(f"{path}: feature {key!r} has no dtype")
        if not (isinstance(ft.get("shape"), list) and all(isinstance(d, int) for d in ft["shape"])):
            raise DataError(f"{path}: feature {key!r} has no shape")
    if any(ft["dtype"] == "video" for ft in info["features"].values()) and not isinstance(
        info.get("video_path"), str
    ):
        raise DataError(f"{path}: video features but no video_path template")
    return info


def _read_episodes_meta(root: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    files = sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    if not files:
        raise DataError(f"{root / 'meta/episodes'}: no chunk-*/file-*.parquet episode files")
    rows: list[dict[str, Any]] = []
    for file in files:
        try:
            table = pq.read_table(file)
        except Exception as exc:
            raise DataError(f"{file}: not a readable parquet file ({exc})") from None
        needed = ["episode_index", "length", "data/chunk_index", "data/file_index"]
        missing = [c for c in needed if c not in table.column_names]
        if missing:
            raise DataError(f"{file}: missing columns {missing}")
        keep = [c for c in table.column_names if not c.startswith("stats/")]
        rows.extend(table.select(keep).to_pylist())
    return sorted(rows, key=lambda r: int(r["episode_index"]))


def _read_tasks(root: Path) -> list[str]:
    import pyarrow.parquet as pq

    path = root / "meta" / "tasks.parquet"
    if not path.is_file():
        return []
    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise DataError(f"{path}: not a readable parquet file ({exc})") from None
    text = next((c for c in ("task", "__index_level_0__") if c in table.column_names), None)
    if text is None or "task_index" not in table.column_names:
        raise DataError(f"{path}: expected columns task_index and the task text")
    order = np.argsort(table.column("task_index").to_numpy())
    texts = table.column(text).to_pylist()
    return [str(texts[i]) for i in order]


def _episode_rows(file: dict[str, Any], episode: int, length: int) -> dict[str, Any]:
    """The columns of one episode's frames, in frame order."""
    import pyarrow.compute as pc

    table = file["table"]
    if "index_of" not in file:  # rows of each episode, computed once per file
        eps = table.column("episode_index").to_numpy()
        file["index_of"] = {int(e): np.flatnonzero(eps == e) for e in np.unique(eps)}
    idx = file["index_of"].get(episode)
    if idx is None or len(idx) != length:
        found = 0 if idx is None else len(idx)
        raise DataError(
            f"{file['path']}: episode {episode} has {found} frames; the episodes metadata "
            f"says {length}"
        )
    sub = table.take(idx)
    order = pc.sort_indices(sub.column("frame_index"))
    sub = sub.take(order)
    return {name: sub.column(name) for name in sub.column_names}


def _to_numpy(column: Any, feature: dict[str, Any], path: Path, key: str) -> np.ndarray:
    """A (T, *shape) array from a parquet column of scalars or (nested) lists."""
    import pyarrow as pa

    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    while (
        pa.types.is_list(arr.type)
        or pa.types.is_fixed_size_list(arr.type)
        or (pa.types.is_large_list(arr.type))
    ):
        arr = arr.flatten()
    values = np.asarray(arr.to_numpy(zero_copy_only=False))
    shape = tuple(feature["shape"])
    if values.size != n * int(np.prod(shape)):
        raise DataError(f"{path}: column {key!r} does not hold {n} rows of shape {shape}")
    return values.reshape(n, *shape)


def _decode_images(column: Any, path: Path, key: str) -> np.ndarray:
    from PIL import Image

    frames = []
    for i, cell in enumerate(column.to_pylist()):
        data = cell.get("bytes") if isinstance(cell, dict) else None
        if not data:
            raise DataError(f"{path}: {key!r} frame {i} has no embedded image bytes")
        try:
            with Image.open(io.BytesIO(data)) as img:
                frame = np.asarray(img.convert("RGB") if img.mode not in ("RGB", "L") else img)
        except Exception as exc:  # PIL raises several types for bad bytes
            raise DataError(f"{path}: {key!r} frame {i} is not a readable image ({exc})") from None
        frames.append(frame[..., None] if frame.ndim == 2 else frame)
    return np.stack(frames).astype(np.uint8)
