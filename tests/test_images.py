"""Learning from pixels: the cnn encoder, frame history, random shift, compressed image stores."""

import json
import textwrap
import zlib

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fakes import kill_after_appends
from protege.algos import bc
from protege.algos.rounds import reorder_episodes
from protege.data import frames as frames_mod
from protege.data.episode import Episode
from protege.data.frames import FrameArray
from protege.data.store import Store, Transitions
from protege.errors import ConfigError, DataError
from protege.policies import Policy, PolicyConfig
from protege.policies.encoders import CNNEncoder, SpatialSoftmax, random_shift
from protege.policies.heads import HEADS
from protege.policies.history import ObsHistory

SMALL = gym.spaces.Box(0, 255, (36, 36, 3), np.uint8)
BOX = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
TINY_CNN = {"channels": [4, 8, 8]}


def small_policy(act_space=BOX, **kw) -> Policy:
    kw.setdefault("hidden_sizes", (16,))
    kw.setdefault("encoder_kwargs", TINY_CNN)
    return Policy(PolicyConfig.for_spaces(SMALL, act_space, **kw), seed=0)


def frames(n: int, seed: int = 0, shape=(36, 36, 3)) -> np.ndarray:
    """Blocky frames (flat colour patches, like a top-down track) that compress like real ones."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 4, (n, shape[0] // 6, shape[1] // 6, shape[2])) * 60
    return np.repeat(np.repeat(coarse, 6, axis=1), 6, axis=2).astype(np.uint8)


def image_episode(t: int, seed: int = 0, **kw) -> Episode:
    rng = np.random.default_rng(seed)
    return Episode(
        obs=frames(t + 1, seed),
        actions=rng.uniform(-1, 1, (t, 2)).astype(np.float32),
        rewards=rng.normal(size=t).astype(np.float32),
        terminated=True,
        **kw,
    )


# ------------------------------------------------------------------------------- encoder
def test_config_picks_the_cnn_for_frames_and_it_outputs_features():
    cfg = PolicyConfig.for_spaces(SMALL, BOX)
    assert cfg.encoder == "cnn" and not cfg.normalize_obs
    enc = CNNEncoder((36, 36, 3), (32,), n_obs_steps=3, channels=(4, 8, 8))
    assert enc(torch.zeros(5, 3, 36, 36, 3, dtype=torch.uint8)).shape == (5, 32)
    enc1 = CNNEncoder((96, 96, 3), (256,))
    assert enc1.conv_dim == 64 * 8 * 8  # the Nature CNN's 4096 features on CarRacing frames
    assert enc1(torch.zeros(2, 96, 96, 3, dtype=torch.uint8)).shape == (2, 256)
    with pytest.raises(ConfigError, match=r"\(H, W, C\) frames"):
        CNNEncoder((10,), (8,))
    with pytest.raises(ConfigError, match="random_shift is an image augmentation"):
        Policy(PolicyConfig.for_spaces(gym.spaces.Box(-1, 1, (3,)), BOX, random_shift=2))


@pytest.mark.parametrize("head", sorted(HEADS))
def test_cnn_composes_with_every_head(head):
    discrete = HEADS[head].discrete
    act_space = gym.spaces.Discrete(3) if discrete else BOX
    policy = small_policy(act_space, head=head, n_obs_steps=2, random_shift=2)
    obs = frames(4)
    acts = np.array([act_space.sample() for _ in range(4)])
    policy.set_normalization(obs, acts)
    out = policy.act(obs)
    assert out.shape == ((4,) if discrete else (4, 2))
    policy.train()
    stacked = torch.as_tensor(np.stack([obs, obs], axis=1))
    a = torch.as_tensor(acts, dtype=torch.float32).reshape(4, 1, -1)
    loss, _ = bc.bc_loss(policy, stacked, a, None)
    loss.backward()
    assert torch.isfinite(loss)
    assert policy.encoder.convs[0].weight.grad is not None


def test_frame_history_is_per_sub_env_and_reset_by_mask():
    hist = ObsHistory(3)
    o = [np.full((2, 1), v, np.float32) for v in range(5)]
    np.testing.assert_array_equal(hist.push(o[0], (1,))[:, :, 0], [[0, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(hist.push(o[1], (1,))[:, :, 0], [[0, 0, 1], [0, 0, 1]])
    hist.episodes_started(np.array([False, True]))  # sub-env 1 starts a new episode
    np.testing.assert_array_equal(hist.push(o[2], (1,))[:, :, 0], [[0, 1, 2], [2, 2, 2]])
    np.testing.assert_array_equal(hist.push(o[3], (1,))[:, :, 0], [[1, 2, 3], [2, 2, 3]])
    hist.episodes_started()
    np.testing.assert_array_equal(hist.push(o[4], (1,))[:, :, 0], [[4, 4, 4], [4, 4, 4]])
    # A batch of a different size starts afresh.
    assert hist.push(np.zeros((3, 1), np.float32), (1,)).shape == (3, 3, 1)


def test_policy_acts_on_the_last_k_frames_of_each_env():
    policy = small_policy(n_obs_steps=3)
    seq = frames(6, seed=1)
    policy.episodes_started()
    for t in range(4):
        got = policy.act(np.stack([seq[t], seq[t + 2]]))
    # After 4 steps env 0 has seen seq[0..3], env 1 seq[2..5]: it acts on the last three.
    want = policy.predict_chunk(np.stack([seq[1:4], seq[3:6]]))[:, 0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    policy.episodes_started(np.array([True, False]))
    got = policy.act(np.stack([seq[0], seq[0]]))
    want = policy.predict_chunk(
        np.stack([np.stack([seq[0]] * 3), np.stack([seq[4], seq[5], seq[0]])])
    )
    np.testing.assert_allclose(got, want[:, 0], rtol=1e-5, atol=1e-6)


def test_random_shift_is_pad_and_crop_and_only_in_training():
    x = torch.randint(0, 255, (6, 4, 12, 10), dtype=torch.uint8)
    out = random_shift(x, 3, torch.Generator().manual_seed(0))
    shifts = torch.randint(-3, 4, (6, 2), generator=torch.Generator().manual_seed(0)).tolist()
    padded = F.pad(x.float(), (3, 3, 3, 3), mode="replicate")
    for i, (sy, sx) in enumerate(shifts):
        assert torch.equal(out[i].float(), padded[i, :, 3 + sy : 15 + sy, 3 + sx : 13 + sx])
    assert out.dtype == torch.uint8

    policy = small_policy(random_shift=4)
    obs = torch.as_tensor(frames(8, seed=2))
    plain = small_policy(random_shift=0)
    plain.load_state_dict(policy.state_dict())
    policy.eval()
    plain.eval()
    e1, e2 = policy.features(obs), policy.features(obs)
    assert torch.equal(e1, e2) and torch.equal(e1, plain.features(obs))
    policy.train()
    torch.manual_seed(0)
    t1, t2 = policy.features(obs), policy.features(obs)  # a training step: shifted
    assert not torch.equal(t1, t2) and not torch.equal(t1, e1)
    with torch.no_grad():  # acting, even in training mode: never shifted
        assert torch.equal(policy.features(obs), e1)
    np.testing.assert_array_equal(policy.act(obs.numpy()), plain.act(obs.numpy()))


def test_cnn_policy_save_load_round_trip(tmp_path):
    policy = small_policy(n_obs_steps=2, random_shift=2, head="gaussian")
    obs = frames(20, seed=3)
    policy.set_normalization(obs, np.random.default_rng(0).uniform(-1, 1, (20, 2)))
    policy.save(tmp_path / "p")
    loaded = Policy.load(tmp_path / "p")
    assert loaded.config == policy.config
    assert loaded.config.n_obs_steps == 2 and loaded.config.random_shift == 2
    policy.episodes_started()
    loaded.episodes_started()
    for t in range(3):
        np.testing.assert_array_equal(loaded.act(obs[t : t + 2]), policy.act(obs[t : t + 2]))
    cfg = json.loads((tmp_path / "p" / "config.json").read_text())["policy"]
    del cfg["n_obs_steps"], cfg["random_shift"]  # a checkpoint written before these existed
    assert PolicyConfig.from_dict(cfg).n_obs_steps == 1


def test_keypoints_are_where_each_map_peaks_and_reload(tmp_path):
    soft = SpatialSoftmax(channels=2, height=5, width=9, keypoints=2)
    with torch.no_grad():  # keypoint k = 30 × channel k: a sharp softmax
        soft.proj.weight.copy_(30 * torch.eye(2)[:, :, None, None])
        soft.proj.bias.zero_()
    maps = torch.zeros(3, 2, 5, 9)
    spots = [((0, 0), (4, 8)), ((2, 4), (1, 6)), ((4, 2), (3, 0))]  # (row, col) per channel
    for i, pair in enumerate(spots):
        for ch, (r, c) in enumerate(pair):
            maps[i, ch, r, c] = 1.0
    expected = [[c / 4 - 1, r / 2 - 1] for pair in spots for (r, c) in pair]  # x, y in [-1, 1]
    got = soft(maps).reshape(-1, 2)
    assert torch.allclose(got, torch.tensor(expected), atol=1e-6)
    assert "grid" not in soft.state_dict()  # rebuilt from the shape, not a weight

    policy = small_policy(encoder_kwargs={**TINY_CNN, "keypoints": 6}, random_shift=2)
    assert policy.encoder.conv_dim == 12 and policy.encoder.out_dim == 16
    obs = frames(4, seed=5)
    policy.save(tmp_path / "kp")
    loaded = Policy.load(tmp_path / "kp")
    assert loaded.config.encoder_kwargs["keypoints"] == 6
    np.testing.assert_array_equal(loaded.act(obs), policy.act(obs))
    with pytest.raises(ConfigError, match="keypoints"):
        small_policy(encoder_kwargs={**TINY_CNN, "keypoints": -1})


# ---------------------------------------------------------------------------- image store
def test_image_store_round_trip_is_compressed_and_lazy(tmp_path):
    eps = [image_episode(30, 0), image_episode(20, 1, round=1), image_episode(25, 2)]
    with Store.create(tmp_path / "s", SMALL, BOX, task="t") as store:
        store.extend(eps)
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    assert meta["version"] == 3 and meta["obs_codec"] == "zlib"
    store = Store.open(tmp_path / "s")
    raw = sum(e.obs.nbytes for e in eps)
    assert (tmp_path / "s" / "obs.bin").stat().st_size < raw / 5
    data = store.transitions()
    assert isinstance(data.obs, FrameArray) and data.obs.shape == (75, 36, 36, 3)
    want = np.concatenate([e.obs[:-1] for e in eps])
    np.testing.assert_array_equal(np.asarray(data.obs), want)
    np.testing.assert_array_equal(data.obs[31], want[31])
    np.testing.assert_array_equal(
        data.obs.take(np.array([[5, 5], [74, 0]])), want[[[5, 5], [74, 0]]]
    )
    sub = data.select_episodes(np.array([False, True, True]))
    assert isinstance(sub.obs, FrameArray)
    np.testing.assert_array_equal(np.asarray(sub.obs), want[30:])
    order = np.array([2, 0])
    re = reorder_episodes(data, order)
    np.testing.assert_array_equal(np.asarray(re.obs), np.concatenate([want[50:], want[:30]]))
    for got, ep in zip(store.episodes(), eps, strict=True):
        assert isinstance(got.obs, np.ndarray)
        np.testing.assert_array_equal(got.obs, ep.obs)
        np.testing.assert_array_equal(got.actions, ep.actions)


def test_only_the_rows_asked_for_are_decompressed(tmp_path, monkeypatch):
    with Store.create(tmp_path / "s", SMALL, BOX) as store:
        store.extend([image_episode(50, 0), image_episode(50, 1)])
    calls = []
    real = zlib.decompress
    monkeypatch.setattr(frames_mod.zlib, "decompress", lambda b: calls.append(1) or real(b))
    data = Store.open(tmp_path / "s").transitions()
    assert calls == []  # opening and indexing decompress nothing
    sub = data.obs[np.arange(0, 100, 2)][::5]
    assert calls == [] and len(sub) == 10
    sub.take(np.array([0, 1, 1, 3, 0]))
    assert len(calls) == 3  # each distinct frame once


def test_vector_stores_are_unchanged(tmp_path):
    space = gym.spaces.Box(-1, 1, (3,), np.float32)
    with Store.create(tmp_path / "s", space, BOX) as store:
        store.append(
            Episode(
                obs=np.zeros((4, 3), np.float32),
                actions=np.zeros((3, 2), np.float32),
                rewards=np.zeros(3, np.float32),
            )
        )
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    assert meta["version"] == 3 and "obs_codec" not in meta
    assert not (tmp_path / "s" / "obs.idx").exists()
    assert (tmp_path / "s" / "obs.bin").stat().st_size == 4 * 3 * 4
    assert isinstance(Store.open(tmp_path / "s").transitions().obs, np.ndarray)


@pytest.mark.parametrize(("file", "where"), [("obs.bin", -40), ("obs.idx", -3)])
def test_crc_catches_a_flipped_byte(tmp_path, file, where):
    with Store.create(tmp_path / "s", SMALL, BOX) as store:
        store.extend([image_episode(10, 0), image_episode(10, 1)])
    raw = bytearray((tmp_path / "s" / file).read_bytes())
    raw[where] ^= 0x01
    (tmp_path / "s" / file).write_bytes(bytes(raw))
    with pytest.raises(DataError, match=rf"{file.replace('.', '[.]')}: episode 1 is corrupt"):
        Store.open(tmp_path / "s").transitions()


def test_torn_image_append_is_cut_off(tmp_path):
    with Store.create(tmp_path / "s", SMALL, BOX) as store:
        store.extend([image_episode(10, 0)])
    for name in ("obs.bin", "obs.idx"):
        with open(tmp_path / "s" / name, "ab") as f:
            f.write(b"\x07" * 13)
    assert len(Store.open(tmp_path / "s").transitions()) == 10
    with Store.open(tmp_path / "s", writable=True) as store:
        store.append(image_episode(5, 1))
    data = Store.open(tmp_path / "s").transitions()
    np.testing.assert_array_equal(np.asarray(data.obs[10:]), image_episode(5, 1).obs[:-1])


KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np, gymnasium as gym
    from protege.data.store import Store
    from protege.data.episode import Episode
    store = Store.create(sys.argv[1], gym.spaces.Box(0, 255, (36, 36, 3), np.uint8),
                         gym.spaces.Discrete(4))
    rng = np.random.default_rng(0)
    i = 0
    while True:
        t = 60
        obs = rng.integers(0, 3, (t + 1, 36, 36, 3), dtype=np.uint8) * 100
        obs[:, 0, 0, 0] = i % 256
        store.append(Episode(obs=obs, actions=rng.integers(0, 4, t),
                             rewards=np.ones(t, np.float32)))
        i += 1
        print(i, flush=True)
    """
)


def test_kill_9_while_appending_frames_loses_at_most_the_episode_in_flight(tmp_path):
    path = tmp_path / "s"
    committed = kill_after_appends(KILL_SCRIPT, path, at_least=10)
    store = Store.open(path)
    assert committed <= len(store) <= committed + 1
    data = store.transitions()  # CRC-checked
    assert len(data) == 60 * len(store)
    np.testing.assert_array_equal(
        data.obs.take(np.arange(0, len(data), 60))[:, 0, 0, 0], np.arange(len(store)) % 256
    )
    with Store.open(path, writable=True) as w:
        w.append(
            Episode(
                obs=np.zeros((3, 36, 36, 3), np.uint8),
                actions=np.zeros(2, np.int64),
                rewards=np.zeros(2, np.float32),
            )
        )
    assert len(Store.open(path).transitions()) == 60 * len(store) + 2


# ------------------------------------------------------------------------------ training
def test_bc_trains_from_lazy_frames_exactly_as_from_memory(tmp_path):
    eps = [image_episode(40, s) for s in range(3)]
    with Store.create(tmp_path / "s", SMALL, BOX) as store:
        store.extend(eps)
    lazy = Store.open(tmp_path / "s").transitions()
    memory = Transitions(**{**lazy.__dict__, "obs": np.asarray(lazy.obs)})
    cfg = bc.BCConfig(steps=12, batch_size=16, eval_every=4, val_fraction=0.34, progress=False)
    results = []
    for data in (lazy, memory):
        policy = small_policy(n_obs_steps=2, random_shift=2)
        results.append((bc.fit(policy, data, cfg).history, policy.state_dict()))
    assert results[0][0] == results[1][0]
    for key, value in results[0][1].items():
        torch.testing.assert_close(value, results[1][1][key], rtol=0, atol=0)


def test_history_is_stacked_at_sample_time_within_episodes():
    eps = [image_episode(4, s) for s in range(2)]
    obs = np.concatenate([e.obs[:-1] for e in eps])
    data = Transitions(
        obs=obs,
        actions=np.concatenate([e.actions for e in eps]),
        executed=np.concatenate([e.actions for e in eps]),
        rewards=np.zeros(8, np.float32),
        actor=np.zeros(8, np.uint8),
        labeled=np.ones(8, bool),
        episode_starts=np.array([0, 4]),
        episode_lengths=np.array([4, 4]),
        rounds=np.zeros(2, np.int64),
    )
    samples = bc._Samples(small_policy(n_obs_steps=3), data, np.array([0, 1]))
    got = samples.observations(torch.tensor([0, 2, 4, 5])).numpy()
    np.testing.assert_array_equal(got[0], obs[[0, 0, 0]])
    np.testing.assert_array_equal(got[1], obs[[0, 1, 2]])
    np.testing.assert_array_equal(got[2], obs[[4, 4, 4]])  # never reaches into episode 0
    np.testing.assert_array_equal(got[3], obs[[4, 4, 5]])


def test_minari_export_of_an_image_store(tmp_path):
    """Frames round-trip through Minari exactly (lossless by default), or close with JPEG."""
    pytest.importorskip("minari")
    from protege.data.minari_io import export_to_minari, import_from_minari

    with Store.create(tmp_path / "s", SMALL, BOX) as store:
        store.extend([image_episode(6, 0), image_episode(4, 1)])
    root = tmp_path / "minari"
    export_to_minari(tmp_path / "s", "protege/images-v0", root=root)
    export_to_minari(tmp_path / "s", "protege/images-jpeg-v0", root=root, jpeg_images=True)
    back = import_from_minari("protege/images-v0", tmp_path / "back", root=root)
    jpeg = import_from_minari("protege/images-jpeg-v0", tmp_path / "jpeg", root=root)
    assert back.obs_codec == "zlib"
    a, b = Store.open(tmp_path / "s").transitions(), Store.open(tmp_path / "back").transitions()
    assert b.obs.shape == a.obs.shape and b.obs.dtype == np.uint8
    np.testing.assert_array_equal(np.asarray(a.obs), np.asarray(b.obs))
    lossy = np.asarray(jpeg.transitions().obs, np.int16)
    diff = np.abs(np.asarray(a.obs, np.int16) - lossy)
    assert 0 < diff.mean() < 20  # JPEG: close, not equal
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.rewards, b.rewards)
