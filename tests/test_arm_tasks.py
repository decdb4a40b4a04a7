"""Manipulation tasks: Meta-World and Fetch (seeding, experts, hidden goal) and their pixels."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("metaworld")
pytest.importorskip("gymnasium_robotics")

import protege
from protege import Store, tasks
from protege.errors import ConfigError
from protege.experts.metaworld import MetaWorldExpert
from protege.rollout.evaluate import evaluate_expert
from protege.tasks import mujoco_render
from protege.tasks.metaworld_env import GOAL
from protege.tasks.metaworld_names import HEADLINE_TASKS, METAWORLD_TASKS, WORKSPACE_TASKS


def test_registering_imports_neither_metaworld_nor_mujoco() -> None:
    code = (
        "import sys; from protege import tasks; names = tasks.names();"
        "assert 'metaworld/pick-place-hidden' in names and 'fetch/push' in names;"
        "tasks.make('metaworld/pick-place').description;"
        "bad = [m for m in ('mujoco', 'metaworld', 'gymnasium_robotics') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_whole_family_is_registered() -> None:
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    assert sorted(f"{n}-v3" for n in METAWORLD_TASKS) == sorted(ALL_V3_ENVIRONMENTS)
    names = set(tasks.names())
    for n in METAWORLD_TASKS:
        assert {f"metaworld/{n}", f"metaworld/{n}-hidden"} <= names
    assert {f"metaworld/{n}-pixels" for n in HEADLINE_TASKS} <= names
    assert {f"metaworld/{n}-camera" for n in HEADLINE_TASKS} <= names
    assert {f"metaworld/{n}-camera-workspace" for n in WORKSPACE_TASKS} <= names


def test_the_seed_given_to_reset_decides_the_configuration() -> None:
    task = tasks.make("metaworld/pick-place")
    a, b = task.make_env(), task.make_env()
    try:
        first = a.reset(seed=7)[0]
        a.reset(seed=8)
        assert np.array_equal(a.reset(seed=7)[0], first)  # same env, later
        assert np.array_equal(b.reset(seed=7)[0], first)  # another env
        others = [b.reset(seed=s)[0] for s in range(5)]
        objects = {tuple(np.round(o[4:7], 4)) for o in others}
        goals = {tuple(np.round(o[GOAL], 4)) for o in others}
        assert len(objects) == 5 and len(goals) == 5
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("name", HEADLINE_TASKS)
def test_metaworld_experts_succeed(name: str) -> None:
    ev = evaluate_expert(tasks.make(f"metaworld/{name}"), episodes=2, n_envs=2, seed=0)
    assert ev.success_rate == 1.0
    assert ev.mean_length < 150  # the episode ends at success


def test_hidden_goal_needs_the_privileged_expert() -> None:
    task = tasks.make("metaworld/pick-place-hidden")
    env = task.make_env()
    try:
        obs, info = env.reset(seed=3)
        assert np.all(obs[GOAL] == 0) and np.any(info["state"][GOAL] != 0)
        assert np.allclose(info["state"][GOAL], info["goal"])
    finally:
        env.close()
    assert evaluate_expert(task, episodes=2, n_envs=2, seed=0).success_rate == 1.0
    blind = MetaWorldExpert("pick-place")  # acts on the observation, goal zeroed
    blind_task = dataclasses.replace(task, name="blind", expert_factory=lambda: blind)
    assert evaluate_expert(blind_task, episodes=2, n_envs=2, seed=0).success_rate == 0.0
    with pytest.raises(ValueError, match="info"):
        task.make_expert().act(obs[None])


@pytest.mark.parametrize("name", ["fetch/pick-place", "fetch/push"])
def test_fetch_experts_succeed(name: str) -> None:
    ev = evaluate_expert(tasks.make(name), episodes=3, n_envs=3, seed=0)
    assert ev.success_rate == 1.0


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "fetch/pick-place",
        "fetch/push",
        *(f"metaworld/{n}{v}" for n in HEADLINE_TASKS for v in ("", "-hidden")),
    ],
)
def test_experts_succeed_20_of_20(name: str) -> None:
    ev = evaluate_expert(tasks.make(name), episodes=20, n_envs=4, seed=100)
    assert ev.success_rate == 1.0


def _wood(frame: np.ndarray) -> np.ndarray:
    """Pixels of Meta-World's wooden table top."""
    f = frame.astype(int)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    return (r - g > 15) & (g - b > 15) & (g > 60)


def test_metaworld_pixels_are_upright_and_not_blank() -> None:
    task = tasks.make("metaworld/pick-place-pixels")
    assert task.spaces[0].shape == (84, 84, 3)
    for _ in range(2):  # a second env after closing the first still renders
        env = task.make_env(render_mode="rgb_array")
        try:
            obs, _ = env.reset(seed=0)
            big = env.render()
        finally:
            env.close()
        for frame in (obs, big):
            assert not mujoco_render.is_blank(frame)
            half = len(frame) // 2
            wood = _wood(frame)
            assert wood[half:].mean() > 0.2 > 0.02 > wood[:half].mean()  # table at the bottom
    assert big.shape == (240, 240, 3)


def test_metaworld_camera_and_state_shows_the_arm_not_the_block(tmp_path: Path) -> None:
    task = tasks.make("metaworld/pick-place-camera")
    space = task.spaces[0]
    assert isinstance(space, gym.spaces.Dict) and list(space) == ["corner", "state"]
    assert space["corner"].shape == (84, 84, 3) and space["corner"].dtype == np.uint8
    assert space["state"].shape == (8,) and space["state"].dtype == np.float32
    env = task.make_env()
    try:
        obs, info = env.reset(seed=0)
        frame, state = obs["corner"], obs["state"]
        assert space.contains(obs)
        assert not mujoco_render.is_blank(frame)
        wood = _wood(frame)
        assert wood[42:].mean() > 0.2 > 0.02 > wood[:42].mean()  # upright
        full = info["state"]
        assert np.allclose(state, full[[0, 1, 2, 3, 18, 19, 20, 21]], atol=1e-6)
        for hidden in (full[4:7], full[GOAL]):  # block and goal positions
            assert not np.any(np.isclose(state[:, None], hidden[None, :], atol=1e-4)), hidden
        obs2, *_ = env.step(np.array([1.0, 0.0, 0.0, 0.0], np.float32))
        assert np.allclose(obs2["state"][4:], state[:4], atol=1e-6)  # the previous frame's
        assert not np.array_equal(obs2["corner"], frame)  # the arm moved in view
    finally:
        env.close()
    assert evaluate_expert(task, episodes=2, n_envs=2, seed=0).success_rate == 1.0
    protege.collect(dataclasses.replace(task, horizon=5), tmp_path / "s", episodes=2, seed=0)
    data = Store.open(tmp_path / "s").transitions()
    assert set(data.obs) == {"corner", "state"} and len(data) == 10
    assert data.obs["corner"].shape == (10, 84, 84, 3) and data.obs["corner"].dtype == np.uint8
    assert data.obs["state"].shape == (10, 8) and data.obs["state"].dtype == np.float32


def test_the_workspace_camera_shows_the_goal_several_times_larger() -> None:
    def goal_pixels(name: str, part: str) -> int:
        env = tasks.make(name).make_env()
        try:
            obs, _ = env.reset(seed=0)
        finally:
            env.close()
        f = obs[part].astype(int)
        assert f.shape == (84, 84, 3) and not mujoco_render.is_blank(obs[part])
        return int(((f[..., 2] > 120) & (f[..., 0] < 80) & (f[..., 1] < 80)).sum())  # blue

    corner = goal_pixels("metaworld/pick-place-camera", "corner")
    near = goal_pixels("metaworld/pick-place-camera-workspace", "workspace")
    assert 0 < 4 * corner < near, (corner, near)


def test_fetch_observes_its_dict_and_the_expert_reads_either_form() -> None:
    from protege.experts.fetch import FetchPushExpert
    from protege.tasks.fetch import PARTS

    task = tasks.make("fetch/push")
    space = task.spaces[0]
    assert isinstance(space, gym.spaces.Dict)
    assert {k: b.shape for k, b in space.items()} == {
        "observation": (25,),
        "achieved_goal": (3,),
        "desired_goal": (3,),
    }
    env = task.make_env()
    try:
        obs, _ = env.reset(seed=0)
    finally:
        env.close()
    assert space.contains(obs)
    batch = {k: v[None] for k, v in obs.items()}
    flat = np.concatenate([batch[k] for k in PARTS], axis=1)  # the flat order
    expert = FetchPushExpert()
    assert np.array_equal(expert.act(batch), expert.act(flat))
    with pytest.raises(ValueError, match="desired_goal"):
        expert.act({k: v for k, v in batch.items() if k != "desired_goal"})


def test_fetch_frames_are_upright() -> None:
    env = tasks.make("fetch/push").make_env(render_mode="rgb_array")
    try:
        env.reset(seed=0)
        f = env.render().astype(int)
    finally:
        env.close()
    green = (f[..., 1] - f[..., 0] > 30) & (f[..., 1] - f[..., 2] > 30)  # the backdrop
    assert green[:120].mean() > 0.4 > 0.2 > green[120:].mean()


def test_bad_names_and_cameras_say_so() -> None:
    from protege.tasks.metaworld import metaworld_task

    with pytest.raises(ConfigError, match="pick-plate"):
        metaworld_task("pick-plate")
    with pytest.raises(ConfigError, match="corner2"):
        metaworld_task("reach", observation="pixels", camera="nope").make_env()
    with pytest.raises(ConfigError, match="horizon"):
        metaworld_task("reach", horizon=501)
