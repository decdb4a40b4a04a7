"""robomimic HDF5: the reference fixture reads right, protege writes the same layout."""

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from protege.data.episode import Episode
from protege.data.external import ExternalDataset
from protege.data.robomimic_io import read_robomimic, write_robomimic
from protege.errors import DataError
from shared_fixtures import ROBOMIMIC

FIXTURE = ROBOMIMIC


def test_reads_the_reference_file() -> None:
    data = read_robomimic(FIXTURE)
    assert [len(ep) for ep in data.episodes] == [20, 21, 22]
    assert data.keys == {"state": "state"}
    assert data.info["env_args"] == {"env_name": "Toy", "type": 3, "env_kwargs": {}}
    assert data.info["masks"] == {"train": ["demo_0", "demo_1"], "valid": ["demo_2"]}
    with h5py.File(FIXTURE) as f:
        for i, ep in enumerate(data.episodes):
            demo = f[f"data/demo_{i}"]
            state = ep.obs["state"]
            assert state.dtype == np.float32 and state.shape == (len(ep) + 1, 2)
            np.testing.assert_array_equal(state[:-1], demo["obs/state"][()])
            np.testing.assert_array_equal(state[-1], demo["next_obs/state"][-1])  # final obs
            np.testing.assert_array_equal(ep.actions, demo["actions"][()])
            np.testing.assert_array_equal(ep.rewards, demo["rewards"][()].astype(np.float32))
            assert ep.terminated == bool(demo["dones"][-1])
    # the fixture's next_obs is random, not obs shifted by one: said, not hidden
    assert any("next_obs is not obs shifted" in note for note in data.notes)


def _layout(path: Path) -> dict:
    """Every group and dataset: (shape-free) dtype and attrs, the masks' contents."""
    out: dict = {}
    with h5py.File(path) as f:

        def visit(name: str, obj: object) -> None:
            kind = "dataset" if isinstance(obj, h5py.Dataset) else "group"
            attrs = {k: type(v).__name__ for k, v in obj.attrs.items()}
            out[name] = (kind, getattr(obj, "dtype", None), getattr(obj, "ndim", None), attrs)

        f.visititems(visit)
        out["env_args"] = json.loads(f["data"].attrs["env_args"])
        out["total"] = int(f["data"].attrs["total"])
    return out


def test_export_has_the_reference_layout(tmp_path: Path) -> None:
    out = write_robomimic(read_robomimic(FIXTURE), tmp_path / "out.hdf5")
    assert _layout(out) == _layout(FIXTURE)
    with h5py.File(out) as f, h5py.File(FIXTURE) as ref:
        for name in ("mask/train", "mask/valid"):
            assert list(f[name][()]) == list(ref[name][()])
        for i in range(3):
            assert (
                f[f"data/demo_{i}"].attrs["num_samples"]
                == ref[f"data/demo_{i}"].attrs["num_samples"]
            )


def _episodes() -> list[Episode]:
    rng = np.random.default_rng(1)
    out = []
    for e, t in enumerate((4, 7)):
        out.append(
            Episode(
                obs={
                    "robot0_eef_pos": rng.normal(size=(t + 1, 3)).astype(np.float32),
                    "agentview_image": rng.integers(0, 256, (t + 1, 8, 8, 3), dtype=np.uint8),
                },
                actions=rng.normal(size=(t, 2)).astype(np.float32),
                rewards=rng.normal(size=t).astype(np.float32),
                terminated=e == 1,
                truncated=e == 0,
            )
        )
    return out


def test_round_trip_is_exact(tmp_path: Path) -> None:
    episodes = _episodes()
    out = write_robomimic(ExternalDataset(episodes, info={"task": "lift"}), tmp_path / "d.hdf5")
    with h5py.File(out) as f:
        demo = f["data/demo_1"]
        assert demo["obs/agentview_image"].dtype == np.uint8
        assert demo["obs/agentview_image"].compression == "gzip"
        np.testing.assert_array_equal(
            demo["next_obs/robot0_eef_pos"][:-1], demo["obs/robot0_eef_pos"][1:]
        )
        np.testing.assert_array_equal(demo["dones"][()], [0, 0, 0, 0, 0, 0, 1])
        assert json.loads(f["data"].attrs["env_args"])["env_name"] == "lift"
        assert list(f["mask/train"][()]) == [b"demo_0"] and list(f["mask/valid"][()]) == [b"demo_1"]
        assert f["data"].attrs["total"] == 11
    back = read_robomimic(out)
    assert not back.notes
    for a, b in zip(episodes, back.episodes, strict=True):
        for part in a.obs:
            np.testing.assert_array_equal(b.obs[part], a.obs[part])
            assert b.obs[part].dtype == a.obs[part].dtype
        np.testing.assert_array_equal(b.actions, a.actions)
        np.testing.assert_array_equal(b.rewards, a.rewards)
        assert (b.terminated, b.truncated) == (a.terminated, a.truncated)


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.hdf5"
    with h5py.File(empty, "w") as f:
        f.create_group("mask")
    with pytest.raises(DataError, match=rf"{empty}: no 'data' group"):
        read_robomimic(empty)
    text = tmp_path / "text.hdf5"
    text.write_text("hello")
    with pytest.raises(DataError, match=rf"{text}: not an HDF5 file"):
        read_robomimic(text)
    with pytest.raises(DataError, match="not found"):
        read_robomimic(tmp_path / "missing.hdf5")
    broken = tmp_path / "broken.hdf5"
    with h5py.File(broken, "w") as f:
        f.create_dataset("data/demo_0/actions", data=np.zeros((3, 2)))
        f.create_dataset("data/demo_0/obs/state", data=np.zeros((4, 2)))
    data = read_robomimic(broken)  # the metadata is fine; the demo is read when loaded
    with pytest.raises(DataError, match=r"data/demo_0: obs/state has 4 rows; actions have 3"):
        list(data.episodes)
    with pytest.raises(DataError, match="already exists"):
        write_robomimic(ExternalDataset(_episodes()), broken)


def test_a_write_that_fails_leaves_nothing(tmp_path: Path) -> None:
    first, second = _episodes()
    other = Episode(
        {"robot0_eef_pos": second.obs["robot0_eef_pos"]}, second.actions, second.rewards
    )
    with pytest.raises(DataError, match=r"episode demo_1: parts"):
        write_robomimic(ExternalDataset([first, other]), tmp_path / "d.hdf5")
    assert list(tmp_path.iterdir()) == []
