"""protege train | eval: behavioral cloning and evaluation on rollouts."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from protege.cli.core import (
    _announce,
    _bar,
    _evaluation_table,
    _facts,
    _rollout_flags,
    _run_flags,
    _task_flag,
    add_config_flags,
    command,
    config_values,
    console,
)
from protege.cli.data import _policy_meta
from protege.errors import ConfigError


def _train_flags(p: argparse.ArgumentParser) -> None:
    from protege.algos.bc import BCConfig
    from protege.policies import HEADS, PolicyConfig
    from protege.policies.encoders import ENCODERS

    p.add_argument("--data", required=True, metavar="DIR", help="a protege store")
    p.add_argument("--out", required=True, metavar="DIR", help="policy directory to write")
    _task_flag(
        p,
        required=False,
        extra="; checks the store's spaces against it (default: the task recorded in the store)",
    )
    _run_flags(p)
    add_config_flags(
        p,
        PolicyConfig,
        skip=("obs_shape", "act_dim", "discrete", "n_actions", "action_low", "action_high"),
        choices={"head": sorted(HEADS), "encoder": sorted(ENCODERS)},
        defaults={
            "head": "categorical for Discrete actions, mse for Box actions",
            "encoder": "mlp, cnn for image observations",
        },
    )
    add_config_flags(p, BCConfig, skip=("seed", "progress"))


@command("train", _train_flags)
def train(args: argparse.Namespace) -> None:
    """Train a policy by behavioral cloning on a store's labeled steps.

    Writes the policy (config.json + model.safetensors) and train.json (settings and losses)
    to --out. The head defaults to what the action space needs: categorical for discrete
    actions, mse for continuous ones.

    Example: protege train --data demos/lunar --out runs/bc --steps 4000 --hidden-sizes 256 256
    """
    from protege import tasks
    from protege.algos import bc
    from protege.data.store import Store
    from protege.demo import seeded_policy
    from protege.policies import PolicyConfig
    from protege.report.page import command_line

    _announce(args)
    store = Store.open(args.data)
    task_name = args.task or store.task
    if task_name is not None:
        store.check_spaces(*tasks.make(task_name).spaces)
    policy_config = PolicyConfig.for_spaces(
        store.observation_space, store.action_space, **config_values(PolicyConfig, args)
    )
    bc_config = bc.BCConfig(**{**config_values(bc.BCConfig, args), "progress": args.progress})
    policy = seeded_policy(policy_config, args.seed)
    result = bc.fit(policy, store, bc_config)
    out = policy.save(args.out, extra={"task": task_name, "data": str(args.data)})
    record = {
        "task": task_name,
        "data": str(args.data),
        "seed": args.seed,
        "bc": asdict(bc_config),
        "policy": policy_config.to_dict(),
        "result": result.to_dict(),
        "command": command_line(),
    }
    (out / "train.json").write_text(json.dumps(record, indent=2))
    last = result.history[-1] if result.history else {}
    _facts(
        f"BC on {len(store)} episodes ({store.n_labels:,} labels)",
        {
            "head": f"{policy_config.head}, MLP {' × '.join(map(str, policy_config.hidden_sizes))}",
            "steps": f"{result.steps}" + (" (stopped early)" if result.stopped_early else ""),
            "train loss (last)": f"{last.get('train_loss', float('nan')):.4g}",
            "val loss (best)": f"{result.best_val_loss:.4g} at step {result.best_step}"
            if result.n_val
            else "– (no validation episodes)",
            "weights kept": f"step {result.best_step} (lowest validation loss)"
            if result.n_val
            else f"step {result.steps} (the last)",
            "samples/s": f"{result.samples_per_s:,.0f}",
            "train time": f"{result.train_seconds:.1f} s",
            "seed": args.seed,
            "policy": f"{out} (+ train.json)",
        },
    )


def _eval_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--policy",
        metavar="DIR",
        help="a policy written by `train`, or any round's learner of `protege dagger` "
        "(OUT.run/learners/round_NNN: a policy, an ensemble or a ThriftyDAgger learner)",
    )
    _task_flag(p, required=False, extra=" (default: the task recorded with the policy)")
    p.add_argument(
        "--expert", action="store_true", help="also evaluate the task's expert (the reference)"
    )
    p.add_argument(
        "--sample", action="store_true", help="sample actions from the head instead of its mode"
    )
    p.add_argument("--json", metavar="FILE", help="write the results as JSON to FILE")
    _rollout_flags(p, episodes=50)
    _run_flags(p)


@command("eval", _eval_flags)
def eval_(args: argparse.Namespace) -> None:
    """Evaluate a policy (and/or the expert) on rollouts of a task.

    Reports return (mean ± std), success rate, episode length and the policy's disagreement
    with the expert along its own trajectories. With --expert, the expert runs on the same
    seeded episodes and the policy's return is also shown as a percentage of the expert's.

    Example: protege eval --policy runs/bc --task lunarlander --episodes 50 --expert
    """
    from protege import tasks
    from protege.algos.dagger import load_learner
    from protege.rollout import evaluate, evaluate_expert

    if args.policy is None and not args.expert:
        raise ConfigError("nothing to evaluate: give --policy DIR, --expert, or both")
    _announce(args)
    policy = load_learner(args.policy) if args.policy else None
    task_name = args.task or (_policy_meta(args.policy).get("task") if args.policy else None)
    if task_name is None:
        raise ConfigError(f"{args.policy}: the policy records no task; give --task")
    task = tasks.make(task_name)
    kw: dict[str, Any] = {"episodes": args.episodes, "n_envs": args.n_envs, "seed": args.seed}
    evals = {}
    if args.expert:
        evals["expert"] = evaluate_expert(task, progress=_bar(args, "eval expert"), **kw)
    if policy is not None:
        evals["policy"] = evaluate(
            policy,
            task,
            deterministic=not args.sample,
            progress=_bar(args, "eval policy"),
            **kw,
        )
    _evaluation_table(f"{task.name}: {args.episodes} episodes, seed {args.seed}", evals, {})
    if args.json:
        payload = {
            "policy": args.policy,
            "task": task.name,
            "seed": args.seed,
            "results": {
                k: {**ev.summary(), "returns": ev.returns.tolist(), "lengths": ev.lengths.tolist()}
                for k, ev in evals.items()
            },
        }
        Path(args.json).write_text(json.dumps(payload, indent=2))
        console.print(f"results: {args.json}", soft_wrap=True)
