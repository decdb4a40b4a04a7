"""DAgger and its variants end to end on CartPole at toy scale: they learn, every stored step
has its round and actor, a ``kill -9`` loses at most the episodes in flight, and a resumed run
reaches the same numbers as an uninterrupted one."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from fakes import kill_when_stalled, round_numbers, short_demo
from protege.algos import dagger, dart, engine, ensemble_dagger, hg_dagger, registry, thrifty
from protege.algos.bc import BCConfig
from protege.configs.interactive import DAggerConfig
from protege.data.episode import EXPERT, LEARNER
from protege.data.store import Store
from protege.errors import ConfigError
from protege.policies.thrifty import ThriftyLearner
from protege.rollout.gates import Decision, Gate, StepView
from protege.rollout.loop import count_interventions, rollout
from protege.rollout.observers import KeepEpisodes
from protege.tasks import make

CARTPOLE = make("cartpole")
SHORT = dataclasses.replace(CARTPOLE, horizon=100)
"""CartPole with episodes cut at 100 steps, for the tests of resuming and retraining, which
compare runs with each other rather than with the expert (a fifth of the env steps)."""
BC = BCConfig(steps=300, batch_size=64, progress=False)
SMALL = dict(hidden_sizes=(32, 32))


def config(**kw: object) -> DAggerConfig:
    base: dict = dict(
        rounds=2,
        episodes_per_round=2,
        initial_demos=1,
        n_envs=2,
        bc=BC,
        eval_episodes=8,
        eval_envs=8,
    )
    base.update(kw)
    return DAggerConfig(**base)


def test_dagger_improves_where_bc_from_few_demos_fails(tmp_path: Path) -> None:
    short_demo(CARTPOLE, tmp_path / "store", 60)
    res = dagger.run(
        CARTPOLE,
        tmp_path / "store",
        config(rounds=3),
        make_policy=engine.policy_factory(CARTPOLE, **SMALL),
    )
    bc_return = res.rows[0].mean_return
    assert res.rows[0].labels == 60  # round 0 is the given demonstration
    assert bc_return < 250
    assert max(r.mean_return for r in res.rows[1:]) >= max(400, 2 * bc_return)
    assert [r.labels for r in res.rows] == sorted(r.labels for r in res.rows)
    assert res.expert_return == 500.0
    assert "Labels to reach 95%" in res.to_markdown()


def check_store(path: Path, rounds: int, per_round: int, demos: int) -> list[dict]:
    store = Store.open(path)
    index = store.index
    data = store.transitions()
    assert sorted({e.round for e in index}) == list(range(rounds + 1))
    for r in range(rounds + 1):
        eps = [e for e in index if e.round == r]
        assert sorted(int(e.extras["episode"]) for e in eps) == list(
            range(demos if r == 0 else per_round)
        )
        assert len({e.seed for e in eps}) == len(eps)  # every episode its own seed
    assert set(np.unique(data.actor)) <= {EXPERT, LEARNER}
    step_round = np.repeat(data.rounds, data.episode_lengths)
    assert np.all(data.actor[step_round == 0] == EXPERT)
    return index


def test_every_stored_transition_has_its_round_and_actor(tmp_path: Path) -> None:
    res = dagger.run(
        CARTPOLE,
        tmp_path / "d",
        config(beta="linear:2"),
        make_policy=engine.policy_factory(CARTPOLE, **SMALL),
    )
    check_store(tmp_path / "d", 2, 2, 1)
    data = Store.open(tmp_path / "d").transitions()
    assert data.labeled.all()  # DAgger labels every visited state
    step_round = np.repeat(data.rounds, data.episode_lengths)
    frac_expert = [(data.actor[step_round == r] == EXPERT).mean() for r in (1, 2)]
    assert 0.2 < frac_expert[0] < 0.8 and frac_expert[1] == 0.0  # β = 0.5, then 0
    assert [r.beta for r in res.rows] == [None, 0.5, 0.0]
    last = res.rows[-1]
    assert last.labels == len(data) == last.expert_queries
    assert last.expert_steps + last.learner_steps == len(data)


def test_hg_dagger_labels_only_takeovers(tmp_path: Path) -> None:
    sc = hg_dagger.SupervisorConfig(disagreement_threshold=None, min_takeover=3)
    res = hg_dagger.run(
        CARTPOLE, tmp_path / "h", config(), sc, make_policy=engine.policy_factory(CARTPOLE, **SMALL)
    )
    index = check_store(tmp_path / "h", 2, 2, 1)
    data = Store.open(tmp_path / "h").transitions()
    np.testing.assert_array_equal(data.labeled, data.actor == EXPERT)
    last = res.rows[-1]
    assert last.labels == last.expert_steps == last.expert_queries < len(data)
    takeovers = sum(e.extras.get("takeover_unsafe", 0) for e in index)
    assert last.interventions == takeovers
    assert last.attention_seconds == 0.0  # a simulated supervisor spends no one's time


def test_the_simulated_supervisor_keeps_the_tasks_own_safe_set() -> None:
    """The risk score is the task's (``Task.risk``) unless ``SupervisorConfig(risk=...)`` gives
    one; a task without one (a plugin's) is refused by name unless ``use_risk`` is off."""
    from protege.tasks.classic import cartpole_risk, lunar_risk

    sc = hg_dagger.SupervisorConfig()
    assert hg_dagger.risk_for(CARTPOLE, sc) is cartpole_risk
    assert hg_dagger.risk_for(make("lunarlander-continuous"), sc) is lunar_risk

    def own(obs: np.ndarray, t: np.ndarray) -> np.ndarray:
        return np.zeros(len(obs))

    assert hg_dagger.risk_for(CARTPOLE, hg_dagger.SupervisorConfig(risk=own)) is own
    plain = dataclasses.replace(CARTPOLE, name="my-cartpole", risk=None)
    with pytest.raises(ConfigError, match="'my-cartpole' has no safe set"):
        hg_dagger.risk_for(plain, sc)
    assert hg_dagger.risk_for(plain, hg_dagger.SupervisorConfig(use_risk=False)) is None


def test_ensemble_thrifty_and_dart_run_and_count(tmp_path: Path) -> None:
    pf = engine.policy_factory(CARTPOLE, hidden_sizes=(16,))
    fast = dataclasses.replace(BC, steps=100)
    cfg = config(rounds=1, bc=fast, eval_episodes=4, eval_envs=4)
    ens = ensemble_dagger.run(
        CARTPOLE,
        tmp_path / "e",
        cfg,
        ensemble_dagger.EnsembleConfig(members=2, discrepancy_threshold=0.5),
        make_policy=pf,
    )
    row = ens.rows[-1]
    assert row.expert_queries == row.expert_steps + row.learner_steps  # τ needs every step
    assert row.labels == row.expert_steps
    thr = thrifty.run(
        CARTPOLE,
        tmp_path / "t",
        dataclasses.replace(cfg, n_envs=1),
        thrifty.ThriftyConfig(members=2, q_steps=50, alpha_h=0.05),
        make_policy=pf,
    )
    row = thr.rows[-1]
    assert row.labels == row.expert_steps == row.expert_queries
    assert {"novelty_threshold", "risk_threshold", "switch_back_risk"} <= set(row.extras)
    learner = ThriftyLearner.load(tmp_path / "t.run" / "learners" / "round_001")
    assert learner.critic is not None and len(learner.ensemble) == 2
    d = dart.run(
        CARTPOLE,
        tmp_path / "n",
        dataclasses.replace(cfg, rounds=2),
        dart.DARTConfig(),
        make_policy=pf,
    )
    data = Store.open(tmp_path / "n").transitions()
    assert data.labeled.all() and np.all(data.actor == EXPERT)
    assert (data.executed != data.actions).any()  # noisy execution, clean labels
    assert d.rows[-1].learner_steps == 0
    assert d.rows[-1].interventions == 0  # the expert drives throughout: no takeovers


def test_the_intervention_rule() -> None:
    runs = {
        (1, 1, 0, 0, 1, 0): 2,  # a takeover from the first step counts
        (0, 1, 1, 0, 1): 2,
        (0, 0, 0): 0,
        (1, 1, 1): 0,  # the expert drove throughout: nobody was taken over from
    }
    for steps, n in runs.items():
        assert count_interventions(np.array(steps, bool)) == n


class StartAndMiddle(Gate):
    """The expert drives steps 0-2 and 10-11 of every episode."""

    def begin_episode(self, env_index: int) -> None:
        pass

    def decide(self, step: StepView) -> Decision:
        expert = (step.t < 3) | ((step.t >= 10) & (step.t < 12))
        return Decision(expert_acts=expert, label=expert.copy())


def test_loop_and_rounds_count_interventions_alike(tmp_path: Path) -> None:
    """Two takeovers per episode, one of them at step 0: the loop, the stored episodes and
    the round rows all count two."""
    lane = make("lane")
    lane = dataclasses.replace(lane, horizon=20, env_kwargs={**lane.env_kwargs, "horizon": 20})
    pf = engine.policy_factory(lane, hidden_sizes=(16,))
    res = engine.run(lane, pf, tmp_path / "l", config(rounds=1), lambda ctx: StartAndMiddle())
    index = Store.open(tmp_path / "l").index
    assert [e.extras["interventions"] for e in index] == [0, 2, 2]
    assert [r.interventions for r in res.rows] == [0, 4]
    assert [r.attention_seconds for r in res.rows] == [0.0, 0.0]
    env = lane.make_vec_env(2)
    try:
        learner = registry.load_learner(tmp_path / "l.run" / "learners" / "round_001")
        r = rollout(
            env, 3, gate=StartAndMiddle(), seed=0, learner=learner, expert=lane.make_expert()
        )
    finally:
        env.close()
    assert r.interventions == 6


class Coin(Gate):
    """The expert drives with probability 1/2 at each step, and whole episodes now and then."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)
        self.all_expert: dict[int, bool] = {}

    def begin_episode(self, env_index: int) -> None:
        self.all_expert[env_index] = bool(self.rng.random() < 0.2)

    def decide(self, step: StepView) -> Decision:
        n = len(step.obs)
        whole = np.array([self.all_expert.get(i, False) for i in range(n)])
        expert = whole | (self.rng.random(n) < 0.5)
        return Decision(expert_acts=expert, label=expert.copy())


def test_the_loop_counts_by_the_rule() -> None:
    """The loop counts online what :func:`count_interventions` counts per stored episode."""
    lane = make("lane")
    lane = dataclasses.replace(lane, horizon=12, env_kwargs={**lane.env_kwargs, "horizon": 12})
    env = lane.make_vec_env(3)
    try:
        learner = engine.policy_factory(lane, hidden_sizes=(8,))()
        r = rollout(
            env,
            40,
            gate=Coin(),
            seed=1,
            learner=learner,
            expert=lane.make_expert(),
            observers=[KeepEpisodes()],
        )
    finally:
        env.close()
    per_episode = [count_interventions(ep.actors == EXPERT) for ep in r.episodes]
    assert r.interventions == sum(per_episode) > 0
    assert 0 in per_episode and any((ep.actors == EXPERT).all() for ep in r.episodes)


def test_config_and_store_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        DAggerConfig(retrain="sometimes")
    with pytest.raises(ConfigError):
        DAggerConfig(beta="cosine")
    dagger.run(
        SHORT,
        tmp_path / "s",
        config(rounds=1, episodes_per_round=1),
        make_policy=engine.policy_factory(SHORT, **SMALL),
    )
    with pytest.raises(ConfigError, match="unknown method"):
        registry.run_method("gail", SHORT, tmp_path / "x")
    with pytest.raises(ConfigError, match="SupervisorConfig"):
        registry.run_method("hg-dagger", SHORT, tmp_path / "x", method_config=dart.DARTConfig())
    assert registry.entry("thrifty").config_class() is thrifty.ThriftyConfig
    with pytest.raises(ConfigError, match="resume=True"):
        dagger.run(
            SHORT, tmp_path / "s", config(), make_policy=engine.policy_factory(SHORT, **SMALL)
        )
    # Resuming must collect and train as before: changed settings are refused, by name...
    with pytest.raises(ConfigError, match=r"bc\.steps: 300 → 301; episodes_per_round: 1 → 2"):
        changed = config(rounds=1, episodes_per_round=2)
        changed.bc = dataclasses.replace(BC, steps=BC.steps + 1)
        dagger.run(
            SHORT,
            tmp_path / "s",
            changed,
            make_policy=engine.policy_factory(SHORT, **SMALL),
            resume=True,
        )
    # The method and its own settings are part of what must not change.
    dart.run(SHORT, tmp_path / "d", config(rounds=1, episodes_per_round=1), dart.DARTConfig())
    with pytest.raises(ConfigError, match=r"method_settings\.noise_scale: 1\.0 → 2\.0"):
        dart.run(
            SHORT,
            tmp_path / "d",
            config(rounds=1, episodes_per_round=1),
            dart.DARTConfig(noise_scale=2.0),
            resume=True,
        )
    with pytest.raises(ConfigError, match="method: 'dart' → 'dagger'"):
        dagger.run(
            SHORT,
            tmp_path / "d",
            config(rounds=1, episodes_per_round=1),
            make_policy=engine.policy_factory(SHORT, **SMALL),
            resume=True,
        )
    # ...more rounds are not; and an expert.json cut off by a crash is measured again.
    (tmp_path / "s.run" / "expert.json").write_text('{"key": {"epis')
    more = dagger.run(
        SHORT,
        tmp_path / "s",
        config(rounds=2, episodes_per_round=1),
        make_policy=engine.policy_factory(SHORT, **SMALL),
        resume=True,
    )
    assert [r.round for r in more.rows] == [0, 1, 2]
    assert json.loads((tmp_path / "s.run" / "expert.json").read_text())["mean_return"] > 0


# --------------------------------------------------------------------- kill and resume
CHILD = textwrap.dedent(
    """
    import dataclasses, json, os, sys, time
    import torch
    torch.set_num_threads(1)
    from protege.algos import dagger, engine
    from protege.algos.bc import BCConfig
    from protege.configs.interactive import DAggerConfig
    from protege.rollout.gates import Gate
    from protege.tasks import make

    store, marker, cfg = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    task = dataclasses.replace(make("cartpole"), horizon=int(sys.argv[4]))
    cfg["bc"] = BCConfig(**cfg["bc"])

    class Stall(Gate):
        # After the 3rd episode of round 2 is stored, tell the parent and wait to be killed.
        def __init__(self, inner):
            self.inner = inner
            self.beta = inner.beta
        def seed_episode(self, i, seed):
            self.inner.seed_episode(i, seed)
        def episode_extras(self, i):
            return self.inner.episode_extras(i)
        def thresholds(self):
            return self.inner.thresholds()
        def begin_episode(self, i):
            self.inner.begin_episode(i)
            lines = open(os.path.join(store, "episodes.jsonl")).read().splitlines()
            if sum(json.loads(x)["round"] == 2 for x in lines) >= 3:
                open(marker, "w").close()
                time.sleep(600)
        def decide(self, step):
            return self.inner.decide(step)

    engine.run(task, engine.policy_factory(task, hidden_sizes=(32, 32)), store,
               DAggerConfig(**cfg), lambda ctx: Stall(dagger.dagger_gate(ctx)))
    """
)


def test_kill_9_mid_round_then_resume_reaches_the_same_numbers(tmp_path: Path) -> None:
    cfg = config(rounds=3, episodes_per_round=4, beta="exp:0.5")
    child_cfg = dict(dataclasses.asdict(cfg), bc=dataclasses.asdict(cfg.bc))
    killed, marker = tmp_path / "killed", tmp_path / "stalled"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(killed), str(marker), json.dumps(child_cfg), "100"],
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    try:
        # The uninterrupted reference run, meanwhile, in this process.
        ref = dagger.run(
            SHORT, tmp_path / "ref", cfg, make_policy=engine.policy_factory(SHORT, **SMALL)
        )
    finally:
        kill_when_stalled(proc, marker)

    index = Store.open(killed).index  # the store opens after the kill
    in_round_2 = [e for e in index if e.round == 2]
    assert 3 <= len(in_round_2) < 4  # lost at most the episode in flight
    assert not any(e.round == 3 for e in index)

    res = dagger.run(
        SHORT, killed, cfg, make_policy=engine.policy_factory(SHORT, **SMALL), resume=True
    )
    check_store(killed, 3, 4, 1)

    assert round_numbers(res) == round_numbers(ref)
    a, b = Store.open(killed).transitions(), Store.open(tmp_path / "ref").transitions()
    assert len(a) == len(b) and a.n_labels == b.n_labels

    again = dagger.run(
        SHORT, killed, cfg, make_policy=engine.policy_factory(SHORT, **SMALL), resume=True
    )  # a finished run resumes to itself without new work
    assert round_numbers(again) == round_numbers(ref)
    assert len(Store.open(killed)) == len(Store.open(tmp_path / "ref"))


# ------------------------------------------------------------------------ retraining
def _weights(policy) -> list[torch.Tensor]:
    return [p.detach().clone() for p in policy.parameters()]


def test_warm_start_continues_from_the_previous_learner(tmp_path: Path) -> None:
    """retrain="warm" trains the previous round's policy further (keeping its input scaling);
    "scratch" starts a fresh one each round."""
    from protege.policies import Policy

    runs = {}
    for how in ("warm", "scratch"):
        store = tmp_path / how / "store"
        dagger.run(
            SHORT,
            store,
            config(retrain=how),
            make_policy=engine.policy_factory(SHORT, **SMALL),
        )
        learners = Path(f"{store}.run") / "learners"
        runs[how] = [Policy.load(learners / f"round_{r:03d}") for r in range(3)]
    warm, scratch = runs["warm"], runs["scratch"]
    for a, b in zip(_weights(warm[0]), _weights(scratch[0]), strict=True):
        torch.testing.assert_close(a, b)  # round 0 is plain BC either way
    for r in (1, 2):
        torch.testing.assert_close(warm[r].obs_mean, warm[0].obs_mean)  # scaling kept
        assert not torch.equal(scratch[r].obs_mean, scratch[0].obs_mean)  # refitted
        assert any(
            not torch.equal(a, b)
            for a, b in zip(_weights(warm[r]), _weights(scratch[r]), strict=True)
        )

    data = Store.open(tmp_path / "warm" / "store").transitions()
    prev = warm[1]
    before = _weights(prev)
    frozen = engine.PolicyTrainer(
        engine.policy_factory(SHORT, **SMALL), dataclasses.replace(BC, lr=0.0, steps=5), "warm"
    )
    same = frozen.fit(data, 2, seed=123, previous=prev)
    assert same is not prev  # a copy, trained; with lr 0 it is the previous policy exactly
    for a, b in zip(_weights(same), before, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    moved = engine.PolicyTrainer(engine.policy_factory(SHORT, **SMALL), BC, "warm").fit(
        data, 2, seed=123, previous=prev
    )
    assert any(not torch.equal(a, b) for a, b in zip(_weights(moved), before, strict=True))
    for a, b in zip(_weights(prev), before, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # the previous learner is untouched
    fresh = engine.PolicyTrainer(
        engine.policy_factory(SHORT, **SMALL), dataclasses.replace(BC, lr=0.0), "scratch"
    ).fit(data, 2, seed=123, previous=prev)
    assert any(not torch.equal(a, b) for a, b in zip(_weights(fresh), before, strict=True))


def test_an_expert_whose_spaces_do_not_fit_is_refused(tmp_path: Path) -> None:
    from protege.experts.adapters import PolicyExpert
    from protege.policies import Policy, PolicyConfig

    lunar = make("lunarlander")
    wrong = PolicyExpert(Policy(PolicyConfig.for_spaces(*lunar.spaces, hidden_sizes=(8,))))
    with pytest.raises(ConfigError, match="does not match the task"):
        dagger.run(
            CARTPOLE,
            tmp_path / "s",
            config(),
            make_policy=engine.policy_factory(CARTPOLE, **SMALL),
            expert=wrong,
        )
    assert not (tmp_path / "s").exists()
