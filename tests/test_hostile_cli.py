"""Hostile command lines (issue 12, items 4 and 6): every number out of range, a diverging
run, a bad resume, a failing plugin, an expert acting outside its action space. Each ends in
one line naming what is wrong, never a traceback, and nothing wrong is written."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

import protege
import protege.tasks
from protege.algos import bc
from protege.cli import main
from protege.cli.exit_codes import BAD_INPUT
from protege.configs.bc import BCConfig
from protege.configs.policy import PolicyConfig
from protege.data.store import Store
from protege.errors import ConfigError, TrainingError
from protege.experts import CallableExpert
from protege.policies import Policy

QUIET = ["--no-progress"]
TINY_DAGGER = [
    "--task",
    "cartpole",
    "--rounds",
    "1",
    "--episodes-per-round",
    "1",
    "--initial-demos",
    "1",
    "--eval-episodes",
    "1",
    "--eval-envs",
    "1",
    "--steps",
    "5",
    "--n-envs",
    "1",
    "--hidden-sizes",
    "8",
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two cartpole demonstrations."""
    d = tmp_path_factory.mktemp("hostile") / "demos"
    argv = ["collect", "--task", "cartpole", "--episodes", "2", "--n-envs", "2", "--out", str(d)]
    assert main([*argv, *QUIET]) == 0
    return d


def run_cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """(exit code, stderr) of ``protege ARGV``, in this process."""
    capsys.readouterr()
    code = main(argv)
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, *names: str) -> str:
    """A nonzero exit whose last stderr line is an error naming every one of ``names``."""
    assert code != 0
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert "error:" in last
    for name in names:
        assert name in last, f"{name!r} not in {last!r}"
    return last


# --------------------------------------------------------------- item 4: every CLI number
TRAIN_ATTACKS = [
    ("--steps", "-5"),
    ("--steps", "0"),
    ("--steps", str(10**12)),
    ("--epochs", "nan"),
    ("--epochs", "0"),
    ("--lr", "nan"),
    ("--lr", "inf"),
    ("--lr", "-1e-3"),
    ("--lr", "0"),
    ("--batch-size", "0"),
    ("--batch-size", str(10**9)),
    ("--eval-every", "0"),
    ("--patience", "0"),
    ("--weight-decay", "-1"),
    ("--grad-clip", "nan"),
    ("--val-fraction", "1"),
    ("--seed", "-1"),
    ("--threads", "0"),
    ("--hidden-sizes", "0"),
    ("--hidden-sizes", str(2**16 + 1)),
    ("--chunk-size", "0"),
    ("--chunk-size", str(10**9)),
    ("--n-obs-steps", "0"),
    ("--n-obs-steps", str(10**9)),
    ("--random-shift", "-1"),
    ("--temporal-ensemble-coeff", "nan"),
]


@pytest.mark.parametrize(("flag", "value"), TRAIN_ATTACKS, ids=lambda v: str(v))
def test_train_refuses_out_of_range_numbers(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture, flag: str, value: str
) -> None:
    out = tmp_path / "policy"
    argv = ["train", "--data", str(store), "--out", str(out), *QUIET, flag, value]
    assert_one_line_error(*run_cli(argv, capsys), flag)
    assert not out.exists()  # refused before any work


ROLLOUT_ATTACKS = [
    ("--episodes", "0"),
    ("--episodes", "-3"),
    ("--episodes", str(10**8)),
    ("--n-envs", "0"),
    ("--n-envs", str(10**9)),
    ("--seed", "-1"),
    ("--seed", "abc"),
]


@pytest.mark.parametrize("command", ["collect", "eval"])
@pytest.mark.parametrize(("flag", "value"), ROLLOUT_ATTACKS, ids=lambda v: str(v))
def test_rollout_commands_refuse_out_of_range_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture, command: str, flag: str, value: str
) -> None:
    target = ["--out", str(tmp_path / "s")] if command == "collect" else ["--expert"]
    argv = [command, "--task", "cartpole", *target, *QUIET, flag, value]
    code, err = run_cli(argv, capsys)
    assert code == 2  # argparse's flag error
    assert_one_line_error(code, err, f"argument {flag}")
    assert not (tmp_path / "s").exists()


DAGGER_ATTACKS = [
    ([], "--rounds", "-1"),
    ([], "--episodes-per-round", "0"),
    ([], "--initial-demos", "-1"),
    ([], "--n-envs", "0"),
    ([], "--eval-episodes", "0"),
    ([], "--eval-seed", "-5"),
    ([], "--target-fraction", "nan"),
    ([], "--steps", "-5"),
    ([], "--lr", "nan"),
    ([], "--hidden-sizes", "0"),
    ([], "--seed", "-1"),
    (["--method", "thrifty"], "--alpha-h", "nan"),
    (["--method", "thrifty"], "--members", "0"),
    (["--method", "thrifty"], "--q-lr", "nan"),
    (["--method", "thrifty"], "--q-batch", "0"),
    (["--method", "thrifty"], "--q-hidden", "0"),
    (["--method", "thrifty"], "--polyak", "2"),
    (["--method", "ensemble"], "--variance-threshold", "-1"),
    (["--method", "hg-dagger"], "--window", "0"),
    (["--method", "dart"], "--noise-scale", "inf"),
]


@pytest.mark.parametrize(("method", "flag", "value"), DAGGER_ATTACKS, ids=lambda v: str(v))
def test_dagger_refuses_out_of_range_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture, method: list[str], flag: str, value: str
) -> None:
    out = tmp_path / "run"
    argv = ["dagger", "--task", "cartpole", "--out", str(out), *QUIET, *method, flag, value]
    assert_one_line_error(*run_cli(argv, capsys), flag)
    assert not (out / "store").exists()  # nothing collected


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["demo", "lunarlander", "--episodes", "0"], "--episodes"),
        (["demo", "lunarlander", "--hidden-sizes", str(10**9)], "--hidden-sizes"),
        (["demo", "obstacle", "--lr", "nan"], "--lr"),
        (["demo", "carracing", "--channels", "0"], "--channels"),
        (["experiment", "horizon", "--n-demos", "0"], "--n-demos"),
        (["experiment", "horizon", "--seed", "-1"], "--seed"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else v,
)
def test_demos_and_experiments_refuse_out_of_range_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str], flag: str
) -> None:
    out = tmp_path / "report"
    assert_one_line_error(*run_cli([*argv, "--out", str(out)], capsys), flag)
    assert not out.exists()


def test_a_checkpoint_with_absurd_sizes_is_refused_before_allocation() -> None:
    config = PolicyConfig(obs_shape=(4,), act_dim=1, discrete=True, n_actions=2).to_dict()
    for key, value in (("hidden_sizes", [10**9]), ("chunk_size", 10**9)):
        with pytest.raises(protege.errors.CheckpointError, match=key):
            PolicyConfig.from_dict({**config, key: value})


# ------------------------------------------------------- item 4: a loss that becomes nan
def test_a_diverging_run_stops_naming_the_step_and_keeps_finite_weights(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "policy"
    argv = ["train", "--data", str(store), "--out", str(out), *QUIET]
    argv += ["--steps", "50", "--eval-every", "10", "--lr", "1e30", "--lr-schedule", "constant"]
    code, err = run_cli(argv, capsys)
    assert code == BAD_INPUT
    last = assert_one_line_error(code, err, "diverged", "at step", str(out))
    assert "nan" in last or "inf" in last
    weights = load_file(str(out / "model.safetensors"))
    assert weights and all(np.isfinite(w).all() for w in weights.values())
    meta = json.loads((out / "config.json").read_text())
    assert meta["diverged_at_step"] >= 1
    Policy.load(out)  # a loadable policy


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast", "autograd"])
def test_fit_raises_training_error_and_restores_the_last_finite_weights(
    store: Path, fast_path: bool
) -> None:
    data = Store.open(store)
    policy = Policy(PolicyConfig.for_spaces(data.observation_space, data.action_space), seed=0)
    good = BCConfig(steps=20, eval_every=10, val_fraction=0.0, progress=False)
    bc.fit(policy, data, good)
    trained = {k: v.clone() for k, v in policy.state_dict().items()}
    bad = BCConfig(
        steps=200, eval_every=1000, lr=1e30, lr_schedule="constant", progress=False,
        val_fraction=0.0, fast_path=fast_path, fit_normalization=False,
    )  # fmt: skip
    with pytest.raises(TrainingError, match=r"at step \d+; kept the weights of step 0") as info:
        bc.fit(policy, data, bad)
    assert info.value.kept_step == 0 and info.value.step >= 1
    for k, v in policy.state_dict().items():
        assert v.isfinite().all() and (v == trained[k]).all(), k  # the weights before the run


def test_config_dataclasses_name_the_field_and_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"BCConfig\.lr \(--lr\) must be a finite number"):
        BCConfig(lr=math.nan)
    with pytest.raises(ConfigError, match=r"BCConfig\.steps \(--steps\) .* got 0"):
        BCConfig(steps=0)
    BCConfig(steps=np.int64(5), seed=np.int64(3))  # numpy integers are integers


# ------------------------------------------------------------------ item 6: --resume
def test_resume_without_a_run_is_refused_naming_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "nothing"
    argv = ["dagger", *TINY_DAGGER, "--out", str(out), "--resume", *QUIET]
    assert_one_line_error(*run_cli(argv, capsys), str(out / "store"), "no store to resume")
    assert not (out / "store").exists()


def test_resume_of_another_tasks_store_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    cartpole = protege.tasks.make("cartpole")
    Store.create(out / "store", *cartpole.spaces, task="not-cartpole").close()
    argv = ["dagger", *TINY_DAGGER, "--out", str(out), "--resume", *QUIET]
    assert_one_line_error(*run_cli(argv, capsys), str(out / "store"), "'not-cartpole'")


def test_resume_of_a_run_whose_config_is_gone_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    argv = ["dagger", *TINY_DAGGER, "--out", str(out), *QUIET]
    assert run_cli(argv, capsys)[0] == 0
    before = (out / "store" / "episodes.jsonl").read_bytes()
    (out / "config.json").unlink()
    code, err = run_cli([*argv, "--resume"], capsys)
    assert_one_line_error(code, err, str(out / "config.json"), "missing")
    assert (out / "store" / "episodes.jsonl").read_bytes() == before  # nothing appended
    # A store moved under another run folder: that folder's config is not this run's.
    other = tmp_path / "other"
    shutil.copytree(out, other)
    (other / "config.json").write_text(json.dumps({"method": "thrifty"}))
    code, err = run_cli(["dagger", *TINY_DAGGER, "--out", str(other), "--resume", *QUIET], capsys)
    assert_one_line_error(code, err, str(other / "config.json"), "differ")


# ------------------------------------------------------------------ item 6: plugins
@pytest.mark.usefixtures("fresh_plugins")
@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("import sys\nsys.exit(3)\n", "called sys.exit(3)"),
        ("import sys\nsys.exit()\n", "called sys.exit(None)"),
        ("raise RuntimeError('boom')\n", "RuntimeError: boom"),
        ("raise KeyError('k')\n", "KeyError"),
    ],
    ids=["exit-3", "exit", "raise", "keyerror"],
)
def test_a_failing_plugin_is_reported_naming_its_file(
    tmp_path: Path, capsys: pytest.CaptureFixture, source: str, says: str
) -> None:
    plugin = tmp_path / "my_bad_plugin.py"
    plugin.write_text(source)
    code, err = run_cli(["--plugin", str(plugin), "info", "--tasks"], capsys)
    assert code == BAD_INPUT
    assert_one_line_error(code, err, f"plugin {plugin}", says)


# ------------------------------------------------- item 6: experts outside their space
@pytest.mark.parametrize(
    ("task", "action", "shown"),
    [
        ("cartpole", lambda obs: np.full(len(obs), 7), "7"),
        ("cartpole", lambda obs: np.full(len(obs), 0.5), "0.5"),
        ("cartpole", lambda obs: np.full(len(obs), -1), "-1"),
        ("pendulum", lambda obs: np.full((len(obs), 1), 50.0, np.float32), "50"),
        ("pendulum", lambda obs: np.full((len(obs), 1), np.nan, np.float32), "nan"),
        ("pendulum", lambda obs: np.zeros((len(obs), 3), np.float32), "shape"),
    ],
    ids=["discrete-7", "discrete-half", "discrete-neg", "box-50", "box-nan", "box-shape"],
)
def test_an_expert_acting_outside_the_space_is_refused_before_anything_is_stored(
    tmp_path: Path, task: str, action: object, shown: str
) -> None:
    t = protege.tasks.make(task)
    expert = CallableExpert(action)  # type: ignore[arg-type]
    expert.name = "my-expert"  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="my-expert") as info:
        protege.collect(t, tmp_path / "s", episodes=2, n_envs=2, expert=expert)
    message = str(info.value)
    assert shown in message and "action space" in message
    assert "Discrete(2)" in message if task == "cartpole" else "Box" in message
    assert len(Store.open(tmp_path / "s")) == 0  # not one episode stored


def test_an_expert_without_a_name_is_named_by_its_class(tmp_path: Path) -> None:
    expert = CallableExpert(lambda obs: np.full(len(obs), 9))
    with pytest.raises(ConfigError, match=r"the expert \(CallableExpert\): action 9"):
        protege.collect(protege.tasks.make("cartpole"), tmp_path / "s", episodes=1, expert=expert)


def test_a_diverging_stacked_ensemble_keeps_its_initial_weights(store: Path) -> None:
    from protege.algos import stacked_bc
    from protege.algos.engine import policy_factory

    data = Store.open(store).transitions()
    make_policy = policy_factory(protege.tasks.make("cartpole"), hidden_sizes=(16,))
    policies = [make_policy() for _ in range(2)]
    cfg = BCConfig(steps=100, lr=1e30, lr_schedule="constant", val_fraction=0.0, progress=False)
    configs = [BCConfig(**{**vars(cfg), "seed": s}) for s in (1, 2)]
    assert stacked_bc.applies(policies, [data, data], configs)
    for p in policies:
        p.set_normalization(data.obs[data.labeled], data.actions[data.labeled])
    before = [{k: v.clone() for k, v in p.state_dict().items()} for p in policies]
    with pytest.raises(TrainingError, match=r"ensemble members \[0, 1\] are not finite"):
        stacked_bc.fit(policies, [data, data], configs)
    for p, b in zip(policies, before, strict=True):
        for k, v in p.state_dict().items():
            assert v.isfinite().all() and (v == b[k]).all(), k


def test_a_diverging_success_critic_stops_with_a_training_error(tmp_path: Path) -> None:
    """ThriftyDAgger's critic: a TD fit whose weights leave the finite range is refused."""
    import numpy as np

    from fakes import short_demo
    from protege.algos.thrifty import fit_success_q
    from protege.configs.methods import ThriftyConfig
    from protege.data.store import Store
    from protege.errors import TrainingError
    from protege.policies.success_q import SuccessQ
    from protege.tasks import make

    task = make("cartpole")
    short_demo(task, tmp_path / "s", 60)
    data = Store.open(tmp_path / "s").transitions()
    critic = SuccessQ(4, 1, n_actions=2, hidden=(8,))
    cfg = ThriftyConfig(q_steps=20, q_batch=16, q_lr=1e38, q_hidden=(8,))
    with pytest.raises(TrainingError, match="diverged"):
        fit_success_q(critic, data, np.ones(1, bool), lambda o: np.zeros(len(o), np.int64), cfg, 0)
