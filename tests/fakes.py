"""Stand-ins the tests share: a counting expert, a scripted learner, a tiny env whose episodes
say which sub-env ran them, toy episodes for stores, and the kill-9 helpers.

Import them as ``from fakes import PushLeft`` (pytest puts ``tests/`` on ``sys.path``, as for
``store_fuzzing``). A fake one test file uses stays in that file; once a second file needs
it, it moves here, never copied.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from protege.algos import stacked_bc, success_td
from protege.algos.results import DAggerResult
from protege.configs.bc import BCConfig
from protege.configs.interactive import DAggerConfig
from protege.configs.methods import ThriftyConfig
from protege.data.episode import Episode
from protege.data.store import Store
from protege.data.transitions import Transitions
from protege.experts.adapters import CallableExpert
from protege.policies import Policy, PolicyConfig
from protege.policies.success_q import SuccessQ
from protege.rollout.gates import ExpertGate
from protege.rollout.loop import rollout
from protege.rollout.observers import KeepEpisodes
from protege.tasks.base import Task


# ------------------------------------------------------------------- experts and learners
class CountingExpert:
    """Wraps an expert and counts every observation it is asked about, independently of the
    rollout loop's own counters."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.asked = 0

    def act(self, obs: np.ndarray, infos: dict[str, Any] | None = None) -> np.ndarray:
        self.asked += len(obs)
        return self.inner.act(obs, infos)

    def begin_run(self, seed: int | None = None) -> None:
        pass


class PushLeft:
    """A CartPole learner that always pushes the cart left: the pole falls (and the cart
    leaves any safe set) within steps."""

    def act(self, obs: np.ndarray, deterministic: bool = True, generator: Any = None) -> Any:
        return np.zeros(len(obs), np.int64)

    def episodes_started(self, mask: np.ndarray | None = None) -> None:
        pass


# --------------------------------------------------------------------------- a tiny env
TAGGED_SEED = 40
"""Seed of the rollouts over :data:`TAGGED`: sub-env i is first reset with seed
``TAGGED_SEED + i``."""


class TaggedEnv(gym.Env):
    """Sub-env i (first reset with seed ``TAGGED_SEED + i``) plays episodes of i + 1 steps,
    and its observations ``[i, t]`` say which sub-env and step they come from. The short
    episodes of sub-env 0 end far sooner than sub-env 3's: taking episodes in order of
    completion would crowd the long ones out."""

    observation_space = gym.spaces.Box(-100.0, 100.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, render_mode: Any = None):
        self.tag = -1
        self.t = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.tag, self.t], np.float32)

    def reset(self, *, seed: int | None = None, options: Any = None) -> Any:
        super().reset(seed=seed)
        if seed is not None:
            self.tag = seed - TAGGED_SEED
        self.t = 0
        return self._obs(), {}

    def step(self, action: Any) -> Any:
        self.t += 1
        return self._obs(), 1.0, self.t > self.tag, False, {"tag": self.tag}


TAGGED = Task(
    name="tagged",
    env_id=TaggedEnv,
    expert_factory=lambda: CallableExpert(lambda obs: np.ones(len(obs), np.int64)),
    horizon=10,
)
"""A task over :class:`TaggedEnv` whose expert always answers 1 (not registered)."""


# ---------------------------------------------------------------------- toy store episodes
OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
"""Observation space of :func:`make_episode`'s episodes."""
ACT = gym.spaces.Discrete(4)
"""Default action space of :func:`make_episode`."""
BOX_ACT = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


def make_episode(t: int = 5, seed: int = 0, act_space: gym.Space = ACT, **kw: Any) -> Episode:
    """A terminated episode of ``t`` steps of seeded noise in :data:`OBS` × ``act_space``;
    ``kw`` go to :class:`Episode` (``round=2``, ``seed=...``)."""
    rng = np.random.default_rng(seed)
    if isinstance(act_space, gym.spaces.Discrete):
        actions = rng.integers(0, act_space.n, t)
    else:
        actions = rng.uniform(-1, 1, (t, *(act_space.shape or ()))).astype(np.float32)
    return Episode(
        obs=rng.normal(size=(t + 1, 3)).astype(np.float32),
        actions=actions,
        rewards=rng.normal(size=t).astype(np.float32),
        terminated=True,
        **kw,
    )


# ------------------------------------------------------------------------ interactive runs
def short_demo(task: Task, path: Path, steps: int, seed: int = 123) -> None:
    """Create the store ``path`` holding one expert demonstration of ``task`` cut after
    ``steps`` steps (60 CartPole steps are too few for BC: its return stays below 250)."""
    env = task.make_vec_env(1)
    try:
        r = rollout(
            env,
            1,
            gate=ExpertGate(),
            seed=seed,
            expert=task.make_expert(),
            observers=[KeepEpisodes()],
        )
    finally:
        env.close()
    ep = r.episodes[0]
    with Store.create(path, *task.spaces, task=task.name) as store:
        store.append(ep.head(steps))


def round_numbers(result: DAggerResult) -> list[tuple]:
    """Every per-round figure a seeded interactive run must reproduce (not the wall times)."""
    return [
        (
            r.round,
            r.beta,
            r.episodes,
            r.labels,
            r.expert_steps,
            r.learner_steps,
            r.interventions,
            r.expert_queries,
            r.mean_return,
            r.std_return,
            r.success_rate,
        )
        for r in result.rows
    ]


# ------------------------------------------------------------------------------- kill -9
def kill_after_appends(script: str, path: Path, at_least: int, timeout: float = 60) -> int:
    """Run ``script`` (``python -c``; it appends episodes to the store at ``argv[1]`` and
    prints how many it has committed after each) and ``kill -9`` it once it has printed
    ``at_least``. Returns the last count it printed: those episodes must have survived."""
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    committed = 0
    deadline = time.time() + timeout
    try:
        while committed < at_least and time.time() < deadline:
            committed = int(proc.stdout.readline())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert committed >= at_least
    return committed


def kill_when_stalled(proc: subprocess.Popen, marker: Path, timeout: float = 300) -> None:
    """``kill -9`` the child ``proc`` once it has written ``marker`` (where it stalls on
    purpose, mid-run); fails if it ends first or takes longer than ``timeout`` seconds."""
    deadline = time.time() + timeout
    try:
        while not marker.exists():
            assert proc.poll() is None, f"the child ended before stalling ({marker.name})"
            assert time.time() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL


# ---------------------------------------------------------------- what the CLI prints
class PrintedTables:
    """Records every table the CLI prints (all go through ``protege.cli.output.print_table``)
    with ``COLUMNS=80``, as in a CI log; :meth:`assert_whole` then checks that each title,
    header and row came out whole, on one line of stdout (and forgets those tables)."""

    def __init__(self, monkeypatch: Any) -> None:
        from protege.cli import output

        self.calls: list[tuple[str | None, list[str], list[list[str]], bool]] = []
        real = output.print_table

        def spy(title: str | None, columns: Any, rows: Any, **kw: Any) -> None:
            cells = [[str(c) for c in row] for row in rows]
            self.calls.append((title, [str(c) for c in columns], cells, kw.get("header", True)))
            real(title, columns, rows, **kw)

        monkeypatch.setattr(output, "print_table", spy)
        monkeypatch.setenv("COLUMNS", "80")

    def assert_whole(self, printed: str) -> None:
        assert self.calls, "no table was printed"
        lines = printed.splitlines()
        for title, columns, rows, header in self.calls:
            if title:
                assert title in (line.strip() for line in lines), f"title cut: {title!r}"
            wanted = [[c for c in columns if c]] if header else []
            for cells in [*wanted, *rows]:
                assert any(in_order(line, cells) for line in lines), f"not whole: {cells}"
        self.calls.clear()


def in_order(line: str, cells: list[str]) -> bool:
    """Every cell appears whole in ``line``, in order."""
    at = 0
    for cell in cells:
        at = line.find(cell, at)
        if at < 0:
            return False
        at += len(cell)
    return True


RESULT_KEYS = {"schema", "command", "argv", "seed", "settings", "versions", "results"}


def result_json(path: Path, command: str, seed: int) -> dict[str, Any]:
    """The ``--json`` file of a run, checked against the convention; its ``results``."""
    import json

    def no_nan(text: str) -> None:
        raise AssertionError(f"{path}: {text} is not JSON")

    doc = json.loads(path.read_text(), parse_constant=no_nan)
    assert set(doc) == RESULT_KEYS, sorted(doc)
    assert doc["schema"] == "protege.result/1" and doc["command"] == command
    assert doc["seed"] == seed and doc["argv"][: len(command.split())] == command.split()
    assert set(doc["versions"]) == {"protege", "python", "torch", "gymnasium", "numpy"}
    assert all(doc["versions"].values()), doc["versions"]
    assert isinstance(doc["settings"], dict) and doc["settings"]
    return doc["results"]


# ------------------------------------------------------- a task of observation parts
CAM_SIZE = 16


class CamCartPole(gym.ObservationWrapper):
    """CartPole seen through a synthetic camera: a Dict observation of two parts.

    ``state`` holds the velocities (ẋ, θ̇) only; the positions are in ``cam``, a 16×16×1
    uint8 image whose top half is lit ``128 + 50·x`` and bottom half ``128 + 1000·θ``
    (rounded): a policy must read the image to balance the pole. Cheap (no rendering)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        half = np.full(2, np.inf, np.float32)
        self.observation_space = gym.spaces.Dict(
            {
                "cam": gym.spaces.Box(0, 255, (CAM_SIZE, CAM_SIZE, 1), np.uint8),
                "state": gym.spaces.Box(-half, half, (2,), np.float32),
            }
        )

    def observation(self, observation: np.ndarray) -> dict[str, np.ndarray]:
        x, v, theta, omega = (float(s) for s in observation)
        cam = np.empty((CAM_SIZE, CAM_SIZE, 1), np.uint8)
        cam[: CAM_SIZE // 2] = np.clip(round(128 + 50 * x), 0, 255)
        cam[CAM_SIZE // 2 :] = np.clip(round(128 + 1000 * theta), 0, 255)
        return {"cam": cam, "state": np.array([v, omega], np.float32)}


def cam_cartpole_expert(obs: dict[str, np.ndarray]) -> np.ndarray:
    """CartPole's expert on the camera's decoded positions and the state's velocities."""
    cam = np.asarray(obs["cam"], np.float64)
    x = (cam[:, 0, 0, 0] - 128) / 50
    theta = (cam[:, -1, 0, 0] - 128) / 1000
    state = np.asarray(obs["state"], np.float64)
    s = np.stack([x, state[:, 0], theta, state[:, 1]], axis=1)
    return (s @ np.array([0.5, 1.0, 10.0, 2.0]) > 0.0).astype(np.int64)


def _cam_cartpole(render_mode: str | None = None) -> gym.Env:
    return CamCartPole(gym.make("CartPole-v1", render_mode=render_mode))


def _survived(outcome: Any) -> bool:
    return not outcome.terminated


CAM_CARTPOLE = Task(
    name="cartpole-cam",
    env_id=_cam_cartpole,
    expert_factory=lambda: CallableExpert(cam_cartpole_expert),
    horizon=200,
    success=_survived,
    description="CartPole with positions in a 16×16 synthetic camera image, velocities in state",
)
CAM_ENCODER = {"channels": [8, 16], "kernels": [4, 3], "strides": [2, 2], "image_sizes": [32]}
"""Settings of the parts encoder that fit CAM_CARTPOLE's 16×16 images."""


TINY_ROUND = DAggerConfig(
    rounds=1,
    episodes_per_round=3,
    initial_demos=1,
    n_envs=2,
    bc=BCConfig(steps=30, batch_size=32, progress=False),
    eval_episodes=2,
    eval_envs=2,
)
"""One interactive round on LunarLander in two batches (2 + 1 episodes) of a learner that
crashes the lander quickly: the remote-rollout tests' run, local against workers."""


class FirstStepNovelty:
    """A fleet learner: robot i (observation ``[i, t]``) is novel (0.1·(i+1)) at the first
    step of its episode only and pushes left; its discrepancy with the supervisor is always
    ``discrepancy`` (1: never hands back early; 0: would hand back at once)."""

    def __init__(self, discrepancy: float = 1.0):
        self._discrepancy = discrepancy

    def act(self, obs: Any, deterministic: bool = True, generator: Any = None) -> Any:
        return np.zeros(len(obs), np.int64)

    def episodes_started(self, mask: Any = None) -> None:
        pass

    def novelty(self, obs: Any) -> Any:
        return np.where(obs[:, 1] < 1, 0.1 * (obs[:, 0] + 1), 0.0)

    def discrepancy(self, obs: Any, actions: Any) -> Any:
        return np.full(len(obs), self._discrepancy)


_KILLER = """
import dataclasses, os, signal
from pathlib import Path
import gymnasium as gym
from protege import tasks

MARKER, DRIVER, AT = Path({marker!r}), {driver}, {at}


class KillOnce(gym.Wrapper):
    steps = 0

    def step(self, action):
        KillOnce.steps += 1
        if KillOnce.steps == AT and os.getpid() != DRIVER:
            try:  # one worker claims the marker (two may reach step AT at once)
                fd = os.open(MARKER, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return self.env.step(action)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)  # a worker dies mid-episode
        return self.env.step(action)


base = tasks.make({base!r})


def make_env(render_mode=None, **kwargs):
    return KillOnce(gym.make({env_id!r}, render_mode=render_mode, **kwargs))


tasks.register(dataclasses.replace(base, name={name!r}, env_id=make_env, **{extra!r}))
"""


def killer_plugin(folder: Path, name: str, base: str, env_id: str, at: int, **extra: Any) -> Path:
    """Write and load a plugin task ``name`` (the task ``base`` on the gymnasium env
    ``env_id``, with ``extra`` fields replaced) whose env SIGKILLs the Ray worker running it
    once, at that worker's ``at``-th env step (never in this process). The workers load it
    too (``tasks.loaded_plugins``). Returns the marker file that records which process died."""
    from protege import tasks

    marker = folder / "killed"
    plugin = folder / f"{name.replace('-', '_')}.py"
    fields = dict(marker=str(marker), driver=os.getpid(), at=at, base=base, env_id=env_id)
    plugin.write_text(_KILLER.format(name=name, extra=extra, **fields))
    tasks.load_plugins([str(plugin)])
    return marker


OBS5 = gym.spaces.Box(-1, 1, (5,), np.float32)
"""A 5-d observation space for the stacked fits' tests."""


def td_batch(n_actions: int) -> dict[str, torch.Tensor]:
    """300 transitions for a success critic's TD fit: 5-d observations, ``n_actions``
    discrete actions (0: one continuous action), 10% successes, 20% episode ends."""
    g = torch.Generator().manual_seed(0)
    n = 300

    def acts() -> torch.Tensor:
        return (
            torch.randint(n_actions, (n,), generator=g)
            if n_actions
            else torch.randn(n, 1, generator=g)
        )

    return {
        "obs": torch.randn(n, 5, generator=g),
        "act": acts(),
        "reward": (torch.rand(n, generator=g) < 0.1).float(),
        "next_obs": torch.randn(n, 5, generator=g),
        "next_act": acts(),
        "done": (torch.rand(n, generator=g) < 0.2).float(),
    }


def fit_critic(n_actions: int) -> tuple[float, torch.Tensor, torch.Tensor]:
    """A small success critic's TD fit on :func:`td_batch`: its loss, weights and the batch
    generator's final state (the stacked-fit tests compare them across threads and processes)."""
    batch = td_batch(n_actions)
    positives = torch.nonzero(batch["reward"] > 0)[:, 0]
    cfg = ThriftyConfig(q_steps=40, q_batch=64, polyak=0.9, q_hidden=(48, 48))
    torch.manual_seed(3)
    critic = SuccessQ(5, 1, n_actions, cfg.q_hidden)
    gen = torch.Generator().manual_seed(1)
    loss = success_td.td_fit(critic, batch, positives, 6, cfg, gen)
    weights = torch.cat([p.detach().flatten() for p in critic.parameters()])
    return loss, weights, gen.get_state()


def fit_ensemble(head: str, act_space: gym.Space, members: int) -> torch.Tensor:
    """A small ensemble's stacked BC (``head``, one hidden layer of 48) on 120 random
    labeled steps: every member's weights, flattened."""
    rng = np.random.default_rng(0)
    act_space.seed(0)
    acts = np.stack([act_space.sample() for _ in range(120)])
    obs = rng.normal(size=(120, 5)).astype(np.float32)
    data = Transitions.labeled_steps(obs, acts, [40, 40, 40])
    cfg = BCConfig(steps=30, batch_size=16, lr=3e-3, grad_clip=0.5, progress=False)
    configs = [dataclasses.replace(cfg, seed=s) for s in range(members)]
    policies = [
        Policy(PolicyConfig.for_spaces(OBS5, act_space, head=head, hidden_sizes=(48,)), seed=s)
        for s in range(members)
    ]
    assert stacked_bc.applies(policies, [data] * members, configs)
    stacked_bc.fit(policies, [data] * members, configs)
    return torch.cat([p.flatten() for m in policies for p in m.parameters()])
