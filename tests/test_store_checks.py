"""What the store checks: a writer never destroys committed data, every index field and meta
field is validated, special files are refused, creation is atomic, damaged stores repair."""

import json
import multiprocessing
import os
import re
import zlib
from dataclasses import replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from fakes import ACT, OBS, make_episode
from protege.cli import main
from protege.cli.exit_codes import BAD_INPUT
from protege.data.episode import Episode
from protege.data.records import FIELDS, EpisodeRecord
from protege.data.repair import check_store, repair
from protege.data.store import Store
from protege.errors import DataError

SMALL = gym.spaces.Box(0, 255, (12, 12, 3), np.uint8)
BOX = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


def image_episode(t: int, seed: int) -> Episode:
    rng = np.random.default_rng(seed)
    obs = np.repeat(rng.integers(0, 255, (t + 1, 12, 12, 1), np.uint8), 3, axis=3)
    return Episode(
        obs=obs,
        actions=rng.uniform(-1, 1, (t, 2)).astype(np.float32),
        rewards=rng.normal(size=t).astype(np.float32),
    )


def _store(path: Path, n: int = 4) -> list:
    eps = [replace(make_episode(5 + i, i, round=i % 2), seed=100 + i) for i in range(n)]
    with Store.create(path, OBS, ACT, task="toy") as store:
        store.extend(eps)
    return eps


def _files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


def _old_format(path: Path, version: int = 1) -> None:
    """Rewrite the store at ``path`` as protege wrote it before format 3 (no checksums)."""
    store = Store.open(path)
    meta = store.meta.to_json()
    meta["version"] = version
    del meta["crc"]
    (path / "meta.json").write_text(json.dumps(meta, indent=2))
    lines = b"".join(e.to_line(version) for e in store.index)
    (path / "episodes.jsonl").write_bytes(lines)


def _edit_line(path: Path, n: int, **fields) -> None:
    """Rewrite index line ``n`` with ``fields`` changed and a correct line_crc."""
    lines = (path / "episodes.jsonl").read_bytes().splitlines(keepends=True)
    obj = json.loads(lines[n])
    del obj["line_crc"]
    obj.update(fields)
    head = json.dumps(obj).encode()[:-1]
    lines[n] = head + b', "line_crc": %d}\n' % zlib.crc32(head)
    (path / "episodes.jsonl").write_bytes(b"".join(lines))


# ------------------------------------------------------------- a writer never destroys data
@pytest.mark.parametrize("version", [1, 3])
def test_a_flipped_length_bit_is_refused_by_readers_and_writers_alike(tmp_path, version):
    """Issue 12, item 1: one flipped bit in a line's "length" used to make the next writer cut
    every .bin file to the corrupt length. Now the writer refuses and changes nothing."""
    path = tmp_path / "s"
    _store(path)
    if version == 1:
        _old_format(path)
    raw = bytearray((path / "episodes.jsonl").read_bytes())
    at = raw.index(b'"length": 6') + len(b'"length": ')  # episode 1 (T = 6)
    raw[at] ^= 0x01  # '6' -> '7'
    (path / "episodes.jsonl").write_bytes(bytes(raw))
    before = _files(path)
    with pytest.raises(
        DataError, match=r"episodes\.jsonl: line 2 is corrupt|CRC32 mismatch|truncated"
    ):
        Store.open(path).transitions()
    with pytest.raises(DataError, match=re.escape(f"protege repair {path} --out NEWDIR")):
        Store.open(path, writable=True)
    with pytest.raises(DataError, match="nothing was changed"):
        Store.create(path, OBS, ACT, exist_ok=True)
    after = _files(path)
    after.pop(".lock", None)
    before.pop(".lock", None)
    assert after == before


def test_a_writer_cuts_only_bytes_past_the_last_verified_episode(tmp_path):
    path = tmp_path / "s"
    _store(path, 2)
    good = _files(path)
    with open(path / "rewards.bin", "ab") as f:
        f.write(b"\x00" * 7)  # a torn append: cut
    with Store.open(path, writable=True):
        pass
    assert _files(path)["rewards.bin"] == good["rewards.bin"]
    raw = bytearray((path / "actions.bin").read_bytes())
    raw[3] ^= 0x10  # a committed byte: refused, nothing cut
    (path / "actions.bin").write_bytes(bytes(raw))
    with open(path / "obs.bin", "ab") as f:
        f.write(b"\x01" * 12)
    size = (path / "obs.bin").stat().st_size
    with pytest.raises(DataError, match=r"actions\.bin: episode 0 is corrupt"):
        Store.open(path, writable=True)
    assert (path / "obs.bin").stat().st_size == size


# --------------------------------------------------------------- every field is validated
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"round": -1}, r"field 'round': -1; expected an integer in \[0, "),
        ({"length": 0}, r"field 'length': 0"),
        ({"labels": 99}, r"field 'labels': 99; expected an integer in \[0, 5\]"),
        ({"seed": "x"}, r"field 'seed': 'x'"),
        ({"return": None}, r"field 'return': None; expected a finite number"),
        ({"terminated": 1}, r"field 'terminated': 1; expected true or false"),
        ({"crc": [1, 2]}, r"field 'crc'"),
        ({"extras": {"success": 2}}, r"extra 'success'"),
        ({"extras": {"episode": -1.0}}, r"extra 'episode'"),
        ({"number": 5}, r"field 'number'"),
        ({"start": 3}, r"field 'start': 3; the previous episodes end at step 0"),
        ({"surprise": 1}, r"field 'surprise': unknown field"),
    ],
)
def test_every_index_field_is_checked_for_type_and_range(tmp_path, fields, message):
    path = tmp_path / "s"
    _store(path, 2)
    _edit_line(path, 0, **fields)
    with pytest.raises(DataError, match=rf"episodes\.jsonl: line 1 is corrupt \({message}"):
        Store.open(path)


def test_an_index_line_edited_without_its_checksum_is_refused(tmp_path):
    path = tmp_path / "s"
    _store(path, 2)
    text = (path / "episodes.jsonl").read_text()
    (path / "episodes.jsonl").write_text(text.replace('"round": 1', '"round": 3', 1))
    with pytest.raises(DataError, match=r"line 2 is corrupt \(its line_crc does not match"):
        Store.open(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["observation_space"].update(dtype="int32"), "its crc does not match"),
        (lambda m: m["observation_space"].update(shape=[1, 3]), "its crc does not match"),
        (lambda m: m.update(task=7), "its crc does not match"),
    ],
)
def test_meta_edits_are_detected(tmp_path, edit, message):
    path = tmp_path / "s"
    _store(path, 1)
    meta = json.loads((path / "meta.json").read_text())
    edit(meta)
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=message):
        Store.open(path)


def test_meta_fields_are_validated_in_old_stores_too(tmp_path):
    path = tmp_path / "s"
    _store(path, 1)
    _old_format(path)
    assert len(Store.open(path).transitions()) == 5  # version 1 stores are still read
    meta = json.loads((path / "meta.json").read_text())
    for bad, message in (
        ({"dtype": "object"}, r"dtype = 'object'"),
        ({"shape": [10**9]}, r"shape = \[1000000000\]"),
        ({"low": [0.0]}, r"low must be a list of 3 numbers"),
    ):
        (path / "meta.json").write_text(
            json.dumps({**meta, "observation_space": {**meta["observation_space"], **bad}})
        )
        with pytest.raises(DataError, match=message):
            Store.open(path)
    shape = {**meta["observation_space"], "shape": [1], "low": [0.0], "high": [1.0]}
    (path / "meta.json").write_text(json.dumps({**meta, "observation_space": shape}))
    with pytest.raises(DataError, match="CRC32 mismatch"):  # sizes no longer match the data
        Store.open(path).transitions()


@pytest.mark.parametrize("name", ["meta.json", "episodes.jsonl", "rewards.bin", ".lock"])
@pytest.mark.parametrize("kind", ["fifo", "directory", "symlink loop"])
def test_special_files_are_refused_never_waited_on(tmp_path, name, kind):
    path = tmp_path / "s"
    _store(path, 1)
    target = path / name
    target.unlink()
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "directory":
        target.mkdir()
    else:
        target.symlink_to(target)
    with pytest.raises(DataError, match=re.escape(str(target))):
        Store.open(path, writable=name == ".lock").transitions()


# ------------------------------------------------------------------------- creation races
def _race(path: str, start, n: int, results) -> None:
    start.wait()
    try:
        with Store.create(path, OBS, ACT, task=f"racer{n}") as store:
            store.append(make_episode(5, n))
        results.put((n, "won"))
    except DataError as exc:
        results.put((n, f"DataError: {exc}"))
    except BaseException as exc:  # pragma: no cover - what the test must never see
        results.put((n, f"{type(exc).__name__}: {exc}"))


def test_two_processes_creating_one_store_one_wins(tmp_path):
    ctx = multiprocessing.get_context("fork")
    for race in range(20):
        path = str(tmp_path / f"s{race}")
        start, results = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_race, args=(path, start, n, results)) for n in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        outcome = dict(results.get(timeout=5) for _ in procs)
        won = [n for n, what in outcome.items() if what == "won"]
        assert len(won) == 1, outcome
        (lost,) = set(outcome) - set(won)
        assert re.match(r"DataError: .*(already exists|another process)", outcome[lost]), outcome
        store = Store.open(path)
        assert store.task == f"racer{won[0]}" and len(store) == 1
        np.testing.assert_array_equal(store.transitions().obs, make_episode(5, won[0]).obs[:-1])
        assert not [p for p in tmp_path.iterdir() if ".creating-" in p.name]


def test_a_store_is_not_created_over_other_files(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="exists and is not an empty directory"):
        Store.create(tmp_path / "busy", OBS, ACT)
    (tmp_path / "empty").mkdir()
    Store.create(tmp_path / "empty", OBS, ACT).close()
    assert len(Store.open(tmp_path / "empty")) == 0


# ------------------------------------------------------------------------ check and repair
def test_check_and_repair_recover_every_intact_episode(tmp_path, capsys):
    path, out = tmp_path / "s", tmp_path / "fixed"
    eps = _store(path, 5)
    raw = bytearray((path / "rewards.bin").read_bytes())
    raw[4 * (5 + 6) + 2] ^= 0x04  # episode 2's rewards
    (path / "rewards.bin").write_bytes(bytes(raw))
    lines = (path / "episodes.jsonl").read_bytes().splitlines(keepends=True)
    lines[3] = lines[3].replace(b'"round": 1', b'"round": 2')  # episode 3's line
    (path / "episodes.jsonl").write_bytes(b"".join(lines))
    before = _files(path)
    report = check_store(path)
    assert [e.line for e in report.episodes if e.problem] == [3, 4]
    assert main(["info", "--check", str(path)]) == BAD_INPUT
    assert "2 of 5 episodes fail" in capsys.readouterr().err
    assert main(["repair", str(path), "--out", str(out)]) == 0
    assert _files(path) == before  # the original is only read
    kept = list(Store.open(out).episodes())
    assert [e.seed for e in kept] == [100, 101, 104]
    for got, want in zip(kept, [eps[0], eps[1], eps[4]], strict=True):
        np.testing.assert_array_equal(got.obs, want.obs)
        np.testing.assert_array_equal(got.actions, want.actions)
        assert got.round == want.round
    assert main(["info", "--check", str(out)]) == 0


def test_repair_of_an_image_store_and_an_old_store(tmp_path):
    path = tmp_path / "img"
    eps = [image_episode(6, i) for i in range(3)]
    with Store.create(path, SMALL, BOX) as store:
        store.extend(eps)
    raw = bytearray((path / "obs.idx").read_bytes())
    raw[8 * 7 + 1] ^= 0x01  # a frame offset of episode 1
    (path / "obs.idx").write_bytes(bytes(raw))
    report = repair(path, tmp_path / "img2")
    assert [e.problem is None for e in report.episodes] == [True, False, True]
    back = list(Store.open(tmp_path / "img2").episodes())
    np.testing.assert_array_equal(back[1].obs, eps[2].obs)

    old = tmp_path / "old"
    _store(old, 3)
    _old_format(old)
    assert "no checksums" in check_store(old).notes[0]
    lines = (old / "episodes.jsonl").read_bytes().splitlines(keepends=True)
    (old / "episodes.jsonl").write_bytes(lines[0] + b"garbage\n" + lines[2])
    report = check_store(old)
    assert [e.problem is None for e in report.episodes] == [True, False, False]


def test_records_are_typed():
    store_fields = {f for f in EpisodeRecord.__dataclass_fields__}
    assert {"number", "start", "length", "round", "labels", "seed", "crc", "extras"} <= store_fields
    assert len(FIELDS) == 6


def test_info_says_what_it_verified(tmp_path, capsys):
    path = tmp_path / "s"
    _store(path, 2)
    assert main(["info", str(path)]) == 0
    assert "data not read (--check verifies it)" in capsys.readouterr().out
    assert main(["info", "--check", str(path)]) == 0
    assert "2 of 2" in capsys.readouterr().out
    _old_format(path)
    assert main(["info", str(path)]) == 0
    assert "format version 1: no checksums" in capsys.readouterr().out


def test_extras_are_validated_when_appended(tmp_path):
    with Store.create(tmp_path / "s", OBS, ACT) as store:
        with pytest.raises(DataError, match="extra 'queries'"):
            store.append(make_episode(extras={"queries": -1.0}))
        with pytest.raises(DataError, match="extra 'x'"):
            store.append(make_episode(extras={"x": float("nan")}))
        with pytest.raises(DataError, match="field 'round'"):
            store.append(make_episode(round=-2))
        assert len(store) == 0
    assert Store.open(tmp_path / "s").n_transitions == 0


def test_old_stores_are_read_and_appended_to_in_their_format(tmp_path):
    path = tmp_path / "old"
    eps = _store(path, 2)
    _old_format(path)
    with Store.open(path, writable=True) as store:
        store.append(make_episode(4, 9))
    store = Store.open(path)
    assert store.meta.version == 1 and len(store) == 3
    assert "line_crc" not in (path / "episodes.jsonl").read_text()
    np.testing.assert_array_equal(list(store.episodes())[1].obs, eps[1].obs)


def test_a_frame_that_does_not_decompress_is_a_data_error_naming_the_file(tmp_path) -> None:
    """A frame whose bytes pass the index's CRC (a tool that recomputes CRCs) but are not a
    zlib stream, or decompress to the wrong size, is refused by name, not as zlib.error."""
    import numpy as np

    from protege.data.frames import FrameFile, compress_frames
    from protege.errors import DataError

    good, ends = compress_frames(np.zeros((2, 4, 4, 3), np.uint8))
    cases = {
        "garbage": b"not a zlib stream" + good[len(b"not a zlib stream") :],
        "wrong size": compress_frames(np.zeros((1, 2, 2, 3), np.uint8))[0] * 2,
    }
    for name, data in cases.items():
        file = tmp_path / f"{name}.bin"
        file.write_bytes(data)
        cut = ends if name == "garbage" else np.array([len(data) // 2, len(data)])
        frames = FrameFile(file, cut, (4, 4, 3), np.dtype(np.uint8))
        with pytest.raises(DataError, match=str(file)):
            frames.read(np.array([0]))
