"""Issue 13's candidate tasks (``lunarlander-tight``: the lander with a tight pilot;
``lunarlander-steady``: with a gentle random start; ``lunarlander-noisy`` and
``lunarlander-noisy-mild``: noisy sensors) and the demo's one-sentence lesson,
computed from the run's own curves."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from protege import tasks
from protege.configs.demos import LunarDemoConfig
from protege.demos.lunarlander import Curve
from protege.demos.lunarlander_report import labels_summary, lesson
from protege.errors import ConfigError
from protege.experts.classic import LunarLanderExpert
from protege.rollout.evaluate import evaluate_expert
from protege.tasks.classic import MILD_SENSOR_NOISE, SENSOR_NOISE, STEADY_PUSH
from protege.tasks.lunar_start import CleanStatePilot, make_lunar_lander

TIGHT = tasks.make("lunarlander-tight")


def test_the_tight_lander_is_the_calm_one_with_another_pilot() -> None:
    assert LunarDemoConfig(task="lunarlander-tight").task == "lunarlander-tight"
    calm = tasks.make("lunarlander")
    assert TIGHT.env_kwargs == calm.env_kwargs and TIGHT.horizon == calm.horizon
    assert TIGHT.risk is calm.risk  # HG-DAgger's supervisor keeps the same safe set


def test_the_tight_pilot_fires_where_the_calm_one_coasts() -> None:
    rng = np.random.default_rng(0)
    obs = rng.normal(0.0, 0.3, size=(2000, 8)).astype(np.float32)
    obs[:, 6:] = 0.0
    tight, calm = TIGHT.make_expert().act(obs), LunarLanderExpert().act(obs)
    differ = tight != calm
    assert 0.01 < differ.mean() < 0.2
    assert (calm[differ] == 0).all()  # only inside the calm pilot's dead band, where it coasts


def test_the_tight_lander_is_seeded() -> None:
    a = evaluate_expert(TIGHT, episodes=2, n_envs=2, seed=5)
    b = evaluate_expert(TIGHT, episodes=2, n_envs=2, seed=5)
    np.testing.assert_array_equal(a.returns, b.returns)
    assert (a.returns >= 200).all()


def _starts(env, seeds: range) -> np.ndarray:
    try:
        return np.stack([env.reset(seed=s)[0] for s in seeds])
    finally:
        env.close()


def test_the_steady_lander_is_the_stock_one_pushed_less() -> None:
    steady = tasks.make("lunarlander-steady")
    assert steady.env_kwargs == {"push": STEADY_PUSH} and 0 < STEADY_PUSH < 1
    assert steady.risk is tasks.make("lunarlander").risk
    seeds = range(12)
    stock = _starts(tasks.make("lunarlander").make_env(), seeds)
    np.testing.assert_array_equal(_starts(make_lunar_lander(push=1.0), seeds), stock)
    gentle = _starts(steady.make_env(), seeds)
    # The same random draws, a fifth of the push: the first step's velocities (vx, vy) shrink
    # by about the push's factor (gravity's part of vy is the same for all).
    vx_ratio = np.std(gentle[:, 2]) / np.std(stock[:, 2])
    assert abs(vx_ratio - STEADY_PUSH) < 0.05, vx_ratio
    assert np.std(gentle[:, 3]) < 0.3 * np.std(stock[:, 3])
    with pytest.raises(ConfigError, match="push=-1"):
        make_lunar_lander(push=-1.0)


def _run(bc: list[tuple[int, float]], final_bc: tuple[int, float], **methods) -> SimpleNamespace:
    def ev(r: float) -> SimpleNamespace:
        return SimpleNamespace(evaluation=SimpleNamespace(mean_return=r, std_return=1.0))

    curves = {"BC": Curve([n for n, _ in bc], [r for _, r in bc], [1.0] * len(bc))}
    for name, points in methods.items():
        curves[name] = Curve([n for n, _ in points], [r for _, r in points], [1.0] * len(points))
    return SimpleNamespace(
        methods={"expert": ev(200.0), "BC": ev(final_bc[1])},
        curves=curves,
        labels={"BC": final_bc[0]},
    )


def test_the_lesson_states_the_measured_numbers() -> None:
    # target: 95% of 200 = 190
    run = _run(
        [(300, 50.0), (600, 150.0), (1200, 185.0), (2400, 195.0)],
        (30_000, 199.0),
        HG=[(300, 50.0), (500, 192.0)],
        DAgger=[(300, 50.0), (900, 191.0)],
    )
    text = lesson(run)
    assert text.startswith("HG reached 95% of the expert's return with 500 expert labels")
    assert "BC on demonstrations needed more than 1,200 and at most 2,400 (2.4–4.8×" in text
    assert "with at most 500 labels of demonstrations BC scored 50.0 at best" in text
    assert "Reaching 95% of the expert's return (190.0)" in labels_summary(run)
    assert "BC at 2,400 labels" in labels_summary(run)
    # BC reached only with every demonstration
    run = _run([(300, 50.0), (600, 150.0)], (30_000, 195.0), HG=[(300, 50.0), (500, 192.0)])
    assert "needed more than 600 and at most 30,000 (1.2–60.0× as many; its curve" in lesson(run)
    run = _run([], (30_000, 195.0), HG=[(300, 50.0), (500, 192.0)])  # BC only at the end
    assert "BC on demonstrations needed 30,000 (60.0× as many)" in lesson(run)
    # BC never reached
    run = _run([(300, 50.0)], (30_000, 100.0), HG=[(300, 50.0), (500, 192.0)])
    assert "did not reach it with up to 30,000 (60.0× as many)" in lesson(run)
    # BC first: the sentence says the lesson did not show
    run = _run([(300, 195.0)], (30_000, 199.0), HG=[(300, 50.0), (500, 192.0)])
    assert lesson(run).startswith(
        "BC on demonstrations reached 95% of the expert's return "
        "with 300 labels, no more than the best interactive method"
    )
    run = _run([(300, 50.0)], (30_000, 199.0), HG=[(300, 50.0), (500, 100.0)])
    assert lesson(run).startswith("No interactive method reached 95%")
    # the best method's final learner is named with its score: a round can cross on luck
    run = _run([(300, 50.0)], (30_000, 100.0), HG=[(300, 50.0), (500, 192.0), (700, 120.0)])
    run.methods["HG"] = SimpleNamespace(
        evaluation=SimpleNamespace(mean_return=120.0, std_return=1.0), labels=700
    )
    assert lesson(run).startswith(
        "HG reached 95% of the expert's return with 500 expert labels "
        "(its final learner: 120.0 with 700 labels); BC on demonstrations did not reach it"
    )


def test_noisy_sensors_blur_the_learner_not_the_lander_nor_its_pilot() -> None:
    clean_env = make_lunar_lander(push=0.2)
    noisy_env = make_lunar_lander(push=0.2, sensor_noise=0.05)
    again = make_lunar_lander(push=0.2, sensor_noise=0.05)
    pilot = CleanStatePilot()
    clean, _ = clean_env.reset(seed=4)
    noisy, info = noisy_env.reset(seed=4)
    np.testing.assert_array_equal(again.reset(seed=4)[0], noisy)  # the noise is seeded
    diffs = []
    for _ in range(60):
        np.testing.assert_array_equal(info["clean_obs"], clean)  # the same flight underneath
        diffs.append(noisy - clean)
        a = int(pilot.act(noisy[None], {"clean_obs": info["clean_obs"][None]})[0])
        assert a == int(LunarLanderExpert().act(clean[None])[0])  # flies on the true state
        clean, *_ = clean_env.step(a)
        noisy, _, _, _, info = noisy_env.step(a)
    for env in (clean_env, noisy_env, again):
        env.close()
    d = np.array(diffs)
    assert (d[:, 6:] == 0).all()  # the leg contacts are read as they are
    assert 0.04 < d[:, :6].std() < 0.06  # σ = 0.05 on position, velocity, attitude, spin
    with pytest.raises(ConfigError, match=r"sensor_noise=-0\.1"):
        make_lunar_lander(sensor_noise=-0.1)


def test_the_noisy_landers_expert_lands_on_the_true_state() -> None:
    noisy = tasks.make("lunarlander-noisy")
    assert noisy.env_kwargs == {"push": STEADY_PUSH, "sensor_noise": SENSOR_NOISE}
    assert noisy.risk is tasks.make("lunarlander").risk
    seen: list[int] = []

    class Spy(CleanStatePilot):
        def act(self, obs: np.ndarray, infos: dict | None = None) -> np.ndarray:
            clean = np.asarray((infos or {})["clean_obs"])  # the rollout loop passes it on
            assert clean.shape == obs.shape and (clean[:, :6] != obs[:, :6]).all()
            seen.append(len(obs))
            return super().act(obs, infos)

    ev = evaluate_expert(dataclasses.replace(noisy, expert_factory=Spy), episodes=4, seed=0)
    assert (ev.returns >= 200).all(), ev.returns
    assert sum(seen) == ev.lengths.sum()  # every step flown on the true state


def test_the_mild_noisy_lander_blurs_less_over_the_same_flight() -> None:
    mild, noisy = tasks.make("lunarlander-noisy-mild"), tasks.make("lunarlander-noisy")
    assert mild.env_kwargs == {"push": STEADY_PUSH, "sensor_noise": MILD_SENSOR_NOISE}
    assert 0 < MILD_SENSOR_NOISE < SENSOR_NOISE
    assert mild.expert_factory is noisy.expert_factory is CleanStatePilot
    assert mild.risk is noisy.risk
    env = mild.make_env()
    try:
        obs, info = env.reset(seed=3)
        diffs = []
        for _ in range(40):
            diffs.append(obs - info["clean_obs"])
            obs, _, _, _, info = env.step(0)
    finally:
        env.close()
    d = np.array(diffs)
    assert (d[:, 6:] == 0).all() and 0.02 < d[:, :6].std() < 0.04  # σ = 0.03
