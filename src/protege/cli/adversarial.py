"""protege gail, protege airl: adversarial imitation from demonstrations (PPO + discriminator)."""

from __future__ import annotations

import argparse
import dataclasses

from protege.cli import output, results_json
from protege.cli.flags import config_values, task_flag
from protege.cli.learn import _make_task
from protege.cli.registry import command
from protege.cli.rl import ppo_run_flags
from protege.configs.adversarial import PPO_DEFAULTS, AdversarialConfig, ppo_config
from protege.configs.rl import PPOConfig
from protege.errors import ConfigError


def _adversarial_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, metavar="STORE", help="the demonstrations")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder (the policy too)")
    task_flag(p, required=False, extra=" (default: the task recorded in the store)")
    ppo_run_flags(p, AdversarialConfig, {k: str(v) for k, v in PPO_DEFAULTS.items()})


_INTERRUPTED = "its last checkpoint is kept: run the same command with --resume to continue"


@command("gail", _adversarial_flags, interrupted=_INTERRUPTED)
def gail(args: argparse.Namespace) -> None:
    """Generative adversarial imitation learning (Ho & Ermon 2016) from demonstrations.

    A discriminator learns to tell the demonstrations' (state, action) pairs from the
    policy's ((s, s') with --state-only: no action labels needed); PPO trains the policy on
    its reward −log(1 − D). Defaults that work without tuning: a gradient penalty, label
    smoothing, a replay of generator samples, reward normalization, --disc-updates
    discriminator steps per PPO update. Evaluates on rollouts (true reward) every
    --eval-every env steps; writes the policy (what `protege eval` reads), the learned reward
    (OUT/reward, loadable as a reward wrapper), its plot against the true reward, a
    checkpoint after every update (--resume continues, even after kill -9), a TensorBoard log
    and gail.json to --out.

    Example:
    protege gail --data demos/lunar --task lunarlander --steps 500000 --out runs/gail
    """
    _run("gail", args)


@command("airl", _adversarial_flags, interrupted=_INTERRUPTED)
def airl(args: argparse.Namespace) -> None:
    """Adversarial inverse reinforcement learning (Fu et al. 2018) from demonstrations.

    The discriminator's logit is f − log π(a|s), with f = g(s, a) + γ h(s') − h(s): a reward
    g (g(s) with --state-only) and a shaping term h. PPO trains the policy on f; the learned
    reward g is exported to OUT/reward (loadable as a reward wrapper for any run) and plotted
    against the true reward along the policy's trajectories. Same run folder, evaluation,
    checkpoints and --resume as `protege gail`.

    Example:
    protege airl --data demos/pendulum --task pendulum --steps 300000 --out runs/airl
    """
    _run("airl", args)


def _run(method: str, args: argparse.Namespace) -> None:
    from protege.algos.adversarial import train
    from protege.data.store import Store

    output.announce(args)
    tb = args.tensorboard
    if tb:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            tb = False
            output.note(
                "no TensorBoard log: tensorboard is not installed "
                "(pip install 'protege[tensorboard]')"
            )
    store = Store.open(args.data)
    task_name = args.task or store.task
    if not task_name:
        raise ConfigError(f"{args.data}: the store records no task; give --task")
    task = _make_task(task_name, None if args.task else str(args.data))
    store.check_spaces(*task.spaces)
    cfg = AdversarialConfig(**config_values(AdversarialConfig, args))
    ppo = ppo_config(**config_values(PPOConfig, args, skip=("seed",)), seed=args.seed)
    result = train(
        method,
        task,
        store.transitions(),
        args.out,
        cfg,
        ppo,
        resume=args.resume,
        progress=bool(args.progress),
        tensorboard=tb,
        data_name=str(args.data),
    )
    rows = [
        [
            f"{e['env_steps']:,}",
            f"{e['mean_return']:.1f} ± {e['std_return']:.1f}",
            f"{e['success_rate']:.0%}",
            f"{e['wall_seconds']:.1f}",
        ]
        for e in result.evals
    ]
    output.print_table(
        f"{method.upper()} on {task.name}: {cfg.eval_episodes} evaluation episodes each, "
        f"seed {ppo.seed}",
        ["env steps", "return", "success", "train s"],
        rows,
    )
    corr = result.reward_correlation
    output.facts(
        method.upper(),
        {
            "demonstrations": f"{args.data}" + (" (observations only)" if cfg.state_only else ""),
            "env steps": f"{result.env_steps:,}",
            "resumed after update": "–" if result.resumed_from is None else result.resumed_from,
            "train time": f"{result.wall_seconds:.1f} s",
            "learned vs true reward": (
                f"step correlation {corr.get('step', float('nan')):.2f}, return correlation "
                f"{corr.get('episode_return', float('nan')):.2f}"
            ),
            "seed": args.seed,
            "run": f"{args.out} (policy, reward/, reward_vs_true.png, {method}.json)",
        },
    )
    settings = {
        "method": method,
        "data": str(args.data),
        "out": args.out,
        "task": task.name,
        "resume": args.resume,
        "adversarial": dataclasses.asdict(cfg),
        "ppo": dataclasses.asdict(ppo),
    }
    results_json.write(args, settings, result.to_dict())
