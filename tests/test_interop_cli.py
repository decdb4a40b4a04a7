"""protege import / export --format lerobot | robomimic, through a store, end to end."""

import json
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

import protege
from protege.cli import main
from protege.cli.exit_codes import BAD_INPUT
from protege.data.interop import export_dataset, import_dataset
from protege.data.lerobot_io import read_lerobot
from protege.data.store import Store
from protege.errors import DataError
from shared_fixtures import LEROBOT_IMAGE, ROBOMIMIC

IMAGE = LEROBOT_IMAGE


def test_lerobot_state_import_and_export_keep_names(tmp_path: Path, capsys) -> None:
    store_dir, out = tmp_path / "s", tmp_path / "back"
    args = [
        "import",
        "--format",
        "lerobot",
        str(IMAGE),
        "--parts",
        "state",
        "--out",
        str(store_dir),
    ]
    assert main(args) == 0
    assert "observation.state → state" in capsys.readouterr().out
    store = Store.open(store_dir)
    assert store.observation_space.shape == (2,) and store.action_space.shape == (2,)
    data = store.transitions()
    table = pq.read_table(IMAGE / "data/chunk-000/file-000.parquet")
    np.testing.assert_array_equal(
        data.obs, np.array(table.column("observation.state").to_pylist(), np.float32)
    )
    np.testing.assert_array_equal(
        data.actions, np.array(table.column("action").to_pylist(), np.float32)
    )

    assert main(["export", "--format", "lerobot", str(store_dir), "--out", str(out)]) == 0
    info = json.loads((out / "meta/info.json").read_text())
    ref = json.loads((IMAGE / "meta/info.json").read_text())
    for key in ("observation.state", "action"):
        assert info["features"][key] == ref["features"][key]
    assert (info["fps"], info["robot_type"]) == (10, "toy")
    assert "observation.image" not in info["features"]
    assert read_lerobot(out).tasks == ["reach the dot"] * 3

    # a repaired copy keeps the original names
    fixed, again = tmp_path / "fixed", tmp_path / "again"
    assert main(["repair", str(store_dir), "--out", str(fixed)]) == 0
    assert main(["export", "--format", "lerobot", str(fixed), "--out", str(again)]) == 0
    assert read_lerobot(again).tasks == ["reach the dot"] * 3
    assert json.loads((again / "meta/info.json").read_text())["robot_type"] == "toy"


def test_robomimic_import_and_export_keep_the_layout(tmp_path: Path) -> None:
    store_dir, out = tmp_path / "s", tmp_path / "back.hdf5"
    assert main(["import", "--format", "robomimic", str(ROBOMIMIC), "--out", str(store_dir)]) == 0
    assert main(["export", "--format", "robomimic", str(store_dir), "--out", str(out)]) == 0
    with h5py.File(out) as f, h5py.File(ROBOMIMIC) as ref:
        assert f["data"].attrs["env_args"] == ref["data"].attrs["env_args"]
        assert f["data"].attrs["total"] == ref["data"].attrs["total"] == 63
        assert list(f["mask/valid"][()]) == list(ref["mask/valid"][()])
        for i in range(3):
            for name in ("obs/state", "actions"):
                got, want = f[f"data/demo_{i}/{name}"], ref[f"data/demo_{i}/{name}"]
                assert got.dtype == want.dtype
                np.testing.assert_array_equal(got[()], want[()])
            # the last next_obs is kept (the final observation); the others follow obs
            np.testing.assert_array_equal(
                f[f"data/demo_{i}/next_obs/state"][-1], ref[f"data/demo_{i}/next_obs/state"][-1]
            )


def test_discrete_store_round_trips_through_lerobot(tmp_path: Path) -> None:
    protege.collect(protege.tasks.make("cartpole"), tmp_path / "s", episodes=2, seed=0)
    export_dataset("lerobot", tmp_path / "s", tmp_path / "d")
    back, _ = import_dataset("lerobot", tmp_path / "d", tmp_path / "b", task="cartpole")
    a, b = Store.open(tmp_path / "s").transitions(), back.transitions()
    assert back.action_space == Store.open(tmp_path / "s").action_space
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.obs, b.obs)
    np.testing.assert_array_equal(a.rewards, b.rewards)
    for before, after in zip(Store.open(tmp_path / "s").episodes(), back.episodes(), strict=True):
        assert after.terminated == before.terminated
        np.testing.assert_array_equal(after.obs[-1], before.obs[-2])  # LeRobot has no final obs


def test_camera_only_store_exports_as_video(tmp_path: Path) -> None:
    store, _ = import_dataset("lerobot", IMAGE, tmp_path / "s", parts=["image"])
    assert store.observation_space.shape == (32, 32, 3)
    assert (
        main(
            [
                "export",
                "--format",
                "lerobot",
                str(tmp_path / "s"),
                "--out",
                str(tmp_path / "d"),
                "--video",
                "h264",
            ]
        )
        == 0
    )
    info = json.loads((tmp_path / "d/meta/info.json").read_text())
    assert info["features"]["observation.image"]["info"]["video.codec"] == "h264"
    frames = read_lerobot(tmp_path / "d").episodes[2].obs["image"][:20].astype(int)
    assert np.abs(frames[..., 0] - (10 * np.arange(20))[:, None, None]).mean() < 3


def test_cli_errors(tmp_path: Path, capsys) -> None:
    out = str(tmp_path / "s")
    assert (
        main(["import", "--format", "lerobot", str(tmp_path / "nothing"), "--out", out])
        == BAD_INPUT
    )
    assert "meta/info.json: not found" in capsys.readouterr().err
    assert (
        main(["import", "--format", "lerobot", str(IMAGE), "--parts", "depth", "--out", out])
        == BAD_INPUT
    )
    assert "no observation part 'depth'" in capsys.readouterr().err
    assert main(["import", "--format", "robomimic", str(ROBOMIMIC), "--out", out]) == 0
    assert main(["export", "--format", "robomimic", out]) == BAD_INPUT
    assert "writes to --out PATH" in capsys.readouterr().err
    assert main(["export", out]) == BAD_INPUT
    assert "needs a dataset ID" in capsys.readouterr().err


def test_camera_and_state_import_and_export(tmp_path: Path) -> None:
    store, _ = import_dataset("lerobot", IMAGE, tmp_path / "s")
    episodes = list(store.episodes())
    assert set(episodes[0].obs) == {"state", "image"}
    export_dataset("lerobot", store, tmp_path / "d", video="av1")
    back = read_lerobot(tmp_path / "d")
    assert back.keys == {"state": "observation.state", "image": "observation.image"}
    np.testing.assert_array_equal(
        back.episodes[1].obs["state"], read_lerobot(IMAGE).episodes[1].obs["state"]
    )


def test_an_import_that_fails_part_way_leaves_no_store(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.hdf5"
    with h5py.File(bad, "w") as f:
        for i, rows in enumerate((3, 4)):  # demo_1's obs has one row too many
            f.create_dataset(f"data/demo_{i}/actions", data=np.zeros((3, 2), np.float32))
            f.create_dataset(f"data/demo_{i}/obs/state", data=np.zeros((rows, 2), np.float32))
    out = tmp_path / "s"
    assert main(["import", "--format", "robomimic", str(bad), "--out", str(out)]) == BAD_INPUT
    assert "data/demo_1: obs/state has 4 rows; actions have 3" in capsys.readouterr().err
    assert not out.exists()


def test_episodes_take_a_dict_of_parts(tmp_path: Path) -> None:
    from protege.data.episode import Episode

    obs = {"state": np.zeros((4, 2), np.float32), "cam": np.zeros((4, 8, 8, 3), np.uint8)}
    ep = Episode(obs, np.zeros((3, 2), np.float32), np.zeros(3, np.float32))
    assert len(ep) == 3
    with pytest.raises(DataError, match=r"obs part 'cam' has 3 rows; expected T\+1 = 4"):
        Episode({**obs, "cam": obs["cam"][:3]}, ep.actions, ep.rewards)
    with pytest.raises(DataError, match="a dict with no parts"):
        Episode({}, ep.actions, ep.rewards)
    import gymnasium as gym

    store = Store.create(tmp_path / "s", gym.spaces.Box(-1, 1, (2,)), gym.spaces.Box(-1, 1, (2,)))
    with pytest.raises(DataError, match=r"\[.cam., .state.\]"):  # the parts are named
        store.append(ep)
