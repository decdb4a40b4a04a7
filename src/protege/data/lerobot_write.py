"""Write protege episodes as a LeRobotDataset v3.0 (layout: :mod:`protege.data.lerobot_io`).

Everything LeRobot writes is written: ``meta/info.json`` (with the same fields and feature
descriptions), ``meta/stats.json``, ``meta/tasks.parquet`` (task text as the pandas index),
``meta/episodes/...parquet`` (locations and per-episode stats), the data parquet files (one
row group per episode, the Hugging Face ``datasets`` feature description in the schema
metadata) and, for ``video``, one mp4 per camera and file. Files roll over at LeRobot's
default sizes (100 MB of data, 200 MB of video per file; 1000 files per chunk).
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from protege import __version__
from protege.data.external import ExternalDataset, check_parts, is_image
from protege.data.lerobot_io import CODEBASE_VERSION, DONE, REWARD, feature_key
from protege.data.lerobot_stats import aggregate_stats, feature_stats
from protege.errors import DataError

DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
CHUNKS_SIZE, DATA_MB, VIDEO_MB = 1000, 100, 200
_SCALAR = {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64"} | {
    "index": "int64",
    "task_index": "int64",
}


def write_lerobot(
    data: ExternalDataset,
    out: str | os.PathLike,
    video: str | None = None,
    robot_type: str | None = None,
) -> Path:
    """Write ``data`` as a LeRobotDataset v3.0 in the new directory ``out``; returns it.

    ``video``: None keeps camera images as PNGs in the parquet files (lossless); "h264" or
    "av1" encodes them as mp4 video (smaller, lossy: pixels come back close, not equal).
    Frames 0..T-1 of each episode are written (the final observation is dropped). If writing
    fails part way, what was written is removed.
    """
    from protege.data.video_io import ENCODERS

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out}: already exists and is not empty")
    if video is not None and video not in ENCODERS:
        raise DataError(f"unknown video codec {video!r}; expected one of {sorted(ENCODERS)}")
    if not len(data.episodes):
        raise DataError(f"{out}: no episodes to write")
    existed = out.exists()
    try:
        _write(data, out, video, robot_type)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        if existed:
            out.mkdir()
        raise
    return out


def _write(data: ExternalDataset, out: Path, video: str | None, robot_type: str | None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from protege.data.video_io import VideoWriter

    fps = int(data.fps or 30)
    features = _features(data, video, fps)
    keys = {p: k for k, p in _part_of_key(data).items()}
    images = [k for k, ft in features.items() if ft["dtype"] in ("image", "video")]
    videos = [k for k in images if features[k]["dtype"] == "video"]
    schema = _arrow_schema(features)
    task_list = list(dict.fromkeys(data.tasks or ["protege"]))

    out.mkdir(parents=True, exist_ok=True)
    data_at, data_bytes, writer = (0, 0), 0, None
    video_at: dict[str, tuple[int, int]] = {k: (0, 0) for k in videos}
    video_writers: dict[str, Any] = {}
    episode_rows: list[dict[str, Any]] = []
    all_stats: list[dict[str, dict[str, Any]]] = []
    index = 0
    try:
        for e, ep in enumerate(data.episodes):
            check_parts(ep, data.parts, f"{out}: episode {e}")
            t = len(ep)
            task = data.tasks[e] if e < len(data.tasks) else task_list[0]
            columns = _episode_columns(ep, keys, features, index, e, task_list.index(task), fps)
            if writer is not None and data_bytes > DATA_MB * 2**20:
                writer.close()
                writer, data_at, data_bytes = None, _next(data_at), 0
            if writer is None:
                path = out / DATA_PATH.format(chunk_index=data_at[0], file_index=data_at[1])
                path.parent.mkdir(parents=True, exist_ok=True)
                writer = pq.ParquetWriter(path, schema)
            table = pa.table(
                {k: _arrow_column(columns[k], features[k]) for k in schema.names},
                schema=schema,
            )
            writer.write_table(table)
            data_bytes += table.nbytes
            row: dict[str, Any] = {
                "episode_index": e,
                "tasks": [task],
                "length": t,
                "data/chunk_index": data_at[0],
                "data/file_index": data_at[1],
                "dataset_from_index": index,
                "dataset_to_index": index + t,
            }
            for key in videos:
                vw = video_writers.get(key)
                if vw is not None and vw.n_bytes > VIDEO_MB * 2**20:
                    vw.close()
                    vw, video_at[key] = None, _next(video_at[key])
                if vw is None:
                    chunk, file = video_at[key]
                    path = out / VIDEO_PATH.format(
                        video_key=key, chunk_index=chunk, file_index=file
                    )
                    vw = video_writers[key] = VideoWriter(path, fps, video or "h264")
                start = vw.n_frames / fps
                vw.add(columns[key])
                row[f"videos/{key}/chunk_index"] = video_at[key][0]
                row[f"videos/{key}/file_index"] = video_at[key][1]
                row[f"videos/{key}/from_timestamp"] = start
                row[f"videos/{key}/to_timestamp"] = start + t / fps
            stats = {k: feature_stats(np.asarray(columns[k]), k in images) for k in features}
            for k, st in stats.items():
                row.update({f"stats/{k}/{name}": v for name, v in st.items()})
            row["meta/episodes/chunk_index"], row["meta/episodes/file_index"] = 0, 0
            episode_rows.append(row)
            all_stats.append(stats)
            index += t
    finally:
        if writer is not None:
            writer.close()
        for vw in video_writers.values():
            vw.close()

    (out / "meta" / "episodes" / "chunk-000").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(episode_rows), out / EPISODES_PATH)
    _write_tasks(out / "meta" / "tasks.parquet", task_list)
    stats = {k: aggregate_stats([s[k] for s in all_stats]) for k in features}
    (out / "meta" / "stats.json").write_text(json.dumps(stats, indent=4))
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type or data.info.get("robot_type"),
        "total_episodes": len(data.episodes),
        "total_frames": index,
        "total_tasks": len(task_list),
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": DATA_MB,
        "video_files_size_in_mb": VIDEO_MB,
        "fps": fps,
        "splits": {"train": f"0:{len(data.episodes)}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if videos else None,
        "features": features,
    }
    (out / "meta" / "info.json").write_text(json.dumps(info, indent=4))


def _next(at: tuple[int, int]) -> tuple[int, int]:
    chunk, file = at
    return (chunk + 1, 0) if file + 1 >= CHUNKS_SIZE else (chunk, file + 1)


def _part_of_key(data: ExternalDataset) -> dict[str, str]:
    """LeRobot feature name → part name, for every part."""
    out = {}
    for part, (shape, dtype) in data.parts.items():
        key = data.keys.get(part) or feature_key(part, is_image(shape, dtype))
        if not key.startswith("observation."):
            key = feature_key(part, is_image(shape, dtype))  # e.g. a robomimic name
        out[key] = part
    return out


def _features(data: ExternalDataset, video: str | None, fps: int) -> dict[str, Any]:
    """info.json's ``features``: the parts, action, reward, done and the bookkeeping ones."""
    features: dict[str, Any] = {}
    parts = data.parts
    for key, part in _part_of_key(data).items():
        shape, dtype = parts[part]
        if is_image(shape, dtype):
            features[key] = {"dtype": "video" if video else "image", "shape": list(shape)}
            features[key]["names"] = ["height", "width", "channels"]
            if video:
                features[key]["info"] = {
                    "video.height": shape[0],
                    "video.width": shape[1],
                    "video.codec": video,
                    "video.pix_fmt": "yuv420p",
                    "video.is_depth_map": False,
                    "video.fps": fps,
                    "video.channels": shape[2],
                    "has_audio": False,
                }
        else:
            names = data.names.get(part) or [f"{part}_{i}" for i in range(int(np.prod(shape)))]
            features[key] = {"dtype": "float32", "shape": list(shape), "names": names}
    space = data.action_space
    if space is None:
        first = data.episodes[0].actions
        discrete, act_shape = first.dtype.kind in "iu", list(first.shape[1:])
    else:
        discrete, act_shape = isinstance(space, gym.spaces.Discrete), list(space.shape or ())
    if discrete:
        features["action"] = {"dtype": "int64", "shape": [1], "names": None}
    else:
        names = data.names.get("action") or [f"action_{i}" for i in range(int(np.prod(act_shape)))]
        features["action"] = {"dtype": "float32", "shape": act_shape, "names": names}
    features[REWARD] = {"dtype": "float32", "shape": [1], "names": None}
    features[DONE] = {"dtype": "bool", "shape": [1], "names": None}
    for key, scalar in _SCALAR.items():
        features[key] = {"dtype": scalar, "shape": [1], "names": None}
    return features


def _episode_columns(
    ep: Any, keys: dict[str, str], features: dict[str, Any], start: int, e: int, task: int, fps: int
) -> dict[str, Any]:
    t = len(ep)
    done = np.zeros(t, bool)
    done[-1] = bool(ep.terminated)
    cols: dict[str, Any] = {key: np.asarray(ep.obs[part][:t]) for part, key in keys.items()}
    cols["action"] = np.asarray(ep.actions)
    cols[REWARD] = np.asarray(ep.rewards, np.float32)
    cols[DONE] = done
    cols["timestamp"] = (np.arange(t) / fps).astype(np.float32)
    cols["frame_index"] = np.arange(t, dtype=np.int64)
    cols["episode_index"] = np.full(t, e, np.int64)
    cols["index"] = np.arange(start, start + t, dtype=np.int64)
    cols["task_index"] = np.full(t, task, np.int64)
    return cols


def _hf_feature(ft: dict[str, Any]) -> dict[str, Any]:
    """The Hugging Face ``datasets`` description of a feature (schema metadata)."""
    if ft["dtype"] == "image":
        return {"_type": "Image"}
    value = {"dtype": ft["dtype"], "_type": "Value"}
    shape = ft["shape"]
    if shape == [1]:
        return value
    if len(shape) == 1:
        return {"feature": value, "length": shape[0], "_type": "List"}
    return {"shape": shape, "dtype": ft["dtype"], "_type": f"Array{len(shape)}D"}


def _arrow_type(ft: dict[str, Any]) -> Any:
    import pyarrow as pa

    if ft["dtype"] == "image":
        return pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    value = {"float32": pa.float32(), "int64": pa.int64(), "bool": pa.bool_()}[ft["dtype"]]
    if ft["shape"] == [1]:
        return value
    typ = value
    for size in reversed(ft["shape"]):
        typ = pa.list_(typ, size)
    return typ


def _arrow_schema(features: dict[str, Any]) -> Any:
    import pyarrow as pa

    stored = {k: ft for k, ft in features.items() if ft["dtype"] != "video"}
    hf = {"info": {"features": {k: _hf_feature(ft) for k, ft in stored.items()}}}
    fields = [pa.field(k, _arrow_type(ft)) for k, ft in stored.items()]
    return pa.schema(fields, metadata={"huggingface": json.dumps(hf)})


def _arrow_column(values: np.ndarray, ft: dict[str, Any]) -> Any:
    import pyarrow as pa

    typ = _arrow_type(ft)
    if ft["dtype"] == "image":
        return pa.array(
            [{"bytes": _png(f), "path": f"frame-{i:06d}.png"} for i, f in enumerate(values)],
            typ,
        )
    if ft["shape"] == [1]:
        return pa.array(values.reshape(-1), typ)
    arr: Any = pa.array(np.ascontiguousarray(values).reshape(-1))
    for size in reversed(ft["shape"]):
        arr = pa.FixedSizeListArray.from_arrays(arr, size)
    return arr.cast(typ)


def _png(frame: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame[..., 0] if frame.shape[-1] == 1 else frame).save(buf, format="PNG")
    return buf.getvalue()


def _write_tasks(path: Path, tasks: list[str]) -> None:
    """tasks.parquet as pandas writes a frame indexed by task text: the text is the index."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "str",
                "metadata": {"encoding": "UTF-8"},
            }
        ],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {
                "name": None,
                "field_name": "__index_level_0__",
                "pandas_type": "object",
                "numpy_type": "str",
                "metadata": None,
            },
        ],
        "attributes": {},
        "creator": {"library": "protege", "version": __version__},
        "pandas_version": None,
    }
    schema = pa.schema(
        [("task_index", pa.int64()), ("__index_level_0__", pa.large_string())],
        metadata={"pandas": json.dumps(pandas_meta)},
    )
    table = pa.table(
        {"task_index": np.arange(len(tasks), dtype=np.int64), "__index_level_0__": tasks},
        schema=schema,
    )
    pq.write_table(table, path)
