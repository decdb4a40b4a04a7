"""Development-seed sweep for ``make demo``'s task (issue 13, part 1): where does BC on
expert demonstrations need the most labels more than the interactive methods?

Each candidate is a LunarLander variant (gymnasium's wind and turbulence, registered here
under a throw-away name). On development seeds (11+, evaluation episodes from seed 7000,
never used for a reported table) it runs ``dagger_lunar.py``'s protocol: DAgger and
HG-DAgger from one demonstration, BC on the demonstrations cut to a grid of label budgets,
every learner scored on the same seeded episodes as the expert. One JSON line per
(candidate, seed): labels to 95% of the expert's mean return per method (None: not reached).
``--summary FILE`` prints the medians per candidate (not reached counts as infinite).

    .venv/bin/python benchmarks/lesson_dev_sweep.py --candidates calm wind5 wind10 > sweep.jsonl
    .venv/bin/python benchmarks/lesson_dev_sweep.py --summary sweep.jsonl
    .venv/bin/python benchmarks/lesson_dev_sweep.py --candidates push0.2-noise0.05 --methods \
        --seeds 10 --bc-grid 500 1000 2000 4000      # BC only: a cheap screen
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import statistics
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import dagger_lunar
from protege import tasks
from protege.experts.classic import LunarLanderExpert
from protege.rollout.evaluate import evaluate_expert
from protege.tasks.classic import lunar_risk
from protege.tasks.lunar_start import CleanStatePilot, make_lunar_lander

CANDIDATES: dict[str, dict[str, Any]] = {
    "calm": {},
    "wind5": {"enable_wind": True, "wind_power": 5.0, "turbulence_power": 0.5},
    "wind10": {"enable_wind": True, "wind_power": 10.0, "turbulence_power": 1.0},
    "wind15": {"enable_wind": True, "wind_power": 15.0, "turbulence_power": 1.5},
    "turb1": {"enable_wind": True, "wind_power": 0.0, "turbulence_power": 1.0},
    "turb2": {"enable_wind": True, "wind_power": 0.0, "turbulence_power": 2.0},
    "tight": {"expert": {"deadband": 0.02}},
    "tight-wind5": {
        "enable_wind": True,
        "wind_power": 5.0,
        "turbulence_power": 0.5,
        "expert": {"deadband": 0.02},
    },
    "wind10-calm-turb": {"enable_wind": True, "wind_power": 10.0, "turbulence_power": 0.0},
    # A gentler random start (the reset's push scaled): narrow demonstrations.
    "push0": {"push": 0.0},
    "push0.05": {"push": 0.05},
    "push0.1": {"push": 0.1},
    "push0.2": {"push": 0.2},
    "push0.3": {"push": 0.3},
    "push0.4": {"push": 0.4},
    "tight-push0.1": {"push": 0.1, "expert": {"deadband": 0.02}},
    "tight-push0.2": {"push": 0.2, "expert": {"deadband": 0.02}},
    # The previous engine command in the observation (feedback from the learner's own
    # actions into its input: Spencer et al. 2021's regime where BC drifts, "copycat").
    "last": {"last_engine": True},
    "push0.2-last": {"push": 0.2, "last_engine": True},
    # A flight envelope: leaving K × the pilot's own envelope ends the episode as a crash.
    "env1.5": {"envelope": 1.5},
    "env2": {"envelope": 2.0},
    "push0.2-env1.5": {"push": 0.2, "envelope": 1.5},
    "push0.2-env2": {"push": 0.2, "envelope": 2.0},
    # Noisy sensors for the learner, the clean state for the expert (privileged teacher).
    "push0.2-noise0.05": {"push": 0.2, "noise": 0.05},
    "push0.2-noise0.1": {"push": 0.2, "noise": 0.1},
    "push0.2-noise0.02": {"push": 0.2, "noise": 0.02},
    "push0.2-noise0.03": {"push": 0.2, "noise": 0.03},
    "noise0.05": {"noise": 0.05},
}
BC_GRID = (250, 500, 1000, 2000, 4000, 8000)


class TightLander(LunarLanderExpert):
    """The lander's pilot with a narrower dead band (fires sooner, corrects tighter)."""

    def __init__(self, deadband: float = 0.05) -> None:
        super().__init__(continuous=False)
        self.deadband = deadband

    def act(self, obs: np.ndarray, infos: dict[str, Any] | None = None) -> np.ndarray:
        s = np.asarray(obs, np.float32)
        s = s.reshape(-1, s.shape[-1])[:, :8]  # the lander's 8 numbers (then the last engine)
        x, y, vx, vy, angle, angle_v = (s[:, i] for i in range(6))
        contact = (s[:, 6] != 0) | (s[:, 7] != 0)
        angle_targ = np.clip(x * 0.5 + vx, -0.4, 0.4)
        hover_targ = 0.55 * np.abs(x) + 0.7 * np.maximum(np.abs(vx) - 0.2, 0.0)
        angle_todo = np.where(contact, 0.0, (angle_targ - angle) * 0.5 - angle_v)
        hover_todo = np.where(contact, -vy * 0.5, (hover_targ - y) * 0.5 - vy * 0.5)
        d = self.deadband
        a = np.zeros(len(s), dtype=np.int64)
        a = np.where(angle_todo > d, 1, a)
        a = np.where(angle_todo < -d, 3, a)
        return np.where((hover_todo > np.abs(angle_todo)) & (hover_todo > d), 2, a)


class EnvelopeCrash(gym.Wrapper):
    """Ends the episode as a crash (reward −100, as gymnasium's own crash) the first time the
    lander leaves ``limit`` × the pilot's envelope (``lunar_risk`` without its patience term:
    spin, tilt, distance from the pad, sink rate, attitude and sideways speed low down, each
    1 at about the 99.5th percentile of the expert's own states; the ground is not judged):
    a flight envelope the lander must keep, not only a pad to reach."""

    def __init__(self, env: gym.Env, limit: float) -> None:
        super().__init__(env)
        self.limit = float(limit)

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if not terminated and lunar_risk(np.asarray(obs)[None, :8], np.zeros(1))[0] > self.limit:
            reward, terminated = -100.0, True
            info = {**info, "left_envelope": True}
        return obs, reward, terminated, truncated, info


class LastEngineObservation(gym.ObservationWrapper):
    """Appends the engine fired at the previous step to the observation, one-hot (4 more
    numbers; all 0 at reset): the lander's own last command, as a sensor reads it."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        n = int(env.action_space.n)
        low = np.concatenate([env.observation_space.low, np.zeros(n, np.float32)])
        high = np.concatenate([env.observation_space.high, np.ones(n, np.float32)])
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        self._last = np.zeros(n, np.float32)

    def reset(self, **kwargs: Any):
        self._last[:] = 0.0
        return super().reset(**kwargs)

    def step(self, action: Any):
        self._last[:] = 0.0
        self._last[int(action)] = 1.0
        return super().step(action)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(observation, np.float32), self._last])


def make_candidate(
    render_mode: str | None = None,
    push: float = 1.0,
    last_engine: bool = False,
    envelope: float | None = None,
    noise: float = 0.0,
    **kwargs: Any,
) -> gym.Env:
    """A candidate's env: the lander with a scaled start push, then the wrappers it asks for."""
    env = make_lunar_lander(render_mode=render_mode, push=push, sensor_noise=noise, **kwargs)
    if envelope is not None:
        env = EnvelopeCrash(env, envelope)
    return LastEngineObservation(env) if last_engine else env


def register(name: str) -> str:
    base = tasks.make("lunarlander")
    kwargs = dict(CANDIDATES[name])
    noise = kwargs.pop("noise", 0.0)
    expert = CleanStatePilot if noise > 0 else partial(TightLander, **kwargs.pop("expert", {}))
    env_id = partial(
        make_candidate,
        push=kwargs.pop("push", 1.0),
        last_engine=kwargs.pop("last_engine", False),
        envelope=kwargs.pop("envelope", None),
        noise=noise,
    )
    task = dataclasses.replace(
        base, name=f"dev-{name}", env_id=env_id, env_kwargs=kwargs, expert_factory=expert
    )
    tasks.register(task, overwrite=True)
    return task.name


def args_for(task: str, ns: argparse.Namespace) -> argparse.Namespace:
    """dagger_lunar.py's defaults, with this sweep's task, rounds and evaluation."""
    ap = argparse.Namespace(
        task=task,
        eval_seed=ns.eval_seed,
        eval_episodes=ns.eval_episodes,
        rounds=ns.rounds,
        episodes_per_round=2,
        initial_demos=1,
        n_envs=2,
        bc_steps=1500,
        bc_batch=64,
        bc_lr=3e-3,
        members=5,
        hg_disagreement=0.5,
        hg_window=10,
        hg_hand_back=0.7,
        hg_min_takeover=10,
        ens_chi=0.03,
        ens_tau=0.5,
        alpha_h=0.01,
        q_steps=2000,
        smile_alpha=0.1,
        agg_rollins=8,
        agg_envs=4,
        agg_horizon=None,
        resume=False,
    )
    return ap


def run(name: str, seed: int, ns: argparse.Namespace) -> dict[str, Any]:
    args = args_for(register(name), ns)
    out: dict[str, Any] = {"candidate": name, "seed": seed, "methods": {}}
    target = float("nan")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for m in ns.methods:
            res = dagger_lunar.run_method(m, args, seed, root / m)
            t = res.totals
            out["expert"] = round(res.expert_return, 1)
            out["target"], target = round(res.target_return, 1), res.target_return
            out["methods"][m] = {
                "labels_to_95": t["labels_to_target"],
                "curve": [(r.labels, round(r.mean_return, 1)) for r in res.rows],
                "interventions": t["interventions"],
            }
        if not ns.methods:  # BC only: the expert's level from the same evaluation episodes
            ev = evaluate_expert(
                tasks.make(args.task), episodes=ns.eval_episodes, n_envs=8, seed=ns.eval_seed
            )
            out["expert"] = round(ev.mean_return, 1)
            target = 0.95 * ev.mean_return
            out["target"] = round(target, 1)
        bc = dagger_lunar.bc_at_budgets(args, seed, list(ns.bc_grid), root / "bc")
        reach = next((b for b in sorted(bc) if bc[b]["mean_return"] >= target), None)
        out["methods"]["bc"] = {
            "labels_to_95": reach,
            "curve": [(b, round(bc[b]["mean_return"], 1)) for b in sorted(bc)],
        }
        shutil.rmtree(root, ignore_errors=True)
    return out


def summary(files: list[Path]) -> None:
    rows: dict[str, list[dict]] = {}
    for file in files:
        for line in file.read_text().splitlines():
            if line.startswith("{"):
                d = json.loads(line)
                rows.setdefault(d["candidate"], []).append(d)
    print("| candidate | seeds | expert | method | reached | median labels to 95% |")
    print("|---|---:|---:|---|---:|---:|")
    for name, ds in rows.items():
        expert = statistics.median(d["expert"] for d in ds)
        for m in ds[0]["methods"]:
            hits = [d["methods"][m]["labels_to_95"] for d in ds]
            labels = [h if h is not None else float("inf") for h in hits]
            print(
                f"| {name} | {len(ds)} | {expert:.1f} | {m} | "
                f"{sum(h is not None for h in hits)} | {statistics.median(labels):.0f} |"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", nargs="+", choices=list(CANDIDATES), default=["calm"])
    ap.add_argument(
        "--methods", nargs="*", default=["hg-dagger", "dagger"], help="none: BC only (a screen)"
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13])
    ap.add_argument("--eval-seed", type=int, default=7000)
    ap.add_argument("--eval-episodes", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--bc-grid", type=int, nargs="+", default=list(BC_GRID))
    ap.add_argument("--summary", type=Path, nargs="+", help="summarize these JSON-lines files")
    ns = ap.parse_args()
    if ns.summary:
        summary(ns.summary)
        return
    torch.set_num_threads(1)
    for name in ns.candidates:
        for seed in ns.seeds:
            print(json.dumps(run(name, seed, ns)), flush=True)


if __name__ == "__main__":
    main()
