"""Reinforcement learning from preferences: PPO on a reward learned from answers about pairs of
the learner's own trajectory segments (Christiano et al. 2017).

:func:`learn_from_preferences` starts a fresh policy and runs the PPO learner through
:func:`protege.algos.finetune.finetune` (no KL anchor, no warm-up: there is nothing to keep)
with a :class:`~protege.rewards.preference_source.PreferenceReward` as its reward. The run
lives in ``out``: what ``finetune`` writes (the policy, ``store/`` of RL episodes,
``checkpoint/`` after every update, ``finetune.json``) plus ``preferences.jsonl`` (every
answer, fsynced as it is given), ``reward/`` (the learned reward model: config.json +
model.safetensors) and ``preferences.json`` (settings and results). Evaluations use the task's
true reward.

**Resumable.** After ``kill -9`` (or a person closing the window), ``resume=True`` continues
from the last checkpoint with the same settings: every answer in ``preferences.jsonl`` is used
again and nobody is asked twice (the PPO update in flight is redone with the same draws).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from protege.algos.finetune import FinetuneResult, finetune
from protege.configs.preferences import PreferenceConfig, PreferenceRunConfig
from protege.configs.rl import FinetuneConfig, PPOConfig
from protege.data.files import write_atomic
from protege.errors import ConfigError
from protege.policies.policy import Policy, PolicyConfig
from protege.rewards.artefact import save_reward
from protege.rewards.oracle import Labeler, SyntheticOracle
from protege.rewards.preference_data import PreferenceFile
from protege.rewards.preference_model import RewardSpec, model_config
from protege.rewards.preference_source import PreferenceReward
from protege.tasks.base import Task

SETTINGS_FILE = "preferences-settings.json"


@dataclass
class PreferenceResult:
    """A preference run: the PPO run's evaluations (true return) and the answers given."""

    seed: int
    run: FinetuneResult
    preferences: dict[str, Any] = field(default_factory=dict)
    """Answers by choice and in all, who gave them, those asked by this process."""
    repaired_bytes: int = 0
    """Bytes of an interrupted last line cut off the preference file when it was opened."""
    curve: list[dict[str, float]] = field(default_factory=list)
    """Per evaluation: ``env_steps``, ``mean_return`` and ``preferences`` answered by then."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def oracle_for(config: PreferenceConfig, seed: int) -> SyntheticOracle:
    """The synthetic oracle ``config.oracle`` names (``true`` or ``noisy``)."""
    if config.oracle == "human":
        raise ConfigError("oracle 'human' is a person: pass a PersonLabeler as labeler")
    return SyntheticOracle(
        seed,
        noisy=config.oracle == "noisy",
        temperature=config.temperature,
        error_rate=config.error_rate,
        tie_margin=config.tie_margin,
    )


def learn_from_preferences(
    task: Task,
    out: str | os.PathLike[str],
    config: PreferenceConfig | None = None,
    run: PreferenceRunConfig | None = None,
    ppo: PPOConfig | None = None,
    *,
    labeler: Labeler | None = None,
    source: type[PreferenceReward] = PreferenceReward,
    resume: bool = False,
    progress: bool | str = False,
    tensorboard: bool = False,
) -> PreferenceResult:
    """PPO from a fresh policy on ``task``'s reward learned from preferences; see the module.

    Args:
        labeler: who answers (default: the synthetic oracle ``config.oracle`` names).
        source: the reward source class (a subclass changes how it queries or trains).
        resume: continue the run in ``out`` (same settings; ``run.steps`` may differ).
    """
    cfg, run_cfg, ppo_cfg = config or PreferenceConfig(), run or PreferenceRunConfig(), ppo
    ppo_cfg = ppo_cfg or PPOConfig()
    out = Path(out)
    settings = {"preferences": asdict(cfg), "policy_hidden_sizes": list(run_cfg.hidden_sizes)}
    settings_file = out / SETTINGS_FILE
    if resume and settings_file.exists():
        recorded = json.loads(settings_file.read_text())
        now = json.loads(json.dumps(settings))
        if recorded != now:
            changed = sorted(
                k
                for k in now["preferences"]
                if recorded.get("preferences", {}).get(k) != now["preferences"][k]
            )
            raise ConfigError(
                f"{out}: the run was started with other preference settings "
                f"({', '.join(changed) or 'policy_hidden_sizes'}); resume with the same ones"
            )
    elif not resume and out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out}: holds a run; resume it (--resume) or pick another --out")
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(settings_file, json.dumps(settings, indent=1))
    obs_space, act_space = task.spaces
    spec = RewardSpec.for_spaces(obs_space, act_space)
    file = PreferenceFile.open(out / "preferences.jsonl", spec.discrete)
    labeler = labeler or oracle_for(cfg, ppo_cfg.seed)
    reward = source(spec, cfg, file, labeler, ppo_cfg.seed)
    policy_cfg = PolicyConfig.for_spaces(
        obs_space,
        act_space,
        hidden_sizes=run_cfg.hidden_sizes,
        head="categorical" if spec.discrete else "gaussian",  # PPO needs a log-probability
    )
    policy = Policy(policy_cfg, seed=ppo_cfg.seed)
    ft = FinetuneConfig(
        steps=run_cfg.steps,
        kl=0.0,
        value_warmup=0,
        eval_every=run_cfg.eval_every,
        eval_episodes=run_cfg.eval_episodes,
    )
    result = finetune(
        policy,
        task,
        out,
        ft,
        ppo_cfg,
        reward=reward,
        resume=resume,
        progress=progress,
        tensorboard=tensorboard,
        extra={"task": task.name, "data": "preferences"},
    )
    reward_config = model_config(reward.model, task=task.name, seed=ppo_cfg.seed)
    save_reward(out / "reward", reward.model, reward_config)
    answered_by = {h["update"]: h.get("preferences", 0.0) for h in result.history}
    curve = []
    for e in result.evals:
        done = [v for u, v in answered_by.items() if u < e["update"]]
        curve.append(
            {
                "env_steps": e["env_steps"],
                "mean_return": e["mean_return"],
                "preferences": max(done) if done else 0.0,
            }
        )
    res = PreferenceResult(
        seed=ppo_cfg.seed,
        run=result,
        preferences=reward.describe(),
        repaired_bytes=file.repaired,
        curve=curve,
    )
    write_atomic(out / "preferences.json", json.dumps({**settings, **res.to_dict()}, indent=1))
    return res
