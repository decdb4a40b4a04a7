"""LeRobotDataset v3.0: the reference fixtures read right, protege writes the same layout."""

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from protege.data.episode import Episode
from protege.data.external import ExternalDataset
from protege.data.lerobot_io import read_lerobot
from protege.data.lerobot_write import write_lerobot
from protege.errors import DataError
from shared_fixtures import LEROBOT_AV1, LEROBOT_IMAGE

IMAGE, VIDEO = LEROBOT_IMAGE, LEROBOT_AV1
DATA, EPISODES = "data/chunk-000/file-000.parquet", "meta/episodes/chunk-000/file-000.parquet"


def _expected_red(t: int) -> np.ndarray:
    return (10 * np.arange(t))[:, None, None]


def test_reads_the_reference_image_dataset() -> None:
    data = read_lerobot(IMAGE)
    assert data.keys == {"state": "observation.state", "image": "observation.image"}
    assert data.names["state"] == ["x", "y"] and data.names["action"] == ["dx", "dy"]
    assert data.fps == 10 and data.tasks == ["reach the dot"] * 3
    assert data.info["robot_type"] == "toy"
    assert [len(ep) for ep in data.episodes] == [20, 20, 20]
    for e, ep in enumerate(data.episodes):
        assert ep.actions.dtype == np.float32
        np.testing.assert_array_equal(ep.actions, np.stack([np.full(20, e), np.arange(20)], 1))
        image = ep.obs["image"]
        assert image.shape == (21, 32, 32, 3) and image.dtype == np.uint8
        np.testing.assert_array_equal(
            image[:20, :, :, 0], np.broadcast_to(_expected_red(20), (20, 32, 32))
        )
        green = np.zeros((32, 32), np.uint8)
        green[8:24, 8:24] = 200
        np.testing.assert_array_equal(image[:, :, :, 1], np.broadcast_to(green, (21, 32, 32)))
        assert not image[..., 2].any()
        # LeRobot has no observation after the last step: protege's final one repeats it
        np.testing.assert_array_equal(image[20], image[19])
        assert ep.obs["state"].shape == (21, 2) and ep.obs["state"].dtype == np.float32
    states = pq.read_table(IMAGE / DATA).column("observation.state").to_pylist()
    np.testing.assert_array_equal(
        data.episodes[1].obs["state"][:20], np.array(states[20:40], np.float32)
    )


def test_reads_the_reference_av1_video_dataset() -> None:
    images = read_lerobot(IMAGE)
    data = read_lerobot(VIDEO)
    for ep, ref in zip(data.episodes, images.episodes, strict=True):
        np.testing.assert_array_equal(ep.actions, ref.actions)
        np.testing.assert_array_equal(ep.obs["state"], ref.obs["state"])
        frames = ep.obs["image"].astype(int)
        assert frames.shape == (21, 32, 32, 3)
        # lossy (yuv420p AV1): close, not equal; frame order right (red = 10 × frame index)
        red_error = np.abs(frames[:20, :, :, 0] - _expected_red(20))
        assert red_error.mean() < 3 and np.median(red_error) <= 2
        assert np.abs(frames[:, 10:22, 10:22, 1] - 200).max() <= 10
        assert frames[:, :6, :6, 1].max() <= 10
        assert not np.array_equal(frames, ref.obs["image"])
    # episodes load one at a time, in any order: each seeks to its place in the shared mp4
    again = read_lerobot(VIDEO).episodes
    for e in (2, 0, 1):
        np.testing.assert_array_equal(again[e].obs["image"], data.episodes[e].obs["image"])


def _features(root: Path) -> dict:
    return json.loads((root / "meta" / "info.json").read_text())["features"]


def _schema(path: Path) -> dict:
    schema = pq.read_schema(path)
    return {name: str(schema.field(name).type) for name in schema.names}


@pytest.mark.parametrize("video", [None, "av1"])
def test_export_has_the_reference_layout(tmp_path: Path, video: str | None) -> None:
    ref = VIDEO if video else IMAGE
    out = write_lerobot(read_lerobot(ref), tmp_path / "out", video=video)
    ref_info = json.loads((ref / "meta" / "info.json").read_text())
    info = json.loads((out / "meta" / "info.json").read_text())
    assert set(info) == set(ref_info)
    for key in set(ref_info) - {"features"}:
        assert info[key] == ref_info[key], key
    ours, theirs = info["features"], ref_info["features"]
    assert set(ours) - set(theirs) == {"next.reward", "next.done"}
    assert ours["next.reward"]["dtype"] == "float32" and ours["next.done"]["dtype"] == "bool"
    for key, ft in theirs.items():
        assert ours[key] == ft, key  # dtype, shape, names (and the video info, codec av1)

    our_data, ref_data = _schema(out / DATA), _schema(ref / DATA)
    assert {k: v for k, v in our_data.items() if k in ref_data} == ref_data
    assert set(our_data) - set(ref_data) == {"next.reward", "next.done"}
    hf = json.loads(pq.read_schema(out / DATA).metadata[b"huggingface"])["info"]["features"]
    ref_hf = json.loads(pq.read_schema(ref / DATA).metadata[b"huggingface"])["info"]["features"]
    assert {k: v for k, v in hf.items() if k in ref_hf} == ref_hf

    our_eps, ref_eps = _schema(out / EPISODES), _schema(ref / EPISODES)
    assert {k: v for k, v in our_eps.items() if k in ref_eps} == ref_eps
    assert {k.split("/")[1] for k in set(our_eps) - set(ref_eps)} == {"next.reward", "next.done"}
    for column in ("dataset_from_index", "dataset_to_index", "length", "tasks"):
        assert pq.read_table(out / EPISODES).column(column).to_pylist() == (
            pq.read_table(ref / EPISODES).column(column).to_pylist()
        )
    if video:
        for end in ("from_timestamp", "to_timestamp"):
            column = f"videos/observation.image/{end}"
            assert pq.read_table(out / EPISODES).column(column).to_pylist() == [
                pytest.approx(x) for x in pq.read_table(ref / EPISODES).column(column).to_pylist()
            ]

    tasks, ref_tasks = (
        pq.read_table(out / "meta/tasks.parquet"),
        pq.read_table(ref / "meta/tasks.parquet"),
    )
    assert tasks.schema.equals(ref_tasks.schema, check_metadata=False)
    assert tasks.to_pylist() == ref_tasks.to_pylist()
    pandas, ref_pandas = (json.loads(t.schema.metadata[b"pandas"]) for t in (tasks, ref_tasks))
    for key in ("index_columns", "column_indexes", "columns"):
        assert pandas[key] == ref_pandas[key]

    stats = json.loads((out / "meta/stats.json").read_text())
    ref_stats = json.loads((ref / "meta/stats.json").read_text())
    assert set(stats) - set(ref_stats) == {"next.reward", "next.done"}
    for key, st in ref_stats.items():
        assert set(stats[key]) == set(st), key
        for name in ("min", "max", "mean", "std", "count"):
            if key != "observation.image":  # LeRobot estimates image stats from a sample
                assert np.allclose(stats[key][name], st[name], atol=1e-5), (key, name)
            assert np.shape(stats[key][name]) == np.shape(st[name]), (key, name)
    if video:
        mp4 = "videos/observation.image/chunk-000/file-000.mp4"
        assert _stream(out / mp4) == _stream(ref / mp4)


def _stream(path: Path) -> dict:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [f.time for f in container.decode(stream)]
        return {
            "format": container.format.name,
            "codec": stream.codec_context.codec.name,  # the decoder: libdav1d for AV1
            "size": (stream.codec_context.width, stream.codec_context.height),
            "pix_fmt": stream.codec_context.pix_fmt,
            "rate": stream.average_rate,
            "times": [round(t, 6) for t in times],
        }


def _episodes(n: int = 3, discrete: bool = False) -> list[Episode]:
    rng = np.random.default_rng(0)
    out = []
    for e in range(n):
        t = 5 + e
        yy, xx = np.mgrid[0:16, 0:24]
        frames = np.stack([(xx * 8 + 20 * i) % 256 for i in range(t + 1)]).astype(np.uint8)
        image = np.stack([frames, frames // 2, np.broadcast_to(yy * 10, frames.shape)], -1)
        actions = rng.integers(0, 3, t) if discrete else rng.normal(size=(t, 2)).astype(np.float32)
        out.append(
            Episode(
                obs={
                    "state": rng.normal(size=(t + 1, 3)).astype(np.float32),
                    "front": image.astype(np.uint8),
                },
                actions=actions,
                rewards=rng.normal(size=t).astype(np.float32),
                terminated=e == 0,
                truncated=e != 0,
            )
        )
    return out


@pytest.mark.parametrize("video", [None, "h264", "av1"])
def test_round_trip(tmp_path: Path, video: str | None) -> None:
    episodes = _episodes()
    data = ExternalDataset(episodes, fps=15, tasks=["push", "push", "pull"])
    out = write_lerobot(data, tmp_path / "d", video=video)
    features = _features(out)
    assert features["observation.images.front"]["dtype"] == ("video" if video else "image")
    back = read_lerobot(out)
    assert back.keys == {"state": "observation.state", "front": "observation.images.front"}
    assert back.fps == 15 and back.tasks == ["push", "push", "pull"]
    for a, b in zip(episodes, back.episodes, strict=True):
        t = len(a)
        np.testing.assert_array_equal(b.actions, a.actions)
        np.testing.assert_array_equal(b.rewards, a.rewards)
        assert (b.terminated, b.truncated) == (a.terminated, a.truncated)
        np.testing.assert_array_equal(b.obs["state"][:t], a.obs["state"][:t])
        np.testing.assert_array_equal(b.obs["state"][t], a.obs["state"][t - 1])
        if video is None:
            np.testing.assert_array_equal(b.obs["front"][:t], a.obs["front"][:t])
        else:
            error = np.abs(b.obs["front"][:t].astype(int) - a.obs["front"][:t])
            assert error.mean() < 4, error.mean()


def test_discrete_actions_round_trip(tmp_path: Path) -> None:
    episodes = _episodes(2, discrete=True)
    out = write_lerobot(ExternalDataset(episodes), tmp_path / "d")
    assert _features(out)["action"] == {"dtype": "int64", "shape": [1], "names": None}
    back = read_lerobot(out)
    for a, b in zip(episodes, back.episodes, strict=True):
        assert b.actions.dtype == np.int64
        np.testing.assert_array_equal(b.actions, a.actions)


def _copy(src: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(src, tmp_path / src.name))


def test_missing_info_json_is_a_clear_error(tmp_path: Path) -> None:
    root = _copy(IMAGE, tmp_path)
    (root / "meta" / "info.json").unlink()
    with pytest.raises(DataError, match=r"meta/info\.json: not found"):
        read_lerobot(root)


def test_missing_video_file_is_a_clear_error(tmp_path: Path) -> None:
    root = _copy(VIDEO, tmp_path)
    video = root / "videos/observation.image/chunk-000/file-000.mp4"
    video.unlink()
    with pytest.raises(DataError, match=rf"{video}: video file not found"):
        read_lerobot(root)


def test_undecodable_video_is_a_clear_error(tmp_path: Path) -> None:
    root = _copy(VIDEO, tmp_path)
    video = root / "videos/observation.image/chunk-000/file-000.mp4"
    # the same mp4 with its sample entry's codec renamed to one FFmpeg has no decoder for
    content = video.read_bytes()
    entry = content.index(b"av01", content.index(b"stsd"))
    video.write_bytes(content[:entry] + b"zz99" + content[entry + 4 :])
    with pytest.raises(DataError, match=rf"{video}: cannot decode the video"):
        read_lerobot(root)
    video.write_bytes(b"not a video" * 10)
    with pytest.raises(DataError, match=rf"{video}: cannot decode the video"):
        read_lerobot(root)


def test_other_bad_input(tmp_path: Path) -> None:
    root = _copy(IMAGE, tmp_path)
    info = json.loads((root / "meta/info.json").read_text())
    (root / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    with pytest.raises(DataError, match=r"codebase_version 'v2.1'"):
        read_lerobot(root)
    (root / "meta/info.json").write_text(json.dumps(info))
    (root / DATA).unlink()
    with pytest.raises(DataError, match=rf"{root / DATA}: data file not found"):
        read_lerobot(root)
    with pytest.raises(DataError, match="already exists and is not empty"):
        write_lerobot(read_lerobot(IMAGE), root)


def test_a_write_that_fails_leaves_nothing(tmp_path: Path) -> None:
    odd = [
        Episode(
            obs={"cam": np.zeros((4, 15, 15, 3), np.uint8)},
            actions=np.zeros((3, 2), np.float32),
            rewards=np.zeros(3, np.float32),
        )
    ]
    with pytest.raises(DataError, match=r"cannot be written as yuv420p video"):
        write_lerobot(ExternalDataset(odd), tmp_path / "d", video="h264")
    assert not (tmp_path / "d").exists()
    assert write_lerobot(ExternalDataset(odd), tmp_path / "d").is_dir()  # as PNG it works


def test_image_stats_from_the_histogram_equal_numpys() -> None:
    from protege.data.lerobot_stats import QUANTILES, feature_stats

    rng = np.random.default_rng(0)
    for high in (2, 17, 256):
        frames = rng.integers(0, high, (7, 5, 6, 3), dtype=np.uint8)
        stats = feature_stats(frames, image=True)
        assert stats["count"] == [7]
        for c in range(3):
            v = frames[..., c].ravel() / 255.0
            want = {"min": v.min(), "max": v.max(), "mean": v.mean(), "std": v.std()}
            want.update({k: np.quantile(v, q) for k, q in QUANTILES.items()})
            for key, value in want.items():
                assert stats[key][c] == [[pytest.approx(value, abs=1e-12)]], key
