"""The obstacle course: env, the 60/40 scripted expert, and an expressive head beating L2."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import protege.tasks
from protege.algos import bc
from protege.data.store import Store
from protege.policies import Policy, PolicyConfig
from protege.rollout.collect import collect
from protege.rollout.evaluate import evaluate, evaluate_expert
from protege.tasks.base import EpisodeOutcome
from protege.tasks.obstacle import (
    COURSE,
    LEFT,
    OBSTACLE,
    RIGHT,
    ObstacleCourse,
    ObstacleExpert,
    clip_command,
    segment_distance,
)


class FinalInfos:
    """A success test that also keeps each episode's final info (side, passed, crashed)."""

    def __init__(self) -> None:
        self.infos: list[dict[str, Any]] = []

    def __call__(self, outcome: EpisodeOutcome) -> bool:
        self.infos.append(outcome.final_info)
        return OBSTACLE.success(outcome)

    def rate(self, key: str, value: Any = True) -> float:
        return float(np.mean([info.get(key) == value for info in self.infos]))


def test_registered_and_gymnasium_compliant() -> None:
    assert protege.tasks.make("obstacle") is OBSTACLE
    env = OBSTACLE.make_env()
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=0)
    assert obs.shape == (2,)  # position only: the side is privileged
    assert info["side"] in (LEFT, RIGHT) and info["passed"] == 0


def test_side_comes_from_the_seeded_rng_and_can_be_fixed() -> None:
    env = ObstacleCourse()
    sides = [env.reset(seed=s)[1]["side"] for s in range(50)]
    assert sides == [env.reset(seed=s)[1]["side"] for s in range(50)]
    env.reset(seed=0)
    sides = [env.reset()[1]["side"] for _ in range(2000)]
    assert 0.57 < np.mean(np.array(sides) == LEFT) < 0.63
    _, info = env.reset(seed=0, options={"side": RIGHT, "position": (0.1, 0.2)})
    assert info["side"] == RIGHT
    np.testing.assert_allclose(env.reset(seed=0, options={"position": (0.1, 0.2)})[0], [0.1, 0.2])


def test_driving_straight_crashes_and_the_vehicle_cannot_stop() -> None:
    env = ObstacleCourse()
    obs, _ = env.reset(seed=0, options={"position": (0.0, 0.0)})
    for _ in range(100):
        obs, reward, terminated, _, info = env.step(np.array([-1.0, 0.0]))  # "brake"
        if terminated:
            break
    assert terminated and info["crashed"] and not info["reached"] and reward == -1.0
    assert info["passed"] == 0
    assert obs[0] > 0.3  # min_forward kept it moving
    np.testing.assert_allclose(clip_command(np.array([[-1.0, 0.0]]), 0.5), [[0.5, 0.0]])
    np.testing.assert_allclose(np.linalg.norm(clip_command(np.array([[1.0, 1.0]]))), 1.0)


def test_a_step_through_the_obstacle_is_a_crash() -> None:
    c = np.array(COURSE.obstacle)
    dx, dy = np.array([0.2, 0.0]), np.array([0.0, 0.3])
    assert segment_distance(c - dx, c + dx, c) == 0.0
    assert segment_distance(c + dy, c + dy + dx, c) == pytest.approx(0.3)


def test_expert_needs_the_privileged_side() -> None:
    with pytest.raises(ValueError, match="side"):
        ObstacleExpert().act(np.zeros((1, 2), np.float32))


def test_expert_reaches_the_goal_and_splits_60_40() -> None:
    record = FinalInfos()
    task = dataclasses.replace(OBSTACLE, success=record)
    ev = evaluate_expert(task, episodes=400, n_envs=16, seed=0)
    assert ev.success_rate >= 0.95
    assert ev.mean_return == pytest.approx(1.0, abs=0.05)
    left = record.rate("passed", LEFT)
    assert 0.55 < left < 0.65
    assert left + record.rate("passed", RIGHT) == pytest.approx(ev.success_rate, abs=0.01)
    # consistent within an episode: it passes on the side drawn at reset
    assert all(info["passed"] == info["side"] for info in record.infos)


def test_expert_recovers_from_any_state_in_front_of_the_obstacle() -> None:
    """Queried at states a learner reaches (off the start corridor, near the obstacle, on the
    wrong side), the expert still gets through without touching it."""
    rng = np.random.default_rng(0)
    env, expert = ObstacleCourse(), ObstacleExpert()
    reached = []
    for trial in range(150):
        p = np.array([rng.uniform(-0.2, 0.45), rng.uniform(-0.5, 0.5)])
        if np.hypot(*(p - COURSE.obstacle)) < COURSE.obstacle_radius + 0.02:
            continue
        obs, info = env.reset(
            seed=trial, options={"side": rng.choice([LEFT, RIGHT]), "position": p}
        )
        for _ in range(100):
            action = expert.act(obs[None], {"side": np.array([info["side"]])})
            obs, _, terminated, _, info = env.step(action[0])
            if terminated:
                break
        reached.append(info["reached"])
    assert np.mean(reached) >= 0.95


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Store:
    path = tmp_path_factory.mktemp("obstacle") / "demos"
    collect(OBSTACLE, path, episodes=100, n_envs=10, seed=0)
    return Store.open(path)


def _train_and_evaluate(head: str, demos: Store) -> tuple[Policy, FinalInfos, float]:
    torch.manual_seed(0)
    config = PolicyConfig.for_spaces(
        *OBSTACLE.spaces,
        head=head,
        hidden_sizes=(128, 128),
        action_norm="minmax",
        chunk_size=8,
        n_action_steps=8,
    )
    policy = Policy(config)
    bc.fit(policy, demos, bc.BCConfig(steps=2000, lr=3e-3, val_fraction=0.0, progress=False))
    record = FinalInfos()
    task = dataclasses.replace(OBSTACLE, success=record)
    ev = evaluate(
        policy,
        task,
        episodes=50,
        n_envs=25,
        seed=1000,
        deterministic=False,
        measure_disagreement=False,
    )
    return policy, record, ev.success_rate


def test_mixture_head_learns_the_course_where_l2_crashes(demos: Store) -> None:
    """Chunks of 8 executed open loop (ACT / Diffusion Policy style): L2 averages the left and
    right manoeuvres into one that hits the obstacle; the mixture samples one side's."""
    mse, mse_record, mse_success = _train_and_evaluate("mse", demos)
    # Where the demonstrators agree, L2 learned their actions, in env units (straight ahead at
    # the start; toward the gate past the obstacle).
    states = np.array([[0.0, 0.0], [0.7, 0.15], [0.7, -0.15], [0.85, 0.075]], np.float32)
    expert = ObstacleExpert().act(states, {"side": np.ones(4)})
    np.testing.assert_allclose(mse.predict_chunk(states)[:, 0], expert, atol=0.15)
    assert mse_success <= 0.3 and mse_record.rate("crashed") >= 0.7

    _, mog_record, mog_success = _train_and_evaluate("mog", demos)
    assert mog_success >= 0.9
    assert 0.4 <= mog_record.rate("passed", LEFT) <= 0.8
    assert mog_record.rate("passed", RIGHT) >= 0.15
