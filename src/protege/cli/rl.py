"""protege finetune: improve a trained policy with reward (PPO, KL anchor, BC term)."""

from __future__ import annotations

import argparse
import dataclasses

from protege.cli import output, results_json
from protege.cli.flags import add_config_flags, config_values, json_flag, run_flags, task_flag
from protege.cli.learn import _make_task
from protege.cli.registry import command
from protege.configs.rl import FinetuneConfig, PPOConfig, SACConfig
from protege.errors import ConfigError, DataError


def _finetune_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", required=True, metavar="DIR", help="the policy to start from")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder (the policy too)")
    task_flag(p, required=False, extra=" (default: the task recorded with the policy)")
    p.add_argument(
        "--algo",
        default="ppo",
        choices=["ppo", "sac"],
        help="the RL learner (default: ppo). sac: off-policy soft actor-critic for categorical "
        "and gaussian policies, --bc-data drawn into its minibatches, --kl its KL weight to the "
        "start; the flags it shares with PPO "
        f"({', '.join('--' + n.replace('_', '-') for n in SHARED)}) then set SACConfig's "
        "fields, whose defaults differ (see protege.configs.rl.SACConfig)",
    )
    p.add_argument(
        "--bc-data",
        metavar="STORE",
        help="demonstrations for the BC term (pattern 2, with --bc-weight > 0) and the critic "
        "pre-fit (--critic-prefit > 0: they must carry rewards)",
    )
    ppo_run_flags(p, FinetuneConfig)
    add_config_flags(p, SACConfig, skip=(*SHARED, "seed"))


SHARED = (
    *("rollout_steps", "n_envs", "gamma", "lr", "critic_lr", "critic_hidden_sizes"),
    *("max_grad_norm", "renormalize_obs"),
)
"""The fields SACConfig shares with PPOConfig: one flag each, read by the chosen learner."""
PPO_ONLY = ("epochs", "minibatch_size", "gae_lambda", "clip")


def ppo_run_flags(
    p: argparse.ArgumentParser, config: type, ppo_defaults: dict[str, str] | None = None
) -> None:
    """What every command that runs the PPO learner takes after its own flags: ``--resume``,
    ``--tensorboard``, ``config``'s flags and PPO's, the seed and progress, ``--json``
    (``ppo_defaults``: PPO defaults the command uses instead of PPOConfig's, for the help)."""
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its checkpoint"
    )
    p.add_argument(
        "--tensorboard",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write a TensorBoard log to OUT/tb (needs tensorboard installed; default: yes)",
    )
    add_config_flags(p, config)
    add_config_flags(p, PPOConfig, skip=("seed",), defaults=ppo_defaults)
    run_flags(p)
    json_flag(p)


@command(
    "finetune",
    _finetune_flags,
    interrupted="its last checkpoint is kept: run the same command with --resume to continue",
)
def finetune(args: argparse.Namespace) -> None:
    """Fine-tune a trained policy with reinforcement learning on the task's reward.

    PPO starts from the policy (any head with a log-probability: categorical, gaussian, mog,
    binned), warms up its value function first (--value-warmup updates), and keeps a KL
    penalty to the frozen starting policy (--kl, decayed by --kl-decay per update). With
    --bc-data and --bc-weight it also adds a BC loss on those demonstrations (DAPG-style,
    decayed by --bc-decay). --critic-prefit N fits the value function to --bc-data's
    discounted returns for N steps before the first update (no env steps). Evaluates every
    --eval-every env steps; writes the fine-tuned policy (what `protege eval` reads), its RL
    episodes (OUT/store), a checkpoint after every update (--resume continues from it, even
    after kill -9), a TensorBoard log and finetune.json to --out.

    Example:
    protege finetune --policy runs/bc --task lunarlander --kl 0.1 --steps 300000 --out runs/ft
    """
    from protege.algos.finetune import finetune as run
    from protege.cli.data import _policy_meta
    from protege.data.store import Store
    from protege.policies import Policy

    output.announce(args)
    if not args.tensorboard:
        tb = False
    else:
        try:
            import tensorboard  # noqa: F401

            tb = True
        except ImportError:
            tb = False
            output.note(
                "no TensorBoard log: tensorboard is not installed "
                "(pip install 'protege[tensorboard]')"
            )
    policy = Policy.load(args.policy)
    task_name = args.task or _policy_meta(args.policy).get("task")
    if not task_name:
        raise ConfigError(f"{args.policy}: the policy records no task; give --task")
    task = _make_task(task_name, None if args.task else f"{args.policy}")
    cfg = FinetuneConfig(**config_values(FinetuneConfig, args))
    ppo = PPOConfig(**config_values(PPOConfig, args, skip=("seed",)), seed=args.seed)
    sac = None
    if args.algo == "sac":
        sac = SACConfig(**config_values(SACConfig, args, skip=("seed",)), seed=args.seed)
        given = [f"--{n.replace('_', '-')}" for n in PPO_ONLY if getattr(args, n) is not None]
        if given:
            raise ConfigError(f"{', '.join(given)}: PPO's settings; --algo sac does not use them")
    else:
        sac_only = config_values(SACConfig, args, skip=(*SHARED, "seed"))
        if sac_only:
            flags = ", ".join(f"--{n.replace('_', '-')}" for n in sac_only)
            raise ConfigError(f"{flags}: SAC's settings; give --algo sac to use them")
    demos = None
    if args.bc_data is not None:
        store = Store.open(args.bc_data)
        store.check_spaces(*task.spaces)
        demos = store.transitions()
        if cfg.critic_prefit > 0 and not demos.rewards.any():
            raise DataError(
                f"{args.bc_data}: every reward is 0 (a store without rewards); --critic-prefit "
                "fits the critic to the demonstrations' returns: collect them from a task "
                "with rewards, or fine-tune without it"
            )
    elif cfg.bc_weight > 0:
        raise ConfigError("--bc-weight > 0 needs demonstrations: give --bc-data STORE")
    elif cfg.critic_prefit > 0:
        raise ConfigError("--critic-prefit > 0 needs demonstrations: give --bc-data STORE")
    result = run(
        policy,
        task,
        args.out,
        cfg,
        ppo,
        sac=sac,
        demos=demos,
        resume=args.resume,
        progress="fine-tune" if args.progress else False,
        tensorboard=tb,
        extra={"task": task.name, "data": str(args.bc_data or args.policy)},
    )
    rows = [
        [
            f"{e['env_steps']:,}",
            str(e["update"]),
            f"{e['mean_return']:.1f} ± {e['std_return']:.1f}",
            f"{e['success_rate']:.0%}",
        ]
        for e in result.evals
    ]
    output.print_table(
        f"{task.name}: {cfg.eval_episodes} evaluation episodes each, seed {ppo.seed}",
        ["env steps", "update", "return", "success"],
        rows,
    )
    output.facts(
        "Fine-tuning",
        {
            "algo": args.algo,
            "KL": f"{cfg.kl} × {cfg.kl_decay}^update" if cfg.kl else "off",
            "BC term": f"{cfg.bc_weight} × {cfg.bc_decay}^update" if cfg.bc_weight else "off",
            "env steps": f"{result.env_steps:,} ({result.updates} updates)",
            "resumed after update": "–" if result.resumed_from is None else result.resumed_from,
            "train time": f"{result.wall_seconds:.1f} s",
            "seed": args.seed,
            "policy": f"{args.out} (+ store/, checkpoint/, finetune.json)",
        },
    )
    settings = {
        "policy": args.policy,
        "out": args.out,
        "task": task.name,
        "bc_data": args.bc_data,
        "resume": args.resume,
        "finetune": dataclasses.asdict(cfg),
        **({"sac": dataclasses.asdict(sac)} if sac else {"ppo": dataclasses.asdict(ppo)}),
    }
    results_json.write(
        args,
        settings,
        {
            "evals": result.evals,
            "env_steps": result.env_steps,
            "updates": result.updates,
            "resumed_from": result.resumed_from,
            "wall_seconds": result.wall_seconds,
        },
    )


def _preferences_flags(p: argparse.ArgumentParser) -> None:
    from protege.configs.preferences import ORACLES, PreferenceConfig, PreferenceRunConfig

    task_flag(p)
    p.add_argument("--out", required=True, metavar="DIR", help="run folder")
    p.add_argument(
        "--human",
        action="store_true",
        help="a person answers in a pygame window (the same as --oracle human)",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out (no answer is lost)"
    )
    add_config_flags(p, PreferenceConfig, choices={"oracle": list(ORACLES)})
    add_config_flags(p, PreferenceRunConfig)
    add_config_flags(p, PPOConfig, skip=("seed",))
    run_flags(p)
    json_flag(p)


@command(
    "preferences",
    _preferences_flags,
    interrupted="every answer is kept in {out}/preferences.jsonl: run the same command with "
    "--resume to continue",
)
def preferences(args: argparse.Namespace) -> None:
    """Learn a reward from preferences between pairs of the learner's segments, and PPO on it.

    Christiano et al. (2017): a fresh policy collects episodes with PPO; at each update the
    query schedule allows (--initial-pairs, then --pairs-per-update decaying by --pairs-decay,
    until --preferences answers), pairs of --segment-length-step segments of its episodes
    are shown to the oracle (--oracle true: the task's true reward summed; noisy: the same,
    Boltzmann-rational with --temperature and wrong with --error-rate) or to a person in a
    pygame window (--human: ←/1 left better, →/2 right, ↑/E equal, ↓/S skip, Esc stop).
    Every answer is appended to OUT/preferences.jsonl and fsynced before the next is asked.
    A Bradley–Terry reward model (--ensemble members) is trained on all answers; PPO learns
    on its reward (scale-normalized). Evaluations use the task's true reward. Writes the
    policy, the reward model (OUT/reward), a checkpoint after every update (--resume
    continues, even after kill -9, asking nobody twice) and preferences.json to --out.

    Example:
    protege preferences --task cartpole --preferences 100 --steps 30000 --out runs/prefs
    """
    from protege.algos.preferences import learn_from_preferences
    from protege.configs.preferences import PreferenceConfig, PreferenceRunConfig

    output.announce(args)
    values = config_values(PreferenceConfig, args)
    if args.human:
        if values.get("oracle", "human") != "human":
            raise ConfigError(f"--human and --oracle {values['oracle']} contradict; give one")
        values["oracle"] = "human"
    cfg = PreferenceConfig(**values)
    run_cfg = PreferenceRunConfig(**config_values(PreferenceRunConfig, args))
    ppo = PPOConfig(**config_values(PPOConfig, args, skip=("seed",)), seed=args.seed)
    task = _make_task(args.task, None)
    labeler = None
    if cfg.oracle == "human":
        from protege.teleop.preference_window import PersonLabeler, state_renderer

        labeler = PersonLabeler(state_renderer(task), title=f"protege preferences - {task.name}")
    result = learn_from_preferences(
        task,
        args.out,
        cfg,
        run_cfg,
        ppo,
        labeler=labeler,
        resume=args.resume,
        progress="preferences" if args.progress else False,
    )
    rows = [
        [f"{c['env_steps']:,}", f"{c['preferences']:.0f}", f"{c['mean_return']:.1f}"]
        for c in result.curve
    ]
    output.print_table(
        f"{task.name}: true return, {run_cfg.eval_episodes} evaluation episodes each, "
        f"seed {ppo.seed}",
        ["env steps", "preferences", "return"],
        rows,
    )
    counts = result.preferences
    output.facts(
        "Preferences",
        {
            "answered by": counts["source"],
            "answers": f"{counts['total']} (left {counts['left']}, right {counts['right']}, "
            f"equal {counts['equal']}, skipped {counts['skip']})",
            "asked in this run": counts["asked_this_run"],
            "torn last line repaired": f"{result.repaired_bytes} bytes"
            if result.repaired_bytes
            else "–",
            "env steps": f"{result.run.env_steps:,} ({result.run.updates} updates)",
            "resumed after update": "–"
            if result.run.resumed_from is None
            else result.run.resumed_from,
            "train time": f"{result.run.wall_seconds:.1f} s",
            "seed": args.seed,
            "run": f"{args.out} (preferences.jsonl, reward/, policy, checkpoint/)",
        },
    )
    settings = {
        "task": task.name,
        "out": args.out,
        "resume": args.resume,
        "preferences": dataclasses.asdict(cfg),
        "run": dataclasses.asdict(run_cfg),
        "ppo": dataclasses.asdict(ppo),
    }
    results_json.write(
        args,
        settings,
        {
            "curve": result.curve,
            "preferences": counts,
            "repaired_bytes": result.repaired_bytes,
            "env_steps": result.run.env_steps,
            "updates": result.run.updates,
            "resumed_from": result.run.resumed_from,
            "wall_seconds": result.run.wall_seconds,
        },
    )
