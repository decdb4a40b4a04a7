"""protege's carracing tasks: privileged info, the driving expert, and the fast renderer."""

from __future__ import annotations

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.box2d.car_racing import CarRacing

import protege.tasks
import protege.tasks.carracing as carracing
from protege.experts.driving import CarRacingExpert
from protege.tasks.base import EpisodeOutcome
from protege.tasks.carracing import carracing_success
from protege.tasks.carracing_env import INFO_KEYS, TRACK_AHEAD, CarRacingEnv

EXPECTED_SHAPES: dict[str, tuple[int, ...]] = {
    "car_pos": (2,),
    "car_heading": (),
    "car_velocity": (2,),
    "car_speed": (),
    "car_yaw_rate": (),
    "steer_angle": (),
    "track_index": (),
    "track_ahead": (TRACK_AHEAD, 2),
    "track_offset": (),
    "tiles_visited": (),
    "track_tiles": (),
}


TASKS = {"carracing": carracing.CARRACING, "carracing-discrete": carracing.CARRACING_DISCRETE}


def _run_expert(task_name: str, seeds: list[int]) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """One episode per seed, all at once in a SyncVectorEnv driven by the batched expert."""
    task = TASKS[task_name]
    env = task.make_vec_env(len(seeds))
    expert = task.make_expert()
    expert.begin_run(seed=0)
    obs, infos = env.reset(seed=seeds)
    returns = np.zeros(len(seeds))
    done = np.zeros(len(seeds), dtype=bool)
    finals: list[dict[str, Any]] = [{} for _ in seeds]
    try:
        while not done.all():
            actions = expert.act(obs, infos)
            assert env.action_space.contains(actions)
            obs, rewards, terms, truncs, infos = env.step(actions)
            returns += np.where(done, 0.0, rewards)
            for i in np.flatnonzero((terms | truncs) & ~done):
                done[i] = True
                finals[i] = {k: v[i] for k, v in infos["final_info"].items()}
    finally:
        env.close()
    return returns, finals


def test_tasks_are_registered() -> None:
    for name, discrete in [("carracing", False), ("carracing-discrete", True)]:
        task = TASKS[name]
        # Registered at import (read the registry directly: make() also imports the other
        # built-in task modules, which this test does not depend on).
        assert protege.tasks._REGISTRY[name] is task
        assert task.name == name
        assert task.horizon == 1000
        obs_space, act_space = task.spaces
        assert obs_space == gym.spaces.Box(0, 255, (96, 96, 3), np.uint8)
        assert isinstance(act_space, gym.spaces.Discrete if discrete else gym.spaces.Box)
        assert task.env_kwargs["fast_render"] is True


def test_privileged_info_has_documented_keys_and_stays_out_of_the_observation() -> None:
    # The observation is exactly gymnasium's frame (same seed, same actions): nothing added.
    ours = CarRacingEnv()
    theirs = CarRacing()
    obs, info = ours.reset(seed=3)
    obs_g, _ = theirs.reset(seed=3)
    assert obs.dtype == np.uint8 and obs.shape == (96, 96, 3)
    assert np.array_equal(obs, obs_g)
    action = np.array([0.1, 0.5, 0.0], dtype=np.float32)
    for _ in range(5):
        obs, _, _, _, info = ours.step(action)
        obs_g, *_ = theirs.step(action)
        assert np.array_equal(obs, obs_g)
    assert set(INFO_KEYS) <= set(info)
    for key, shape in EXPECTED_SHAPES.items():
        value = np.asarray(info[key])
        assert value.shape == shape, key
        assert np.issubdtype(value.dtype, np.number), key
    assert info["track_tiles"] == len(ours.track)
    assert np.allclose(info["car_pos"], ours.car.hull.position)
    assert abs(float(info["track_offset"])) < 1.0  # still on the centreline

    # A vector env batches every key into one (N, ...) array with its mask.
    env = carracing.CARRACING.make_vec_env(2)
    try:
        _, infos = env.reset(seed=0)
        for key, shape in EXPECTED_SHAPES.items():
            assert infos[key].shape == (2, *shape), key
            assert infos[f"_{key}"].all()
    finally:
        env.close()


def test_fast_renderer_frames_are_bit_identical_to_gymnasium() -> None:
    """Same seed, same actions: every observation and every rgb_array frame is equal."""
    compared = 0
    for seed in (0, 1, 2):
        ref = CarRacing(render_mode="rgb_array")
        fast = CarRacingEnv(render_mode="rgb_array", fast_render=True)
        assert np.array_equal(ref.reset(seed=seed)[0], fast.reset(seed=seed)[0])
        rng = np.random.default_rng(seed)
        for t in range(110):  # past the 50-step zoom-in, with random steering and skids
            action = np.array(
                [rng.uniform(-1, 1), rng.uniform(0, 1), rng.uniform(0, 0.3)], dtype=np.float32
            )
            obs_r, rew_r, term_r, _, _ = ref.step(action)
            obs_f, rew_f, term_f, _, _ = fast.step(action)
            assert np.array_equal(obs_r, obs_f), (seed, t)
            assert rew_r == rew_f and term_r == term_f
            compared += 1
            if t % 20 == 0:
                assert np.array_equal(ref.render(), fast.render()), (seed, t)
                compared += 1
    assert compared > 300


def test_fast_step_matches_gymnasium_under_hard_driving() -> None:
    """The plain-float car dynamics and the numpy car drawing against gymnasium's: full
    brake (which locks the wheels), full gas, steering from lock to lock, skid marks in the
    rgb_array frames, and the discrete actions. Frames, rewards, terminations and the car's
    state must all be equal."""
    for continuous, seed in ((True, 7), (False, 8)):
        ref = CarRacing(render_mode="rgb_array", continuous=continuous)
        fast = CarRacingEnv(render_mode="rgb_array", continuous=continuous)
        assert np.array_equal(ref.reset(seed=seed)[0], fast.reset(seed=seed)[0])
        rng = np.random.default_rng(seed)
        skids = 0
        for t in range(120):
            if continuous:  # full gas first (wheelspin: skid marks), then anything
                action: Any = np.array(
                    [
                        rng.choice([-1.0, 1.0, rng.uniform(-1, 1)]),
                        1.0 if t < 50 else rng.uniform(0, 1),
                        0.0 if t < 50 else rng.choice([0.0, 0.95, rng.uniform(0, 1)]),
                    ],
                    dtype=np.float32,
                )
            else:
                action = int(rng.integers(5))
            obs_r, rew_r, term_r, trunc_r, _ = ref.step(action)
            obs_f, rew_f, term_f, trunc_f, _ = fast.step(action)
            assert np.array_equal(obs_r, obs_f), (continuous, t)
            assert (rew_r, term_r, trunc_r) == (rew_f, term_f, trunc_f), (continuous, t)
            for w_r, w_f in zip(ref.car.wheels, fast.car.wheels, strict=True):
                assert (w_r.omega, w_r.phase, w_r.gas) == (w_f.omega, w_f.phase, w_f.gas)
                assert tuple(w_r.position) == tuple(w_f.position)
            skids += len(fast.car.particles) > 0
            if t % 15 == 0:
                assert np.array_equal(ref.render(), fast.render()), (continuous, t)
        assert skids > 0 or not continuous  # the rgb_array frames above drew skid marks


def test_frames_stay_identical_when_the_indicator_bars_reach_above_their_strip() -> None:
    """The frame is assembled without flipping the window while the speed and wheel bars
    stay inside the black strip; taller bars (a spinning wheel) take gymnasium's path. Both
    sides of the switch, and bars of every height, give gymnasium's pixels."""
    ref = CarRacing(render_mode="rgb_array")
    fast = CarRacingEnv(render_mode="rgb_array")
    ref.reset(seed=4)
    fast.reset(seed=4)
    action = np.array([0.3, 1.0, 0.0], dtype=np.float32)
    for _ in range(60):
        ref.step(action)
        fast.step(action)
    framed = []
    for omega in (-500.0, 0.0, 120.0, 380.0, 394.0, 396.0, 400.0, 460.0, 700.0):
        for env in (ref, fast):
            for wheel in env.car.wheels:
                wheel.omega = omega
        framed.append(fast._indicators_fit_strip())
        assert np.array_equal(ref._render("state_pixels"), fast._render("state_pixels")), omega
        assert np.array_equal(ref.render(), fast.render()), omega
    assert any(framed) and not all(framed)


def test_indicator_bars_as_fills_match_pygames_polygons() -> None:
    """The indicator bars are axis-aligned rectangles drawn as fills: the same pixels as
    pygame.draw.polygon, for fractional, reversed, one-row, one-column and clipped ones."""
    import pygame

    from protege.tasks.carracing_fast import _bar

    rng = np.random.default_rng(0)
    surfs = [pygame.Surface((200, 120)) for _ in range(2)]
    for k in range(300):
        xa, xb = rng.uniform(-30, 230, 2)
        ya, yb = rng.uniform(-30, 150, 2)
        if k % 5 == 0:
            yb = ya + rng.uniform(-0.9, 0.9)  # within one row (or two after truncation)
        if k % 7 == 0:
            xb = xa + rng.uniform(-0.9, 0.9)
        if k % 11 == 0:
            xa, ya = float(int(xa)), float(int(ya))
        color = tuple(int(c) for c in rng.integers(1, 256, 3))
        for surf in surfs:
            surf.fill((0, 0, 0))
        pygame.draw.polygon(surfs[0], color, [(xa, ya), (xb, ya), (xb, yb), (xa, yb)])
        first, last = _bar(surfs[1], color, xa, ya, xb, yb)
        a, b = (pygame.surfarray.array3d(surf) for surf in surfs)
        assert np.array_equal(a, b), (k, xa, ya, xb, yb)
        painted = np.flatnonzero(a.any(axis=(0, 2)))
        assert painted.size == 0 or first <= painted[0] <= painted[-1] <= last


@pytest.mark.parametrize("compiled", [True, False])
def test_fast_road_layer_matches_gymnasium_at_full_resolution(
    compiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 1000×800 road layer, before downscaling, at random poses, zooms and angles.

    Covers what driving rarely reaches: the playfield's edge (where the background fill
    shortcut must give way), exact multiples of 90° (pygame special-cases those rotations),
    the zoom-in of the first second, and tiles recoloured by contact. Both with the compiled
    polygon kernel (protege.tasks.carracing_raster) and with gfxdraw's per-polygon calls
    (the path without numba).
    """
    import pygame
    from gymnasium.envs.box2d import car_racing as cr

    import protege.tasks.carracing_road as road

    # numba is a dependency: without it this is an install bug, not a reason to skip
    assert road.raster.AVAILABLE or not compiled, "numba is not importable"
    monkeypatch.setattr(road, "COMPILED", compiled)
    kernel_drew = []
    field_drawn = []  # whether the kernel drew gymnasium's background polygon (not a fill)
    draw_view = road.raster.draw_view

    def spy(*args: Any) -> int:
        kernel_drew.append(draw_view(*args))
        field_drawn.append(args[11] is not None)
        return kernel_drew[-1]

    monkeypatch.setattr(road.raster, "draw_view", spy)

    env = CarRacingEnv()
    env.reset(seed=5)
    for _, color in env.road_poly[::5]:
        if isinstance(color, np.ndarray):
            color[:] = env.road_color  # as a wheel's contact does
    rng = np.random.default_rng(5)
    for k in range(40):
        if k % 3 == 0:
            x, y = np.array(env.track[rng.integers(len(env.track))][2:4]) + rng.normal(0, 8, 2)
        else:
            x, y = rng.uniform(-cr.PLAYFIELD - 30, cr.PLAYFIELD + 30, 2)
        angle = float(rng.uniform(-20, 20) if k % 2 else rng.integers(-8, 8) * np.pi / 2)
        t = float(rng.choice([rng.uniform(0, 1), 1.0]))
        zoom = 0.1 * cr.SCALE * max(1 - t, 0) + cr.ZOOM * cr.SCALE * min(t, 1)
        shift = pygame.math.Vector2((-x * zoom, -y * zoom)).rotate_rad(angle)
        trans = (cr.WINDOW_W / 2 + shift[0], cr.WINDOW_H / 4 + shift[1])
        layers = []
        for fast in (False, True):
            env.surf = pygame.Surface((cr.WINDOW_W, cr.WINDOW_H))
            if fast:
                env._render_road_fast(env.surf, zoom, trans, angle)
            else:
                CarRacing._render_road(env, zoom, trans, angle)
            layers.append(pygame.surfarray.array3d(env.surf))
        assert np.array_equal(layers[0], layers[1]), (k, x, y, angle, t)
    # the compiled kernel drew every layer's polygons, refusing none (reset renders too), or
    # was not called
    if compiled:
        assert len(kernel_drew) >= 40 and min(kernel_drew) >= 0 and sum(kernel_drew) > 500
        assert 5 <= sum(field_drawn) <= len(field_drawn) - 5  # near the edge, and inside
    else:
        assert not kernel_drew


def test_fast_render_off_uses_gymnasium_renderer() -> None:
    env = CarRacingEnv(fast_render=False)
    env.reset(seed=0)
    calls = []
    original = CarRacingEnv._render_road_fast

    def spy(self: CarRacingEnv, *args: Any) -> None:
        calls.append(1)
        original(self, *args)

    CarRacingEnv._render_road_fast = spy  # type: ignore[method-assign]
    try:
        env.step(np.zeros(3, dtype=np.float32))
    finally:
        CarRacingEnv._render_road_fast = original  # type: ignore[method-assign]
    assert calls == []


def test_expert_drives_seeded_tracks_above_800() -> None:
    returns, finals = _run_expert("carracing", [0, 1, 2])
    assert (returns >= 800).all(), returns
    for ret, final in zip(returns, finals, strict=True):
        outcome = EpisodeOutcome(ret, 1000, True, False, final)
        assert carracing_success(outcome)


def test_discrete_variant_works_with_the_expert() -> None:
    returns, finals = _run_expert("carracing-discrete", [8])
    assert returns[0] >= 800, returns
    assert int(finals[0]["tiles_visited"]) >= 0.95 * int(finals[0]["track_tiles"])


def test_expert_steers_back_from_states_a_learner_may_reach() -> None:
    """Labels for a car turned the wrong way or off the road: full lock toward the line, slow."""
    env = CarRacingEnv()
    _, info = env.reset(seed=0)
    infos = {k: np.asarray(v)[None].repeat(2, axis=0) for k, v in info.items()}
    infos["car_heading"] = infos["car_heading"] + np.array([np.pi, 0.0])  # reversed
    infos["car_pos"] = infos["car_pos"] + np.array([[0.0, 0.0], [0.0, 0.0]])
    left = np.array([-np.sin(info["car_heading"]), np.cos(info["car_heading"])])
    infos["car_pos"][1] += 25.0 * left  # 25 units left of the road, parallel to it
    infos["car_speed"] = np.array([30.0, 30.0])
    infos["car_velocity"] = np.zeros((2, 2))
    actions = CarRacingExpert().act(np.zeros((2, 96, 96, 3), np.uint8), infos)
    assert abs(actions[0, 0]) == pytest.approx(1.0)  # reversed: full lock
    assert actions[1, 0] > 0.0  # left of the road: steer right
    assert (actions[:, 1] == 0.0).all() and (actions[:, 2] > 0.0).all()  # slow down first
    discrete = CarRacingExpert(discrete=True).act(np.zeros((2, 96, 96, 3), np.uint8), infos)
    assert discrete.dtype == np.int64 and set(discrete.tolist()) <= {0, 1, 2, 3, 4}


def test_success_test() -> None:
    info = {"tiles_visited": np.int64(95), "track_tiles": np.int64(100)}
    assert carracing_success(EpisodeOutcome(700.0, 1000, False, True, info))
    info = {"tiles_visited": np.int64(94), "track_tiles": np.int64(100)}
    assert not carracing_success(EpisodeOutcome(900.0, 1000, False, True, info))
    assert carracing_success(EpisodeOutcome(900.0, 800, True, False, {}))
    assert not carracing_success(EpisodeOutcome(300.0, 1000, False, True, {}))
    assert carracing.HORIZON == 1000
