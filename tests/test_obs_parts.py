"""Observations of several parts (a Dict space of a camera image and a state vector): the
store keeps each part, the policy encodes each part, BC and DAgger learn from them, and a
part that does not fit is named in the error.

Each test runs once: the parts encoder has no CPU fast path, so the `both_paths` fixture
(fast paths on, then off) would run the same arithmetic twice."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import protege
from fakes import CAM_CARTPOLE, CAM_ENCODER, CamCartPole
from protege import BCConfig, Policy, PolicyConfig, Store
from protege.algos import bc, dagger, engine, hg_dagger, thrifty
from protege.configs.interactive import DAggerConfig
from protege.data.episode import Episode
from protege.data.frames import FrameArray
from protege.data.obs import check_obs
from protege.data.repair import check_store
from protege.errors import CheckpointError, ConfigError, DataError
from protege.policies.parts import PartsEncoder
from protege.policies.thrifty import ThriftyLearner

SMALL = {"hidden_sizes": (64,), "encoder_kwargs": CAM_ENCODER}
CAM = gym.spaces.Box(0, 255, (6, 5, 3), np.uint8)
STATE = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
SPACE = gym.spaces.Dict({"cam": CAM, "state": STATE})
ACT = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


def parts_episode(t: int = 5, seed: int = 0) -> Episode:
    rng = np.random.default_rng(seed)
    return Episode(
        obs={
            "cam": rng.integers(0, 256, (t + 1, 6, 5, 3), dtype=np.uint8),
            "state": rng.normal(size=(t + 1, 4)).astype(np.float32),
        },
        actions=rng.uniform(-1, 1, (t, 2)).astype(np.float32),
        rewards=rng.normal(size=t).astype(np.float32),
        seed=seed,
    )


# ----------------------------------------------------------------------------- store
def test_store_round_trip_keeps_each_part_and_dtype(tmp_path: Path) -> None:
    episodes = [parts_episode(5, 0), parts_episode(3, 1)]
    with Store.create(tmp_path / "s", SPACE, ACT, task="mine") as store:
        store.extend(episodes)
    assert sorted(p.name for p in (tmp_path / "s").glob("obs*")) == [
        "obs.cam.bin",
        "obs.cam.idx",
        "obs.state.bin",
    ]
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    assert meta["observation_space"]["kind"] == "dict" and meta["obs_codec_parts"] == ["cam"]
    again = Store.open(tmp_path / "s")
    assert isinstance(again.observation_space, gym.spaces.Dict)
    assert again.observation_space == SPACE
    for got, want in zip(again.episodes(), episodes, strict=True):
        for name in ("cam", "state"):
            assert got.obs[name].dtype == want.obs[name].dtype
            np.testing.assert_array_equal(got.obs[name], want.obs[name])
    data = again.transitions()
    assert isinstance(data.obs["cam"], FrameArray) and data.obs["state"].dtype == np.float32
    assert len(data.obs["cam"]) == len(data.obs["state"]) == 8  # T per episode, not T+1
    np.testing.assert_array_equal(data.obs["state"][5:], episodes[1].obs["state"][:3])
    sub = data.take_episodes(np.array([1]))
    np.testing.assert_array_equal(np.asarray(sub.obs["cam"]), episodes[1].obs["cam"][:3])
    # Reopened for appending, the frames continue where they ended.
    with Store.create(tmp_path / "s", SPACE, ACT, exist_ok=True) as store:
        store.append(parts_episode(2, 2))
    assert len(Store.open(tmp_path / "s").transitions()) == 10
    assert check_store(tmp_path / "s").ok
    # Not compressed at all on request: every part raw.
    with Store.create(tmp_path / "raw", SPACE, ACT, compress_obs=False) as store:
        store.append(episodes[0])
    assert not (tmp_path / "raw" / "obs.cam.idx").exists()
    np.testing.assert_array_equal(
        next(Store.open(tmp_path / "raw").episodes()).obs["cam"], episodes[0].obs["cam"]
    )


def test_a_corrupt_part_is_named_by_its_file(tmp_path: Path) -> None:
    with Store.create(tmp_path / "s", SPACE, ACT) as store:
        store.extend([parts_episode(5, 0), parts_episode(4, 1)])
    state = tmp_path / "s" / "obs.state.bin"
    raw = bytearray(state.read_bytes())
    raw[-3] ^= 0xFF  # the second episode's last row
    state.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"obs\.state\.bin: episode 1 is corrupt"):
        Store.open(tmp_path / "s").transitions()
    report = check_store(tmp_path / "s")
    assert [e.problem is None for e in report.episodes] == [True, False]
    assert "obs.state.bin" in (report.episodes[1].problem or "")
    out = protege.data.repair.repair(tmp_path / "s", tmp_path / "fixed")
    assert len(out.intact) == 1 and len(Store.open(tmp_path / "fixed")) == 1


def test_a_part_that_does_not_fit_is_named(tmp_path: Path) -> None:
    good = parts_episode(4)
    with pytest.raises(DataError, match="part 'state' has 4 rows; expected T\\+1 = 5"):
        Episode(obs={"cam": good.obs["cam"], "state": good.obs["state"][:4]}, **_rest(good))
    with pytest.raises(DataError, match="part 'arm' is itself a dict; nested dicts"):
        Episode(obs={"arm": {"q": good.obs["state"]}}, **_rest(good))
    store = Store.create(tmp_path / "s", SPACE, ACT)
    bad_shape = {"cam": good.obs["cam"][:, :, :4], "state": good.obs["state"]}
    with pytest.raises(DataError, match="observation part 'cam' have shape \\(6, 4, 3\\)"):
        store.append(Episode(obs=bad_shape, **_rest(good)))
    bad_dtype = {"cam": good.obs["cam"] + 0.5, "state": good.obs["state"]}
    with pytest.raises(DataError, match="observation part 'cam' have dtype float64"):
        store.append(Episode(obs=bad_dtype, **_rest(good)))
    with pytest.raises(DataError, match=r"missing \['state'\]"):
        store.append(Episode(obs={"cam": good.obs["cam"]}, **_rest(good)))
    with pytest.raises(DataError, match="the store's are parts"):
        store.append(Episode(obs=good.obs["state"], **_rest(good)))
    assert len(store) == 0
    nested = gym.spaces.Dict({"arm": gym.spaces.Dict({"q": STATE})})
    with pytest.raises(DataError, match="part 'arm' is itself a Dict; nested dicts"):
        Store.create(tmp_path / "n", nested, ACT)
    with pytest.raises(DataError, match="part 'k' is Discrete"):
        Store.create(tmp_path / "d", gym.spaces.Dict({"k": gym.spaces.Discrete(3)}), ACT)
    with pytest.raises(DataError, match="only describes observations"):
        Store.create(tmp_path / "a", STATE, SPACE)


def _rest(ep: Episode) -> dict:
    return {"actions": ep.actions, "rewards": ep.rewards}


# ---------------------------------------------------------------------------- policy
def test_parts_policy_chunks_stacks_history_and_reloads(tmp_path: Path) -> None:
    """Chunked acting, history per part and a save/load round trip on observation parts
    (the camera through spatial-softmax keypoints); a part of the wrong shape is named."""
    small_cnn = {"channels": [4], "kernels": [3], "strides": [1], "image_sizes": [8]}
    small_cnn["keypoints"] = 3
    cfg = PolicyConfig.for_spaces(
        SPACE, ACT, hidden_sizes=(16,), chunk_size=3, n_obs_steps=2, encoder_kwargs=small_cnn
    )
    assert cfg.encoder == "parts" and cfg.obs_parts == {"cam": (6, 5, 3), "state": (4,)}
    policy = Policy(cfg, seed=0)
    assert policy.encoder.parts[0].conv_dim == 6  # 3 keypoints (x, y)
    ep = parts_episode(6)
    policy.set_normalization(ep.obs, ep.actions)
    assert not torch.equal(policy.part_stats[1].mean, torch.zeros(4))
    obs = {name: part[:2] for name, part in ep.obs.items()}
    policy.episodes_started()
    first = [policy.act(obs) for _ in range(3)]
    assert first[0].shape == (2, 2) and first[0].dtype == np.float32
    policy.save(tmp_path / "p")
    loaded = Policy.load(tmp_path / "p")
    assert loaded.config == cfg
    loaded.episodes_started()
    for want in first:
        np.testing.assert_array_equal(loaded.act(obs), want)
    with pytest.raises(DataError, match="observation part 'state'"):
        loaded.act({"cam": obs["cam"], "state": obs["state"][:, :3]})
    with pytest.raises(DataError, match=r"missing \['cam'\]"):
        loaded.predict_chunk({"state": obs["state"]})
    stale = json.loads((tmp_path / "p" / "config.json").read_text())
    stale["policy"]["encoder"] = "mlp"
    (tmp_path / "p" / "config.json").write_text(json.dumps(stale))
    with pytest.raises(CheckpointError, match="parts encoder"):
        Policy.load(tmp_path / "p")


HEADS = {
    "mse": {},
    "gaussian": {},
    "mog": {},
    "binned": {"hidden_sizes": [16]},
    "diffusion": {"hidden_dim": 16},
    "flow": {"hidden_dim": 16},
}


@pytest.mark.parametrize("head", sorted(HEADS))
def test_every_head_trains_on_parts_with_chunks_and_history(tmp_path: Path, head: str) -> None:
    """BC on fused features for every continuous head, predicting chunks from a history of
    two steps per part (compressed camera frames gathered per batch), then acting."""
    with Store.create(tmp_path / "s", SPACE, ACT) as store:
        store.extend([parts_episode(6, 0), parts_episode(4, 1)])
    small_cnn = {"channels": [4], "kernels": [3], "strides": [1], "image_sizes": [8]}
    cfg = PolicyConfig.for_spaces(
        SPACE,
        ACT,
        head=head,
        head_kwargs=HEADS[head],
        hidden_sizes=(16,),
        chunk_size=2,
        n_obs_steps=2,
        random_shift=1,
        encoder_kwargs=small_cnn,
    )
    policy = Policy(cfg, seed=0)
    result = bc.fit(
        policy, Store.open(tmp_path / "s"), BCConfig(steps=4, batch_size=8, progress=False)
    )
    assert np.isfinite(result.history[-1]["train_loss"])
    acts = policy.act({name: part[:3] for name, part in parts_episode(2, 5).obs.items()})
    assert acts.shape == (3, 2) and np.isfinite(acts).all()


def test_every_camera_part_is_shifted_on_its_own_in_training_only() -> None:
    parts = {"left": (8, 8, 1), "right": (8, 8, 1), "q": (3,)}
    torch.manual_seed(0)
    enc = PartsEncoder(
        parts, (), random_shift=2, channels=[8], kernels=[3], strides=[1], image_sizes=[16]
    )
    enc.parts[1].load_state_dict(enc.parts[0].state_dict())  # two identical cameras
    frames = torch.randint(0, 256, (64, 8, 8, 1), dtype=torch.uint8)
    obs = {"left": frames, "right": frames.clone(), "q": torch.randn(64, 3)}
    enc.eval()
    quiet = enc(obs).detach()
    torch.testing.assert_close(quiet[:, :16], quiet[:, 16:32])  # same frames, same features
    enc.train()
    torch.manual_seed(0)
    noisy = enc(obs).detach()
    assert not torch.equal(noisy[:, :16], quiet[:, :16])
    assert not torch.equal(noisy[:, :16], noisy[:, 16:32])  # each camera its own shifts
    torch.testing.assert_close(noisy[:, 32:], quiet[:, 32:])  # the state is not augmented
    torch.testing.assert_close(quiet[:, 32:], obs["q"])  # no state layers: its values


def test_a_parts_policy_as_expert_and_the_teleop_window_take_parts() -> None:
    from protege.experts import PolicyExpert
    from protege.teleop.window import frame_of

    small_cnn = {"channels": [4], "kernels": [3], "strides": [1], "image_sizes": [8]}
    policy = Policy(PolicyConfig.for_spaces(SPACE, ACT, encoder_kwargs=small_cnn), seed=0)
    expert = PolicyExpert(policy, name="mine")
    expert.check_spaces(SPACE, ACT)
    with pytest.raises(ConfigError, match="mine"):
        expert.check_spaces(STATE, ACT)
    obs = parts_episode(3).obs
    assert expert.act(obs).shape == (4, 2)
    row = {name: part[0] for name, part in obs.items()}
    assert frame_of(None, row) is not None
    np.testing.assert_array_equal(frame_of(None, row), obs["cam"][0])
    assert frame_of(None, {"state": obs["state"][0]}) is None


def test_a_box_policy_config_is_written_as_before() -> None:
    cfg = PolicyConfig.for_spaces(STATE, ACT)
    assert "obs_parts" not in cfg.to_dict() and cfg.encoder == "mlp"
    with pytest.raises(ConfigError, match="either obs_shape or obs_parts"):
        PolicyConfig(obs_shape=(4,), act_dim=2, obs_parts={"q": (4,)}, encoder="parts")
    depth = gym.spaces.Dict({"depth": gym.spaces.Box(0.0, 1.0, (4, 4, 1), np.float32)})
    with pytest.raises(ConfigError, match="part 'depth': a 3-D part is a camera image"):
        PolicyConfig.for_spaces(depth, ACT)
    with pytest.raises(ConfigError, match="parts encoder is for observation parts"):
        PolicyConfig(obs_shape=(), act_dim=2, obs_parts={"q": (4,)})


# ---------------------------------------------------------------------- learning
@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cam") / "demos"
    protege.collect(CAM_CARTPOLE, path, episodes=10, n_envs=2, seed=0)
    return path


def test_bc_learns_from_camera_and_state(demos: Path) -> None:
    """The positions are only in the image, the velocities only in the state: a policy
    that balances the pole for the whole horizon reads both parts."""
    data = Store.open(demos).transitions()
    policy = Policy(PolicyConfig.for_spaces(*CAM_CARTPOLE.spaces, **SMALL), seed=0)
    settings = BCConfig(steps=1500, lr=3e-3, batch_size=32, seed=0, val_fraction=0.0)
    bc.fit(policy, data, dataclasses.replace(settings, progress=False))
    ev = protege.evaluate(policy, CAM_CARTPOLE, episodes=8, n_envs=4, seed=100)
    assert ev.success_rate == 1.0, ev.returns
    obs = {name: np.asarray(part[:200]) for name, part in data.obs.items()}
    acts = policy.act(obs)
    assert 0.2 < acts.mean() < 0.8
    # The pole drawn leaning further right (a brighter lower half): it pushes right more.
    cam = obs["cam"].astype(np.int64)
    cam[:, 8:] += 40
    tilted = policy.act({"cam": np.clip(cam, 0, 255).astype(np.uint8), "state": obs["state"]})
    assert tilted.mean() > acts.mean() + 0.2, (tilted.mean(), acts.mean())


def test_dagger_and_hg_dagger_run_rounds_on_parts(tmp_path: Path) -> None:
    cfg = DAggerConfig(
        rounds=2,
        episodes_per_round=2,
        initial_demos=1,
        n_envs=2,
        bc=BCConfig(steps=100, batch_size=32, val_fraction=0.0, progress=False),
        eval_episodes=2,
        eval_envs=2,
    )
    make = engine.policy_factory(CAM_CARTPOLE, **SMALL)
    res = dagger.run(CAM_CARTPOLE, tmp_path / "d", cfg, make_policy=make)
    assert len(res.rows) == 3
    assert res.rows[-1].labels > res.rows[1].labels > res.rows[0].labels
    data = Store.open(tmp_path / "d").transitions()
    assert set(data.obs) == {"cam", "state"} and data.labeled.all()
    assert sorted(set(data.rounds.tolist())) == [0, 1, 2]
    sc = hg_dagger.SupervisorConfig(use_risk=False, disagreement_threshold=0.5)
    res = hg_dagger.run(
        CAM_CARTPOLE, tmp_path / "h", dataclasses.replace(cfg, rounds=1), sc, make_policy=make
    )
    row = res.rows[-1]
    # Labels only where the supervisor drove; it watched (asked about) every step.
    assert row.labels == row.expert_steps
    assert row.expert_queries == row.expert_steps + row.learner_steps
    assert set(Store.open(tmp_path / "h").transitions().obs) == {"cam", "state"}


def test_thrifty_dagger_runs_on_parts(tmp_path: Path) -> None:
    """ThriftyDAgger's gate on observation parts: the ensemble's novelty, the success critic
    on the parts flattened, thresholds calibrated, every label counted."""
    cfg = DAggerConfig(
        rounds=1,
        episodes_per_round=1,
        initial_demos=1,
        n_envs=1,
        bc=BCConfig(steps=30, batch_size=32, val_fraction=0.0, progress=False),
        eval_episodes=1,
        eval_envs=1,
    )
    settings = thrifty.ThriftyConfig(members=2, q_steps=20, alpha_h=0.05)
    make = engine.policy_factory(CAM_CARTPOLE, **SMALL)
    res = thrifty.run(CAM_CARTPOLE, tmp_path / "t", cfg, settings, make_policy=make)
    row = res.rows[-1]
    assert row.labels == row.expert_steps == row.expert_queries
    assert {"novelty_threshold", "risk_threshold"} <= set(row.extras)
    learner = ThriftyLearner.load(tmp_path / "t.run" / "learners" / "round_001")
    assert learner.critic is not None and learner.critic.obs_dim == 16 * 16 + 2
    obs = {
        name: np.asarray(v[:5]) for name, v in Store.open(tmp_path / "t").transitions().obs.items()
    }
    assert learner.novelty(obs).shape == (5,)
    assert learner.critic.success(obs, learner.act(obs)).shape == (5,)


def test_a_policy_refuses_an_env_whose_part_does_not_fit() -> None:
    class Wider(CamCartPole):
        def __init__(self, env: gym.Env):
            super().__init__(env)
            spaces = dict(self.observation_space.spaces)
            spaces["state"] = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
            self.observation_space = gym.spaces.Dict(spaces)

        def observation(self, observation: np.ndarray) -> dict[str, np.ndarray]:
            out = super().observation(observation)
            out["state"] = np.append(out["state"], np.float32(0.0))
            return out

    task = dataclasses.replace(CAM_CARTPOLE, env_id=lambda render_mode=None: Wider(
        gym.make("CartPole-v1")
    ))  # fmt: skip
    policy = Policy(PolicyConfig.for_spaces(*CAM_CARTPOLE.spaces, **SMALL))
    with pytest.raises(DataError, match="observation part 'state' of shape \\(2,\\), got \\(3,\\)"):
        protege.evaluate(policy, task, 1)
    with pytest.raises(DataError, match="observation part 'state' has shape \\(3,\\) per row"):
        check_obs({"cam": np.zeros((1, 16, 16, 1), np.uint8), "state": np.zeros((1, 3))},
                  CAM_CARTPOLE.spaces[0], "here")  # fmt: skip
    with pytest.raises(DataError, match="observation part 'cam' has dtype float64"):
        check_obs({"cam": np.zeros((1, 16, 16, 1)), "state": np.zeros((1, 2), np.float32)},
                  CAM_CARTPOLE.spaces[0], "here")  # fmt: skip


def test_minari_round_trip_of_parts(tmp_path: Path) -> None:
    pytest.importorskip("minari")
    from protege.data.minari_io import export_to_minari, import_from_minari

    with Store.create(tmp_path / "s", SPACE, ACT) as store:
        store.extend([parts_episode(5, 0), parts_episode(3, 1)])
    export_to_minari(tmp_path / "s", "protege/parts-v0", root=tmp_path / "m")
    back = import_from_minari("protege/parts-v0", tmp_path / "b", root=tmp_path / "m")
    assert back.observation_space == SPACE
    for a, b in zip(Store.open(tmp_path / "s").episodes(), back.episodes(), strict=True):
        for name in ("cam", "state"):
            assert a.obs[name].dtype == b.obs[name].dtype
            np.testing.assert_array_equal(a.obs[name], b.obs[name])
    shutil.rmtree(tmp_path / "m")
