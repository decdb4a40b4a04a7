"""protege train | eval: behavioral cloning and evaluation on rollouts."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

from protege.cli import output, results_json
from protege.cli.data import _policy_meta
from protege.cli.flags import (
    add_config_flags,
    bar,
    config_values,
    device_flag,
    json_flag,
    open_workers,
    rollout_flags,
    run_flags,
    task_flag,
    workers_flags,
)
from protege.cli.registry import command
from protege.configs.bc import BCConfig
from protege.configs.checks import PRECISIONS
from protege.configs.offline import ALGOS, OfflineConfig
from protege.configs.policy import PolicyConfig
from protege.errors import ConfigError, TrainingError

if TYPE_CHECKING:
    from protege.algos.bc import BCResult
    from protege.tasks import Task


_POLICY_SKIP = (
    "obs_shape", "obs_parts", "act_dim", "discrete", "n_actions", "action_low", "action_high",
)  # fmt: skip
_BC_SKIP = ("seed", "progress")


def _train_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, metavar="DIR", help="a protege store")
    p.add_argument("--out", required=True, metavar="DIR", help="policy directory to write")
    task_flag(
        p,
        required=False,
        extra="; checks the store's spaces against it (default: the task recorded in the store)",
    )
    run_flags(p)
    add_config_flags(
        p,
        PolicyConfig,
        skip=_POLICY_SKIP,
        defaults={
            "head": "categorical for Discrete actions, mse for Box actions; "
            "`protege info --tasks` lists the heads",
            "encoder": "mlp, cnn for image observations, parts for observations of several parts",
        },
    )
    add_config_flags(
        p, BCConfig, skip=(*_BC_SKIP, "device"), choices={"precision": list(PRECISIONS)}
    )
    device_flag(p)
    json_flag(p)
    add_config_flags(p, OfflineConfig, choices={"algo": list(ALGOS)})


@command(
    "train",
    _train_flags,
    interrupted="the policy was not saved; run the command again to train it",
)
def train(args: argparse.Namespace) -> None:
    """Train a policy by behavioral cloning on a store's labeled steps, or by a position of
    the offline dial that uses the store's rewards (--algo).

    --algo bc (default) clones every labeled step; filtered-bc clones the best episodes by
    return (--top-fraction, --min-return); awr and iql clone every executed step weighted by
    exp(A/β), with advantages from value functions fit on the rewards. Writes the policy
    (config.json + model.safetensors) and train.json (settings and losses) to --out. The head
    defaults to what the action space needs: categorical for discrete actions, mse for
    continuous ones.

    Example: protege train --data demos/lunar --out runs/bc --steps 4000 --hidden-sizes 256 256
             protege train --data demos/mixed --out runs/iql --algo iql --steps 20000

    Under torchrun (several processes, data parallel; README "torchrun"), each process trains
    on its slice of every batch and rank 0 alone writes --out (--algo bc only).
    """
    from protege.algos import bc, distributed, offline
    from protege.data.store import Store
    from protege.policies import Policy
    from protege.report.page import command_line

    world = distributed.from_env()
    if world is None or world.main:
        output.announce(args)
    _check_registered(args)
    store = Store.open(args.data)
    task_name = args.task or store.task
    if task_name is not None:
        store.check_spaces(*_make_task(task_name, None if args.task else f"{args.data}").spaces)
    policy_config = PolicyConfig.for_spaces(
        store.observation_space, store.action_space, **config_values(PolicyConfig, args)
    )
    bc_config = BCConfig(**{**config_values(BCConfig, args), "progress": args.progress})
    dial = OfflineConfig(**config_values(OfflineConfig, args))
    if world is not None:
        world.check_batch(bc_config.batch_size)
        if dial.algo != "bc":
            raise ConfigError(
                f"--algo {dial.algo} trains on one process; under torchrun only --algo bc does"
            )
    policy = Policy(policy_config, seed=args.seed)  # initial weights: the seed's alone
    extra = {"task": task_name, "data": str(args.data)}
    try:
        if world is None:
            run = offline.fit(policy, store, bc_config, dial)
            result, samples_per_s = run.bc, run.samples_per_s
        else:
            from protege.device import resolve_device

            # one GPU per process: plain `cuda` means this node's GPU number LOCAL_RANK
            device = world.device(resolve_device(bc_config.device))
            bc_config = replace(bc_config, device=str(device))
            with distributed.process_group(world, device):
                result = bc.fit(policy, store, bc_config, world)
            run, samples_per_s = None, result.samples_per_s
    except TrainingError as exc:  # the policy holds its last finite weights: keep them
        if world is not None and not world.main:
            raise
        saved = policy.save(args.out, extra={**extra, "diverged_at_step": exc.step})
        raise TrainingError(f"{exc}; saved to {saved}", exc.step, exc.kept_step) from None
    if world is not None and not world.main:
        return  # rank 0 writes the policy and the record
    out = policy.save(args.out, extra=extra)
    record = {
        "task": task_name,
        "data": str(args.data),
        "seed": args.seed,
        "bc": asdict(bc_config),
        "offline": asdict(dial),
        "policy": policy_config.to_dict(),
        "result": result.to_dict(),
        "offline_result": None
        if run is None
        else {k: v for k, v in run.to_dict().items() if k != "bc"},
        "command": command_line(),
    }
    (out / "train.json").write_text(json.dumps(record, indent=2))
    last = result.history[-1] if result.history else {}
    if run is None or dial.algo == "bc":
        title = f"BC on {len(store)} episodes ({store.n_labels:,} labels)"
    else:
        title = f"{dial.algo} on {run.episodes_kept} of {len(store)} episodes"
    facts = {}
    if run is not None and run.critic is not None:
        facts["critics"] = f"{run.critic.steps} steps, {run.critic.seconds:.1f} s"
        w = run.weights
        facts["weights"] = f"mean {w['mean']:.3g}, max {w['max']:.3g}, {w['at_clip']:.1%} clipped"
    output.facts(
        title,
        {
            **facts,
            "head": f"{policy_config.head}, MLP {' × '.join(map(str, policy_config.hidden_sizes))}",
            "steps": f"{result.steps}" + (" (stopped early)" if result.stopped_early else ""),
            "train loss (last)": f"{last.get('train_loss', float('nan')):.4g}",
            "val loss (best)": f"{result.best_val_loss:.4g} at step {result.best_step}"
            if result.n_val
            else "– (no validation episodes)",
            "weights kept": weights_kept(result, bc_config.restore_best),
            "device": f"{result.device}, {result.precision}",
            "samples/s": f"{samples_per_s:,.0f}"
            + (f" ({result.world_size} processes)" if result.world_size > 1 else ""),
            "train time": f"{result.train_seconds:.1f} s",
            "seed": args.seed,
            "policy": f"{out} (+ train.json)",
        },
    )
    settings = {k: record[k] for k in ("task", "data", "bc", "offline", "policy")}
    results = {**record["result"], "offline": record["offline_result"]}
    results_json.write(args, {**settings, "out": str(out)}, results)


def weights_kept(result: BCResult, restore_best: bool) -> str:
    """Which step's weights ``bc.fit`` kept: the lowest validation loss only with
    ``restore_best`` and a validation split; otherwise the last step's."""
    if restore_best and result.n_val:
        return f"step {result.best_step} (lowest validation loss; --restore-best)"
    if result.n_val:
        return f"step {result.steps} (the last; --restore-best keeps step {result.best_step})"
    return f"step {result.steps} (the last)"


def _check_registered(args: argparse.Namespace) -> None:
    """--head and --encoder name registered ones (checked here, not by argparse: a plugin
    may register more, and listing them in --help would import torch)."""
    from protege.policies import HEADS
    from protege.policies.encoders import ENCODERS

    for flag, value, known in (("head", args.head, HEADS), ("encoder", args.encoder, ENCODERS)):
        if value is not None and value not in known:
            raise ConfigError(
                f"--{flag} {value!r}: no such {flag}; registered: {', '.join(sorted(known))}"
            )


def _make_task(name: str, recorded_in: str | None) -> Task:
    """``tasks.make(name)``; when the name comes from a store or policy, an unknown one says
    which (the user did not type it)."""
    from protege import tasks

    try:
        return tasks.make(name)
    except tasks.UnknownTaskError as exc:
        if recorded_in is None:
            raise
        raise ConfigError(f"{recorded_in} records the task {name!r}: {exc}") from None


def _eval_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--policy",
        metavar="DIR",
        help="a policy written by `train`, or any round's learner of `protege dagger` "
        "(OUT.run/learners/round_NNN: a policy, an ensemble or a ThriftyDAgger learner)",
    )
    task_flag(p, required=False, extra=" (default: the task recorded with the policy)")
    p.add_argument(
        "--expert", action="store_true", help="also evaluate the task's expert (the reference)"
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="act with the head's mode; --no-deterministic samples from it "
        "(`evaluate(deterministic=...)`; default: deterministic)",
    )
    mode.add_argument(
        "--sample",
        dest="deterministic",
        action="store_false",
        help="the same as --no-deterministic: sample actions from the head",
    )
    json_flag(p)
    rollout_flags(p, episodes=50)
    workers_flags(p)
    run_flags(p)
    device_flag(p)


@command("eval", _eval_flags)
def eval_(args: argparse.Namespace) -> None:
    """Evaluate a policy (and/or the expert) on rollouts of a task.

    Reports return (mean ± std), success rate, episode length and the policy's disagreement
    with the expert along its own trajectories. With --expert, the expert runs on the same
    seeded episodes and the policy's return is also shown as a percentage of the expert's.

    Example: protege eval --policy runs/bc --task lunarlander --episodes 50 --expert
    """
    from protege.algos.registry import load_learner
    from protege.rollout import evaluate, evaluate_expert

    if args.policy is None and not args.expert:
        raise ConfigError("nothing to evaluate: give --policy DIR, --expert, or both")
    output.announce(args)
    policy = load_learner(args.policy, args.device or "auto") if args.policy else None
    task_name = args.task or (_policy_meta(args.policy).get("task") if args.policy else None)
    if task_name is None:
        raise ConfigError(f"{args.policy}: the policy records no task; give --task")
    task = _make_task(task_name, None if args.task else f"{args.policy}")
    kw: dict[str, Any] = {"episodes": args.episodes, "n_envs": args.n_envs, "seed": args.seed}
    evals = {}
    with open_workers(args) as workers:
        if args.expert:
            evals["expert"] = evaluate_expert(
                task, progress=bar(args, "eval expert"), workers=workers, **kw
            )
        if policy is not None:
            evals["policy"] = evaluate(
                policy,
                task,
                deterministic=args.deterministic,
                progress=bar(args, "eval policy"),
                workers=workers,
                **kw,
            )
    output.evaluation_table(f"{task.name}: {args.episodes} episodes, seed {args.seed}", evals, {})
    settings = {
        "policy": args.policy,
        "device": str(args.device or "auto"),
        "task": task.name,
        "expert": args.expert,
        "deterministic": args.deterministic,
        **kw,
    }
    results = {
        k: {**ev.summary(), "returns": ev.returns, "lengths": ev.lengths} for k, ev in evals.items()
    }
    results_json.write(args, settings, results)
