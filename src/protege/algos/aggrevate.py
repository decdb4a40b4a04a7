"""AggreVaTe (Ross & Bagnell 2014, "Reinforcement and Imitation Learning via Interactive
No-Regret Learning"): imitation of the expert's cost-to-go.

Round 0 is expert demonstrations, as for every method. Each later round r collects, for
``n = episodes_per_round`` samples:

1. **Roll-ins** (episodes 0..n−1): the learner drives a whole episode, β-mixed with the
   expert per step as DAgger does (``DAggerConfig.beta``; the expert's steps are labels and
   counted). A time t is then drawn uniformly from the episode's steps (seeded by
   (seed, r, sample)).
2. **Completions** (episodes n + k·A + j): the state s_t of roll-in k is restored by resetting
   the env with the roll-in's seed and replaying its first t executed actions inside the
   env (:class:`ReplayEnv`; those replayed steps are not loop steps and ask nobody), and the
   replayed observation must equal the stored one **exactly**, else a ConfigError says the
   task's env is not deterministic given its seed. At s_t action a_j is executed and the
   expert drives to the end of the episode (or for ``completion_horizon`` steps): the
   completion's return is the cost-to-go estimate Q̂*(s_t, a_j) (a reward, so higher is
   better). Discrete actions: all A actions are tried. Continuous: A = ``explore_actions``:
   the expert's own action, then Gaussian perturbations of it (``explore_std`` × the half
   range). The expert is asked at every completion step, s_t included (the perturbations
   need its action there; for a tried discrete action its answer at s_t is stored as a label
   but not needed, which costs one query per completion): every one is counted.

The learner is trained by cost-sensitive classification through the **argmin (here argmax
return) reduction**: each sampled state is labelled with its tried action of highest
Q̂* (ties go to the expert's own action, then to the first tried), these examples are
aggregated over rounds with round 0's demonstrations, and one policy is trained on them by
BC (``config.bc``), from scratch or warm (``config.retrain``). The learner is therefore an
ordinary :class:`~protege.policies.policy.Policy` (or whatever ``trainer`` makes).

Example:
    >>> result = aggrevate.run(task, "runs/agg/store", DAggerConfig(rounds=4), AggreVaTeConfig())
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from protege.algos import engine, rounds
from protege.algos.engine import MethodSpec, PolicyTrainer, RoundContext, Trainer
from protege.algos.results import DAggerResult
from protege.configs.interactive import DAggerConfig
from protege.configs.methods import AggreVaTeConfig
from protege.data.store import Transitions
from protege.errors import ConfigError, DataError
from protege.policies.policy import Policy
from protege.rollout.gates import Decision, Gate, StepView, _PerEpisodeRandom
from protege.tasks.base import Task

BRANCH = "aggrevate_branch"
"""The info key a completion's reset reports: the tried action's number j (−1: a roll-in)."""
REPLAYED = "aggrevate_replayed_steps"
"""The per-episode extra (summed into each round's row): env steps replayed to restore s_t."""
_T_STREAM = 11


@dataclass(frozen=True)
class Replay:
    """How to restore a sampled state: reset with ``seed``, execute ``prefix``; the result must
    be ``obs`` (the roll-in's stored observation at step t)."""

    seed: int
    prefix: np.ndarray
    obs: np.ndarray
    branch: int


@dataclass
class Layout:
    """Where a round's episodes sit: ``n`` roll-ins, then A completions per roll-in."""

    n: int
    actions: int
    replays: dict[tuple[int, int], Replay] = field(default_factory=dict)

    @property
    def per_round(self) -> int:
        return self.n * (1 + self.actions)

    def sample_of(self, index: int) -> tuple[int, int] | None:
        """(sample k, action number j) of completion episode ``index``; None for a roll-in."""
        if index < self.n:
            return None
        k, j = divmod(index - self.n, self.actions)
        return k, j


class ReplayEnv(gym.Wrapper):
    """A completion's env: its first reset restores s_t by replaying a roll-in's prefix (and
    checks that the env reached the stored observation); it truncates after
    ``horizon`` steps from there when given. Roll-ins reset normally."""

    def __init__(self, env: gym.Env, replay: Replay | None, horizon: int | None, task: str):
        super().__init__(env)
        self.replay, self.horizon, self.task = replay, horizon, task
        self._steps = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        self._steps = 0
        replay, self.replay = self.replay, None  # only the first reset restores
        if replay is None:
            obs, info = self.env.reset(seed=seed, options=options)
            return obs, {**info, BRANCH: -1, REPLAYED: 0}
        obs, info = self.env.reset(seed=replay.seed, options=options)
        for t, action in enumerate(replay.prefix):
            obs, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:
                raise self._diverged(replay, t + 1, "the episode ended during the replay")
        if not np.array_equal(np.asarray(obs), replay.obs):
            diff = np.max(np.abs(np.asarray(obs, np.float64) - replay.obs.astype(np.float64)))
            raise self._diverged(replay, len(replay.prefix), f"max |Δobs| = {diff:.3g}")
        return obs, {**info, BRANCH: replay.branch, REPLAYED: len(replay.prefix)}

    def _diverged(self, replay: Replay, t: int, what: str) -> ConfigError:
        return ConfigError(
            f"AggreVaTe on task {self.task!r}: replaying the first {len(replay.prefix)} actions "
            f"of the roll-in with env seed {replay.seed} did not reach its stored state at step "
            f"{t} ({what}); the env is not deterministic given its seed, so states cannot be "
            "restored by replay"
        )

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._steps += 1
        if self.horizon is not None and self._steps >= self.horizon + 1:
            truncated = True  # the tried action, then `horizon` expert steps
        return obs, reward, terminated, truncated, info


class AggreVaTeGate(_PerEpisodeRandom):
    """Roll-ins: β-mixed (the expert's steps labelled). Completions: the tried action at s_t,
    then the expert drives and labels to the end. The branch of each sub-env's episode comes
    from its reset info (:data:`BRANCH`)."""

    def __init__(
        self,
        beta: float,
        space: gym.Space,
        explore_std: float,
        seed: int = 0,
    ):
        super().__init__(seed)
        self.beta = float(beta)
        self.space = space
        self.explore_std = float(explore_std)
        self.branch: dict[int, int] = {}
        self.replayed: dict[int, int] = {}

    def decide(self, step: StepView) -> Decision:
        n = len(step.obs)
        starts = np.asarray(step.t) == 0
        info, replayed = step.infos.get(BRANCH), step.infos.get(REPLAYED)
        for i in np.flatnonzero(starts).tolist():
            self.branch[i] = int(info[i]) if info is not None else -1
            self.replayed[i] = int(replayed[i]) if replayed is not None else 0
        branch = np.array([self.branch.get(i, -1) for i in range(n)])
        rollin = branch < 0
        beta = float(self.beta or 0.0)
        coin = np.array([self.rng(i).random() < beta if rollin[i] else True for i in range(n)])
        expert_acts = np.where(rollin, coin, True)
        tried = ~rollin & starts
        executed = None
        if tried.any():
            # Every row the expert drives: the loop would ask them anyway (no extra query).
            a_star = step.expert(expert_acts)
            executed = np.array(a_star, copy=True)
            for i in np.flatnonzero(tried).tolist():
                executed[i] = self._tried_action(i, int(branch[i]), a_star[i])
        return Decision(expert_acts=expert_acts, label=expert_acts.copy(), executed=executed)

    def episode_extras(self, env_index: int) -> dict[str, float]:
        return {REPLAYED: float(self.replayed.get(env_index, 0))}

    def _tried_action(self, i: int, j: int, a_star: np.ndarray) -> Any:
        if isinstance(self.space, gym.spaces.Discrete):
            return j
        assert isinstance(self.space, gym.spaces.Box)
        if j == 0:
            return a_star
        half = (self.space.high - self.space.low) / 2.0
        z = self.rng(i).standard_normal(np.shape(a_star))
        return np.clip(a_star + self.explore_std * half * z, self.space.low, self.space.high)


def tried_actions(space: gym.Space, settings: AggreVaTeConfig) -> int:
    """A: every action of a Discrete space, else ``explore_actions``."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.Box):
        return settings.explore_actions
    raise ConfigError(f"AggreVaTe supports Discrete and Box action spaces, not {space}")


def sampled_time(seed: int, round: int, sample: int, length: int) -> int:
    """The roll-in step t at which sample ``sample`` of ``round`` is taken (uniform)."""
    rng = np.random.default_rng(rounds.derive_seed(seed, _T_STREAM, round, sample))
    return int(rng.integers(length))


def plan_completions(layout: Layout, seed: int, round: int, data: Transitions | None) -> None:
    """Fill ``layout.replays`` for round ``round``'s completions from its stored roll-ins
    (``data``: the round's episodes ordered by index, the n roll-ins first)."""
    if data is None or len(data.episode_lengths) < layout.n:
        return
    for k in range(layout.n):
        start, length = int(data.episode_starts[k]), int(data.episode_lengths[k])
        t = sampled_time(seed, round, k, length)
        env_seed = rounds.episode_seed(seed, round, k)
        prefix = np.asarray(data.executed[start : start + t])
        obs_t = np.asarray(data.obs[start + t])
        for j in range(layout.actions):
            index = layout.n + k * layout.actions + j
            layout.replays[(round, index)] = Replay(env_seed, prefix, obs_t, j)


def cost_sensitive_examples(data: Transitions, layout: Layout) -> Transitions:
    """Round 0's episodes as they are, plus one labelled step per sampled state of every later
    round: (s_t, the tried action of highest completion return); ties go to the expert's
    action at s_t, then to the first tried."""
    keep = data.select_episodes(data.rounds == 0)
    parts: list[Transitions] = [keep] if len(keep) else []
    for r in sorted(set(data.rounds.tolist()) - {0}):
        own = data.select_episodes(data.rounds == r)
        if len(own.episode_lengths) != layout.per_round:
            raise DataError(
                f"AggreVaTe: round {r} holds {len(own.episode_lengths)} episodes, not the "
                f"{layout.per_round} of {layout.n} roll-ins and their completions"
            )
        obs, actions = [], []
        for k in range(layout.n):
            eps = [layout.n + k * layout.actions + j for j in range(layout.actions)]
            starts = own.episode_starts[eps]
            returns = np.array(
                [
                    own.rewards[s : s + n].sum(dtype=np.float64)
                    for s, n in zip(starts, own.episode_lengths[eps], strict=True)
                ]
            )
            tried = own.executed[starts]
            expert = own.actions[starts[0]]
            best = np.flatnonzero(returns == returns.max())
            same = [b for b in best if np.array_equal(tried[b], expert)]
            obs.append(own.obs[starts[0]])
            actions.append(tried[same[0] if same else best[0]])
        parts.append(_one_episode(np.stack(obs), np.stack(actions), r))
    if not parts:
        raise DataError("AggreVaTe: nothing to train on")
    return _concat(parts)


def _one_episode(obs: np.ndarray, actions: np.ndarray, round: int) -> Transitions:
    return Transitions.labeled_steps(obs, actions, [len(obs)], round)


def _concat(parts: list[Transitions]) -> Transitions:
    lengths = np.concatenate([p.episode_lengths for p in parts])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    cat: dict[str, Any] = {
        f.name: None
        if any(getattr(p, f.name) is None for p in parts)  # optional fields not read
        else np.concatenate([np.asarray(getattr(p, f.name)) for p in parts])
        for f in dataclasses.fields(Transitions)
        if f.name not in ("episode_starts", "episode_lengths")
    }
    return Transitions(**cat, episode_starts=starts, episode_lengths=lengths)


@dataclass
class AggreVaTeTrainer:
    """Trains ``base`` (BC of one policy by default) on :func:`cost_sensitive_examples`."""

    base: Trainer
    layout: Layout

    def fit(self, data: Transitions, round: int, seed: int, previous: Any | None) -> Any:
        return self.base.fit(cost_sensitive_examples(data, self.layout), round, seed, previous)

    def save(self, learner: Any, path: Path) -> None:
        self.base.save(learner, path)

    def load(self, path: Path) -> Any:
        return self.base.load(path)


def run(
    task: Task,
    store_path: str | os.PathLike[str],
    config: DAggerConfig | None = None,
    method_config: AggreVaTeConfig | None = None,
    *,
    make_policy: Callable[[], Policy] | None = None,
    **kwargs: Any,
) -> DAggerResult:
    """AggreVaTe through :func:`protege.algos.engine.run`: ``config.episodes_per_round`` is the
    roll-ins (sampled states) per round, which must be a multiple of ``config.n_envs`` (the
    completions start in a batch after their roll-ins are stored). ``trainer`` (keyword)
    trains the learner on the cost-sensitive examples (default: BC of one policy)."""
    config = config or DAggerConfig()
    ac = method_config or AggreVaTeConfig()
    if config.episodes_per_round % config.n_envs:
        raise ConfigError(
            f"AggreVaTe: episodes_per_round ({config.episodes_per_round} roll-ins) must be a "
            f"multiple of n_envs ({config.n_envs}), so that completions start after their "
            "roll-ins are stored"
        )
    _, space = task.spaces
    layout = Layout(config.episodes_per_round, tried_actions(space, ac))
    base = kwargs.pop("trainer", None) or PolicyTrainer(
        make_policy or engine.policy_factory(task), config.bc, config.retrain
    )

    def gate(ctx: RoundContext) -> Gate:
        seed = rounds.round_gate_seed(ctx.config.seed, ctx.round)
        return AggreVaTeGate(ctx.beta, space, ac.explore_std, seed)

    def before_batch(gate: Gate, ctx: RoundContext, data: Transitions | None) -> None:
        plan_completions(layout, ctx.config.seed, ctx.round, data)

    def episode_env(env: gym.Env, r: int, index: int) -> gym.Env:
        if r == 0 or layout.sample_of(index) is None:
            return ReplayEnv(env, None, None, task.name)
        replay = layout.replays.get((r, index))
        if replay is None:
            raise DataError(f"AggreVaTe: round {r}'s completion {index} has no stored roll-in")
        return ReplayEnv(env, replay, ac.completion_horizon, task.name)

    kwargs.setdefault("method", "aggrevate")
    kwargs.setdefault("settings", ac)
    return engine.run(
        task,
        None,
        store_path,
        config,
        gate,
        trainer=AggreVaTeTrainer(base, layout),
        before_batch=before_batch,
        round_episodes=lambda r: layout.per_round,
        episode_env=episode_env,
        **kwargs,
    )


SPEC = MethodSpec("aggrevate", "AggreVaTe", AggreVaTeConfig, run, Policy.load)
