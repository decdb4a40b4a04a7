"""GAIL and AIRL: protege against the `imitation` package (v1.0.1), interleaved, same demos.

Per task, protege's expert records ``--demos`` episodes (seed 0) into a store; imitation gets
the very same episodes (an ``.npz`` of the store's steps). Both sides then train from scratch
on the same env-step budget (``--steps TASK=N``), one torch thread each, evaluating the
deterministic policy every ``--eval-every`` env steps on the same seeded episodes (run seed
``s``: episodes reset with ``10_000 + s + i``, protege's own evaluation episodes), outside
the timed span:

* protege: :func:`protege.algos.adversarial.train` with :class:`AdversarialConfig`'s
  defaults and GAIL's and AIRL's PPO defaults (:func:`ppo_config`: at least 2,048 env steps
  of whole episodes per PPO update over 8 envs).
* imitation: ``imitation_side/adversarial_run.py`` in its own venv (``imitation_peer.py``):
  imitation's documented GAIL/AIRL examples, generator rounds of the same 2,048 steps.

``--learner`` gives both sides the same PPO settings where a task needs its own (Pendulum:
``pendulum:gamma=0.9`` ...; PPOConfig's names, mapped to SB3 PPO's arguments on the other
side). protege's updates collect whole episodes, so its evaluation after the update that
crosses a multiple of ``--eval-every`` lands up to one update later than imitation's (which
lands on it exactly): with ``--eval-every`` no larger than one update, both sides are
evaluated after every update. ``--sides protege`` and ``--adversarial KEY=VALUE`` are for
development runs of protege alone with settings other than its defaults.

Each (task, method, seed) runs both sides back to back, the order alternating between runs,
so that load on the (shared) machine hits both alike. Reported: return against env steps,
and the env steps and training wall time (evaluation excluded) at which the learner first
reaches 90% of the expert (the first evaluation after step 0 at that level), measured as
``random + 0.9 · (expert − random)`` of the mean returns on the evaluation episodes (so that
Pendulum's negative returns work too).

    .venv/bin/python benchmarks/adversarial_vs_imitation.py --tasks cartpole --seeds 0 1 2 \\
        --steps cartpole=36000 --eval-every 2048 --out benchmarks/results/adv/cartpole
    .venv/bin/python benchmarks/adversarial_vs_imitation.py \\
        --report benchmarks/results/adv/*/results.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

import protege
from imitation_peer import VENV_DIR, read_marker, run_in_venv
from protege.algos.adversarial import train
from protege.configs.adversarial import AdversarialConfig, ppo_config
from protege.configs.demos import EVAL_SEED_OFFSET
from protege.data.store import Store
from protege.rollout.evaluate import evaluate_expert
from store_load import machine

GYM_IDS = {"cartpole": "CartPole-v1", "pendulum": "Pendulum-v1", "lunarlander": "LunarLander-v3"}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def random_return(task: Any, episodes: int, seed: int) -> float:
    """Mean return of uniformly random actions on the evaluation episodes."""
    env = task.make_env()
    env.action_space.seed(seed)
    out = []
    for i in range(episodes):
        env.reset(seed=seed + i)
        ret, done = 0.0, False
        while not done:
            _, r, term, trunc, _ = env.step(env.action_space.sample())
            ret += float(r)
            done = term or trunc
        out.append(ret)
    env.close()
    return float(np.mean(out))


def prepare(task_name: str, episodes: int, out: Path, eval_episodes: int) -> dict[str, Any]:
    """Demonstrations (store + npz) and the reference levels of one task."""
    task = protege.tasks.make(task_name)
    store_dir = out / "demos" / task_name
    if store_dir.exists():
        shutil.rmtree(store_dir)
    protege.collect(task, store_dir, episodes=episodes, n_envs=min(episodes, 8), seed=0)
    data = Store.open(store_dir).transitions()
    assert data.final_obs is not None and data.terminated is not None
    npz = out / "demos" / f"{task_name}.npz"
    np.savez(
        npz,
        obs=np.asarray(data.obs),
        acts=np.asarray(data.actions),
        lengths=data.episode_lengths,
        final_obs=np.asarray(data.final_obs),
        terminated=data.terminated,
    )
    ev = evaluate_expert(task, eval_episodes, 1, EVAL_SEED_OFFSET)
    rand = random_return(task, eval_episodes, EVAL_SEED_OFFSET)
    return {
        "task": task_name,
        "demo_episodes": episodes,
        "demo_steps": len(data),
        "demo_return": float(
            np.mean(
                [
                    data.rewards[s : s + n].sum()
                    for s, n in zip(data.episode_starts, data.episode_lengths, strict=True)
                ]
            )
        ),
        "expert_return": ev.mean_return,
        "random_return": rand,
        "threshold": rand + 0.9 * (ev.mean_return - rand),
        "store": str(store_dir),
        "npz": str(npz),
    }


# The PPO settings ``--learner`` may set on both sides: PPOConfig's name -> the imitation
# side's flag (SB3 PPO's argument there).
LEARNER_FLAGS = {
    "rollout_steps": "--rollout-steps",
    "n_envs": "--n-envs",
    "epochs": "--n-epochs",
    "minibatch_size": "--batch-size",
    "lr": "--lr",
    "gamma": "--gamma",
    "gae_lambda": "--gae-lambda",
    "clip": "--clip",
}


def key_values(items: list[str], what: str) -> dict[str, Any]:
    """``["a=1", "b=0.5"]`` -> ``{"a": 1, "b": 0.5}`` (numbers parsed as JSON)."""
    out: dict[str, Any] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep:
            raise SystemExit(f"{what}: expected KEY=VALUE, got {item!r}")
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def learner_settings(args: argparse.Namespace, task: str) -> dict[str, Any]:
    """The ``--learner`` settings that apply to ``task`` (``TASK:KEY=VALUE`` or ``KEY=VALUE``)."""
    mine = [x.split(":", 1)[1] for x in args.learner if x.startswith(f"{task}:")]
    common = [x for x in args.learner if ":" not in x.split("=", 1)[0]]
    out = key_values(common + mine, "--learner")
    unknown = set(out) - set(LEARNER_FLAGS)
    if unknown:
        raise SystemExit(f"--learner: unknown {sorted(unknown)}; known: {list(LEARNER_FLAGS)}")
    return out


def run_protege(ref: dict, method: str, seed: int, steps: int, args: argparse.Namespace) -> dict:
    task = protege.tasks.make(ref["task"])
    data = Store.open(ref["store"]).transitions()
    out = Path(args.out) / "runs" / f"protege_{ref['task']}_{method}_{seed}"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    r = train(
        method,
        task,
        data,
        out,
        AdversarialConfig(
            steps=steps,
            eval_every=args.eval_every,
            eval_episodes=args.eval_episodes,
            **key_values(args.adversarial, "--adversarial"),
        ),
        ppo_config(seed=seed, **learner_settings(args, ref["task"])),
        tensorboard=False,
        reward_episodes=args.reward_episodes,
    )
    evals = [
        {k: e[k] for k in ("env_steps", "mean_return", "std_return", "wall_seconds")}
        for e in r.evals
    ]
    return {
        "evals": evals,
        "process_seconds": time.perf_counter() - t0,
        "reward_correlation": r.reward_correlation,
    }


def run_imitation(ref: dict, method: str, seed: int, steps: int, args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    res = run_in_venv(
        "adversarial_run.py",
        [
            "--algo",
            method,
            "--env",
            GYM_IDS[ref["task"]],
            "--demos",
            ref["npz"],
            "--steps",
            str(steps),
            "--eval-every",
            str(args.eval_every),
            "--eval-episodes",
            str(args.eval_episodes),
            "--eval-seed",
            str(seed + EVAL_SEED_OFFSET),  # the episodes protege's run evaluates on
            "--seed",
            str(seed),
            *[
                str(x)
                for k, v in learner_settings(args, ref["task"]).items()
                for x in (LEARNER_FLAGS[k], v)
            ],
        ],
        venv_dir=Path(args.venv_dir),
        env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    )
    return {"evals": res["evals"], "process_seconds": time.perf_counter() - t0}


def first_reach(evals: list[dict], threshold: float) -> dict[str, float | None]:
    """The first evaluation after training began (env steps > 0) at the threshold: an
    untrained policy that happens to balance CartPole (imitation's SB3 initialization does,
    on some seeds) has learned nothing."""
    for e in evals:
        if e["env_steps"] > 0 and e["mean_return"] >= threshold:
            return {"env_steps": e["env_steps"], "wall_seconds": e["wall_seconds"]}
    return {"env_steps": None, "wall_seconds": None}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(results["tasks"])
    methods = results["methods"]
    fig, axes = plt.subplots(
        len(tasks), len(methods), figsize=(5 * len(methods), 3.4 * len(tasks)), squeeze=False
    )
    colors = {"protege": "#1f77b4", "imitation": "#d62728"}
    for i, t in enumerate(tasks):
        ref = results["tasks"][t]
        for j, m in enumerate(methods):
            ax = axes[i][j]
            labelled: set[str] = set()
            if not any(r["task"] == t and r["method"] == m for r in results["runs"]):
                ax.set_title(f"{m.upper()} on {t}: not measured")
                ax.set_axis_off()
                continue
            for run in results["runs"]:
                if run["task"] != t or run["method"] != m:
                    continue
                for side in ("protege", "imitation"):
                    if side not in run:
                        continue
                    ev = run[side]["evals"]
                    ax.plot(
                        [e["env_steps"] for e in ev],
                        [e["mean_return"] for e in ev],
                        color=colors[side],
                        alpha=0.6,
                        lw=1.2,
                        label=None if side in labelled else f"{side} (one line per seed)",
                    )
                    labelled.add(side)
            ax.axhline(ref["expert_return"], color="#444444", ls="--", lw=1, label="expert")
            ax.axhline(ref["threshold"], color="#888888", ls=":", lw=1, label="90% level")
            ax.set_title(f"{m.upper()} on {t}")
            ax.set_xlabel("env steps")
            ax.set_ylabel("return (deterministic)")
            ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def median_or_none(values: list[float | None]) -> float | None:
    """The median, a run that never reached counting as infinitely costly (None if most
    never reached)."""
    xs = sorted(float("inf") if v is None else float(v) for v in values)
    m = float(np.median(xs))
    return None if not np.isfinite(m) else m


def summarize(results: dict) -> list[dict]:
    rows = []
    for t, ref in results["tasks"].items():
        for m in results["methods"]:
            runs = [r for r in results["runs"] if r["task"] == t and r["method"] == m]
            if not runs:
                continue
            row: dict[str, Any] = {"task": t, "method": m, "seeds": [r["seed"] for r in runs]}
            for side in ("protege", "imitation"):
                if not all(side in r for r in runs):
                    continue
                reach = [first_reach(r[side]["evals"], ref["threshold"]) for r in runs]
                row[side] = {
                    "reached": sum(x["env_steps"] is not None for x in reach),
                    "median_steps_to_90": median_or_none([x["env_steps"] for x in reach]),
                    "median_wall_to_90": median_or_none([x["wall_seconds"] for x in reach]),
                    "final_return": float(
                        np.mean([r[side]["evals"][-1]["mean_return"] for r in runs])
                    ),
                    "train_seconds": float(
                        np.median([r[side]["evals"][-1]["wall_seconds"] for r in runs])
                    ),
                }
            rows.append(row)
    return rows


def fmt(x: float | None, digits: int = 0) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def merge_sides(runs: list[dict]) -> list[dict]:
    """``runs`` with the sides of one (task, method, seed) recorded separately joined."""
    out: dict[tuple, dict] = {}
    for run in runs:
        key = (run["task"], run["method"], run["seed"])
        if key not in out:
            out[key] = dict(run)
            continue
        both = out[key]
        for side in ("protege", "imitation"):
            if side in run and side not in both:
                both[side] = run[side]
                both["order"] = [*both["order"], *run["order"]]
                both["parallel"] = True
    return list(out.values())


def report(paths: list[str], figure: Path | None = None) -> None:
    """A markdown table of the runs recorded in ``paths`` (results.json files; runs still in
    progress when a file was last written are not in it), and with ``figure`` their return
    against env steps in one PNG. The two sides of one (task, method, seed) found in two
    files (run by two processes at once with ``--sides``) are one run, marked "parallel"."""
    merged: dict[str, Any] = {"tasks": {}, "runs": [], "seeds": [], "methods": []}
    for path in paths:
        results = json.loads(Path(path).read_text())
        merged["tasks"].update(results["tasks"])
        merged["runs"] = merge_sides(merged["runs"] + results["runs"])
        merged["seeds"] += [s for s in results["seeds"] if s not in merged["seeds"]]
        merged["methods"] += [m for m in results["methods"] if m not in merged["methods"]]
    merged["seeds"] = sorted({r["seed"] for r in merged["runs"]})
    if figure is not None:
        plot(merged, figure)
    print(
        "| task | method | seeds | side | reached 90% | env steps to 90% (median) "
        "| train s to 90% (median) | final return (mean) | train s, whole budget (median) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for results in [merged]:
        for row in summarize(results):
            for side in ("protege", "imitation"):
                if side not in row:
                    continue
                r = row[side]
                print(
                    f"| {row['task']} | {row['method'].upper()} | {row['seeds']} | {side} "
                    f"| {r['reached']}/{len(row['seeds'])} | {fmt(r['median_steps_to_90'])} "
                    f"| {fmt(r['median_wall_to_90'], 1)} | {fmt(r['final_return'], 1)} "
                    f"| {fmt(r['train_seconds'], 1)} |"
                )
    print()
    print(
        "| task | method | seed | side (order) | env steps to 90% | train s to 90% "
        "| final return | train s, whole budget | process s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for run in merged["runs"]:
        ref = merged["tasks"][run["task"]]
        for side in ("protege", "imitation"):
            if side not in run:
                continue
            ev = run[side]["evals"]
            x = first_reach(ev, ref["threshold"])
            first = "first" if run["order"][0] == side else "second"
            first = "parallel" if run.get("parallel") else first
            print(
                f"| {run['task']} | {run['method'].upper()} | {run['seed']} | {side} ({first}) "
                f"| {fmt(x['env_steps'])} | {fmt(x['wall_seconds'], 1)} "
                f"| {fmt(ev[-1]['mean_return'], 1)} | {fmt(ev[-1]['wall_seconds'], 1)} "
                f"| {fmt(run[side]['process_seconds'], 0)} |"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report", nargs="+", metavar="RESULTS_JSON", help="only print the table")
    ap.add_argument("--tasks", nargs="+", default=["cartpole", "pendulum", "lunarlander"])
    ap.add_argument("--methods", nargs="+", default=["gail", "airl"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument(
        "--steps",
        nargs="+",
        default=["cartpole=60000", "pendulum=100000", "lunarlander=300000"],
        help="env-step budget per task, TASK=N",
    )
    ap.add_argument("--demos", type=int, default=8, help="expert episodes per task")
    ap.add_argument("--eval-every", type=int, default=6000)
    ap.add_argument("--eval-episodes", type=int, default=10)
    ap.add_argument("--reward-episodes", type=int, default=0)
    ap.add_argument(
        "--learner",
        nargs="+",
        default=[],
        metavar="[TASK:]KEY=VALUE",
        help="PPO settings for both sides (PPOConfig names: "
        + ", ".join(LEARNER_FLAGS)
        + "), e.g. pendulum:gamma=0.9; default: each side's own",
    )
    ap.add_argument(
        "--adversarial",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="protege's AdversarialConfig settings other than its defaults (development runs)",
    )
    ap.add_argument(
        "--sides",
        nargs="+",
        default=["protege", "imitation"],
        choices=["protege", "imitation"],
        help="which sides to run (protege alone: development runs)",
    )
    ap.add_argument("--venv-dir", default=str(VENV_DIR))
    ap.add_argument("--out", default="benchmarks/results/adversarial_vs_imitation")
    args = ap.parse_args()
    if args.report:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        report(args.report, Path(args.out) / "return_vs_steps.png")
        return
    torch.set_num_threads(1)
    budgets = {k: int(v) for k, v in (s.split("=") for s in args.steps)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "machine": machine() + " (shared with other jobs, loaded)",
        "torch": torch.__version__,
        "seeds": args.seeds,
        "methods": args.methods,
        "budgets": budgets,
        "eval_every": args.eval_every,
        "eval_episodes": args.eval_episodes,
        "learner": {t: learner_settings(args, t) for t in args.tasks},
        "protege_ppo": {t: asdict(ppo_config(**learner_settings(args, t))) for t in args.tasks},
        "adversarial": key_values(args.adversarial, "--adversarial"),
        "tasks": {},
        "runs": [],
    }
    marker = read_marker(Path(args.venv_dir))
    results["imitation_versions"] = (marker or {}).get("versions")
    json_path = out / "results.json"
    k = 0
    for t in args.tasks:
        log(f"== {t}: demonstrations and reference levels")
        results["tasks"][t] = ref = prepare(t, args.demos, out, args.eval_episodes)
        log(json.dumps(ref))
        for seed in args.seeds:
            for m in args.methods:
                run: dict[str, Any] = {"task": t, "method": m, "seed": seed}
                sides = ["protege", "imitation"] if k % 2 == 0 else ["imitation", "protege"]
                sides = [x for x in sides if x in args.sides]
                run["order"] = sides
                k += 1
                for side in sides:
                    log(f"-- {t} {m} seed {seed}: {side}")
                    fn = run_protege if side == "protege" else run_imitation
                    run[side] = fn(ref, m, seed, budgets[t], args)
                    log(f"   final {run[side]['evals'][-1]}")
                results["runs"].append(run)
                results["summary"] = summarize(results)
                json_path.write_text(json.dumps(results, indent=1))
                plot(results, out / "return_vs_steps.png")
    print(json.dumps(results["summary"], indent=1))


if __name__ == "__main__":
    main()
