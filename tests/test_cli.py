"""The `protege` command end to end at toy scale: collect → train → eval → info, in seconds."""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fakes import PrintedTables, result_json
from protege import __version__
from protege.cli import COMMANDS, build_parser, main, registry
from protege.cli.core import _with_default_subcommand
from protege.cli.exit_codes import BAD_INPUT
from protege.cli.flags import config_fields, flag_kwargs
from protege.configs.bc import BCConfig
from protege.configs.demos import CarRacingDemoConfig, LunarDemoConfig, ObstacleDemoConfig
from protege.configs.horizon import HorizonConfig
from protege.configs.interactive import DAggerConfig
from protege.configs.methods import SupervisorConfig, ThriftyConfig
from protege.configs.policy import PolicyConfig
from protege.data.store import Store
from protege.demos.common import json_safe

PROTEGE = Path(sys.executable).with_name("protege")
TOY = ["--no-progress", "--seed", "3"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store collected by the console script and a policy trained on it."""
    d = tmp_path_factory.mktemp("cli")
    # stdout piped (a log), 80 columns; progress bars forced on (stderr is not a terminal)
    argv = [str(PROTEGE), "collect", "--out", str(d / "demos"), "--progress", "--seed", "3"]
    flags = f"--task cartpole --episodes 3 --n-envs 2 --json {d / 'collect.json'}"
    argv += flags.split()
    env = {**os.environ, "COLUMNS": "80"}
    proc = subprocess.run(argv, capture_output=True, timeout=120, env=env)  # bytes: keep \r
    assert proc.returncode == 0, proc.stderr
    assert b"seed=3" in proc.stdout and b"Collected 3 cartpole episodes" in proc.stdout
    (d / "collect.out").write_bytes(proc.stdout)
    (d / "collect.err").write_bytes(proc.stderr)
    flags = "--task cartpole --steps 30 --eval-every 10 --batch-size 64 --hidden-sizes 32 32"
    argv = ["train", "--data", str(d / "demos"), "--out", str(d / "policy"), *TOY]
    argv += ["--json", str(d / "train.json")]
    assert main([*argv, *flags.split(), "--val-fraction", "0.34"]) == 0
    return d


def test_collect_piped_prints_whole_results_on_stdout_and_bars_on_stderr(run_dir: Path) -> None:
    out, err = (run_dir / "collect.out").read_bytes(), (run_dir / "collect.err").read_bytes()
    assert b"\r" not in out and b"ep/s" not in out  # results only
    assert b"\r" in err and b"collect: 100%" in err  # the bar --progress asked for, on stderr
    out = out.decode()
    results = result_json(run_dir / "collect.json", "collect", seed=3)
    store = Store.open(run_dir / "demos")
    assert results["episodes"] == 3 == len(store) and results["labels"] == store.n_labels
    assert results["returns"] == [e.episode_return for e in store.index] == [500.0] * 3
    # every fact whole on its line at 80 columns, the long store path too
    facts = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in out.splitlines()
        if line.count("│") == 3
    }
    assert facts["return"] == "500.0 ± 0.0" and facts["labels"] == "1,500"
    assert facts["store"] == f"{run_dir / 'demos'}: 3 episodes, 1,500 transitions"
    assert max(map(len, out.splitlines())) > 80  # wider than 80 columns rather than cut


def test_train_json_is_the_training_record(run_dir: Path) -> None:
    results = result_json(run_dir / "train.json", "train", seed=3)
    record = json.loads((run_dir / "policy" / "train.json").read_text())
    offline = results.pop("offline")
    assert results == json_safe(record["result"])
    assert offline == json_safe(record["offline_result"]) and offline["algo"] == "bc"
    doc = json.loads((run_dir / "train.json").read_text())
    assert doc["settings"]["bc"] == record["bc"] and doc["settings"]["policy"] == record["policy"]
    assert doc["settings"]["offline"] == record["offline"]


def test_train_writes_policy_and_train_json_with_flag_names_as_config_names(run_dir: Path) -> None:
    config = json.loads((run_dir / "policy" / "config.json").read_text())
    assert config["policy"]["hidden_sizes"] == [32, 32]
    assert config["policy"]["head"] == "categorical"  # derived from the Discrete action space
    assert config["task"] == "cartpole"
    record = json.loads((run_dir / "policy" / "train.json").read_text())
    assert record["bc"]["batch_size"] == 64 and record["bc"]["seed"] == 3
    assert record["result"]["steps"] == 30
    assert [row["step"] for row in record["result"]["history"]] == [10, 20, 30]
    assert all("val_loss" in row for row in record["result"]["history"])


def test_eval_prints_table_and_writes_json(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    tables = PrintedTables(monkeypatch)
    out_json = tmp_path / "eval.json"  # not in run_dir: the module's tests share it
    # --task comes from the policy's config.json
    argv = ["eval", "--policy", str(run_dir / "policy"), "--json", str(out_json), *TOY]
    flags = "--episodes 2 --n-envs 2 --expert"
    assert main([*argv, *flags.split()]) == 0
    printed = capsys.readouterr().out
    assert "seed=3" in printed and "expert" in printed and "policy" in printed
    tables.assert_whole(printed)
    results = result_json(out_json, "eval", seed=3)
    assert results["expert"]["mean_return"] == 500.0
    assert len(results["policy"]["returns"]) == 2
    assert 0.0 <= results["policy"]["disagreement"] <= 1.0
    for who, ev in results.items():  # the table printed these numbers
        row = next(line for line in printed.splitlines() if line.strip().startswith(who))
        assert f"{ev['mean_return']:.1f} ± {ev['std_return']:.1f}" in row


def test_info_describes_a_store_a_policy_and_the_tasks(
    run_dir: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    tables = PrintedTables(monkeypatch)
    assert main(["info", str(run_dir / "demos")]) == 0
    printed = capsys.readouterr().out
    assert "1,500" in printed  # 3 episodes × 500 transitions, all labeled
    assert "cartpole" in printed and "0: 3 ep" in printed
    tables.assert_whole(printed)
    assert main(["info", str(run_dir / "policy")]) == 0
    printed = capsys.readouterr().out
    assert "categorical" in printed and "30 steps" in printed
    tables.assert_whole(printed)
    assert main(["info", "--tasks"]) == 0
    printed = capsys.readouterr().out
    assert "lunarlander" in printed
    tables.assert_whole(printed)  # the tasks' descriptions whole, at 80 columns


@pytest.mark.parametrize("path", list(COMMANDS), ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...], capsys: pytest.CaptureFixture) -> None:
    assert main([*path, "--help"]) == 0
    assert f"usage: protege {' '.join(path)}" in capsys.readouterr().out


def test_version_and_no_command(capsys: pytest.CaptureFixture) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"protege {__version__}"
    assert main([]) == 2


def test_demo_without_a_name_runs_the_default_demo() -> None:
    assert _with_default_subcommand(["demo"]) == ["demo", "lunarlander"]
    assert _with_default_subcommand(["demo", "--seed", "1"])[:2] == ["demo", "lunarlander"]
    assert _with_default_subcommand(["demo", "--help"]) == ["demo", "--help"]
    assert _with_default_subcommand(["train", "--seed", "1"]) == ["train", "--seed", "1"]


def _one_error_line(capsys: pytest.CaptureFixture, *fragments: str) -> None:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("protege ")
    for fragment in fragments:
        assert fragment in err, err


def test_missing_store_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "nowhere"
    assert main(["train", "--data", str(missing), "--out", str(tmp_path / "p"), *TOY]) == BAD_INPUT
    _one_error_line(capsys, "train: error:", str(missing), "no such store")
    assert main(["info", str(missing)]) == BAD_INPUT
    _one_error_line(capsys, "info: error:", str(missing))


def test_corrupt_policy_config_is_one_clear_error(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bad = tmp_path / "bad-policy"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes((run_dir / "policy" / "model.safetensors").read_bytes())
    (bad / "config.json").write_text('{"format": "protege-policy", "policy": {')
    assert (
        main(["eval", "--policy", str(bad), "--task", "cartpole", "--episodes", "1", *TOY])
        == BAD_INPUT
    )
    _one_error_line(capsys, "eval: error:", "config.json", "corrupt JSON")
    assert main(["info", str(bad)]) == BAD_INPUT
    _one_error_line(capsys, "info: error:", "config.json")


def test_other_bad_input_is_one_clear_error(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["collect", "--task", "nope", "--out", str(tmp_path / "d"), *TOY]) == BAD_INPUT
    _one_error_line(capsys, "unknown task 'nope'", "cartpole")
    # a store of CartPole observations checked against LunarLander's spaces
    args = ["train", "--data", str(run_dir / "demos"), "--out", str(tmp_path / "p"), *TOY]
    assert main([*args, "--task", "lunarlander"]) == BAD_INPUT
    _one_error_line(capsys, "observation space")
    assert main([*args, "--head", "gaussian"]) == BAD_INPUT
    _one_error_line(capsys, "gaussian", "Discrete")
    # --head is checked after the plugins are loaded, which may add heads
    assert main([*args, "--head", "nope"]) == BAD_INPUT
    _one_error_line(capsys, "--head 'nope'", "categorical, diffusion")
    assert main(["eval", "--task", "cartpole", *TOY]) == BAD_INPUT
    _one_error_line(capsys, "--policy")
    # flag errors are argparse's: usage, and the same exit code as other bad input
    assert main(["train", "--data", "x", "--out", "y", "--batch-size", "many"]) == BAD_INPUT


def test_train_is_reproducible_from_its_seed(run_dir: Path, tmp_path: Path) -> None:
    weights = []
    for name in ("a", "b"):
        argv = ["train", "--data", str(run_dir / "demos"), "--out", str(tmp_path / name), *TOY]
        assert main([*argv, "--steps", "5", "--hidden-sizes", "8"]) == 0
        weights.append((tmp_path / name / "model.safetensors").read_bytes())
    assert weights[0] == weights[1]


def test_demo_obstacle_writes_its_report(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    tables = PrintedTables(monkeypatch)
    out = tmp_path / "obstacle"
    argv = ["demo", "obstacle", "--out", str(out), "--demos", "10", "--steps", "20"]
    argv += ["--episodes", "5", "--n-envs", "5", "--heads", "mse", "flow", "--chunks", "4"]
    assert main([*argv, "--no-sweep-steps", "--json", str(tmp_path / "o.json"), *TOY]) == 0
    printed = capsys.readouterr().out
    assert "flow" in printed and "report:" in printed
    tables.assert_whole(printed)
    results = json.loads((out / "results.json").read_text())
    assert set(results["rows"]) == {"chunk4/mse", "chunk4/flow"}
    assert results["config"]["seed"] == 3 and results["steps_sweep"] == {}
    assert result_json(tmp_path / "o.json", "demo obstacle", seed=3) == results
    for file in ("index.html", "report.md", "results.md", "obstacle_chunks.png"):
        assert (out / file).stat().st_size > 0, file


# ======================================================================== --restore-best
@pytest.mark.parametrize("restore", [False, True])
def test_train_says_which_weights_it_kept(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture, restore: bool
) -> None:
    out = tmp_path / "p"
    argv = ["train", "--data", str(run_dir / "demos"), "--out", str(out), *TOY]
    flags = "--steps 30 --eval-every 10 --hidden-sizes 8 --val-fraction 0.34"
    assert main([*argv, *flags.split(), "--restore-best" if restore else "--no-restore-best"]) == 0
    kept = next(line for line in capsys.readouterr().out.splitlines() if "weights kept" in line)
    record = json.loads((out / "train.json").read_text())
    assert record["bc"]["restore_best"] is restore
    if restore:
        assert f"step {record['result']['best_step']} (lowest validation loss" in kept
    else:
        assert "step 30 (the last" in kept and "lowest validation loss" not in kept


# ========================================================================= eval aliases
def test_eval_deterministic_flag_is_an_alias_of_sample(run_dir: Path, tmp_path: Path) -> None:
    base = ["eval", "--policy", str(run_dir / "policy"), "--episodes", "1", "--n-envs", "1", *TOY]
    for flags, deterministic in (
        ([], True),
        (["--no-deterministic"], False),
        (["--sample"], False),
    ):
        out = tmp_path / "eval.json"
        assert main([*base, *flags, "--json", str(out)]) == 0
        assert json.loads(out.read_text())["settings"]["deterministic"] is deterministic, flags


# ============================================================================== plugins
PLUGIN = """
import numpy as np

import protege
from protege.experts import CallableExpert
from protege.tasks import Task


def balance(obs):  # batched: (N, 4) -> (N,)
    return (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(np.int64)


protege.tasks.register(Task(
    name="{name}",
    env_id="CartPole-v1",
    expert_factory=lambda: CallableExpert(balance),
    horizon=200,
    success=lambda outcome: not outcome.terminated,
))
"""


def _forget_plugins() -> None:
    """What a new process without the plugin knows: the built-in tasks only."""
    from protege import tasks

    for name in [n for n in tasks._REGISTRY if n.startswith("my-")]:
        del tasks._REGISTRY[name]
    tasks._FILE_PLUGINS.clear()
    for name in [m for m in sys.modules if m.startswith("my_")]:
        del sys.modules[name]


def test_a_plugin_makes_a_users_task_work_from_collect_to_eval(
    fresh_plugins: None, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    plugin = tmp_path / "my_tasks.py"
    plugin.write_text(PLUGIN.format(name="my-cartpole"))
    demos, policy, results = tmp_path / "demos", tmp_path / "policy", tmp_path / "eval.json"
    p = ["--plugin", str(plugin)]
    collect = ["collect", "--task", "my-cartpole", "--out", str(demos), "--episodes", "4"]
    assert main([*p, *collect, "--n-envs", "2", *TOY]) == 0
    # no --task: the store records it; --plugin may also follow the command
    train = ["train", "--data", str(demos), "--out", str(policy), "--steps", "300"]
    assert main([*train, "--hidden-sizes", "32", "32", *p, *TOY]) == 0
    evaluate = ["eval", "--policy", str(policy), "--episodes", "4", "--n-envs", "2", "--expert"]
    assert main([*p, *evaluate, "--json", str(results), *TOY]) == 0
    summary = json.loads(results.read_text())
    assert summary["settings"]["task"] == "my-cartpole"
    assert summary["results"]["expert"]["mean_return"] == 200.0  # the plugin's expert, horizon
    assert summary["results"]["policy"]["mean_return"] > 100  # BC learned from its demos
    capsys.readouterr()
    assert main([*p, "info", str(demos)]) == 0
    assert "my-cartpole" in capsys.readouterr().out
    assert main([*p, "info", "--tasks"]) == 0
    assert "my-cartpole" in capsys.readouterr().out

    _forget_plugins()  # a new shell, without --plugin
    assert main([*train, *TOY]) == BAD_INPUT
    _one_error_line(capsys, str(demos), "'my-cartpole'", "--plugin", "PROTEGE_PLUGINS")
    assert main([*evaluate, *TOY]) == BAD_INPUT
    _one_error_line(capsys, str(policy), "'my-cartpole'", "--plugin", "PROTEGE_PLUGINS")
    assert main([*collect, *TOY]) == BAD_INPUT
    _one_error_line(capsys, "unknown task 'my-cartpole'", "--plugin")


def test_protege_plugins_names_modules_and_files(
    fresh_plugins: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    (tmp_path / "my_module_tasks.py").write_text(PLUGIN.format(name="my-module-task"))
    monkeypatch.syspath_prepend(str(tmp_path))
    other = tmp_path / "elsewhere" / "my_file_tasks.py"
    other.parent.mkdir()
    other.write_text(PLUGIN.format(name="my-file-task"))
    monkeypatch.setenv("PROTEGE_PLUGINS", f"my_module_tasks{os.pathsep}{other}")
    assert main(["info", "--tasks"]) == 0
    listed = capsys.readouterr().out
    assert "my-module-task" in listed and "my-file-task" in listed
    # --plugin and the variable may name the same plugin: imported once, registered once
    out = tmp_path / "demos"
    argv = ["--plugin", str(other), "collect", "--task", "my-file-task", "--out", str(out)]
    assert main([*argv, "--episodes", "1", "--n-envs", "1", *TOY]) == 0
    assert "Collected 1 my-file-task episodes" in capsys.readouterr().out


def test_a_broken_plugin_is_one_clear_error(
    fresh_plugins: None, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["--plugin", str(tmp_path / "nowhere.py"), "info", "--tasks"]) == BAD_INPUT
    _one_error_line(capsys, "info: error:", "nowhere.py", "no such file")
    assert main(["--plugin", "my_no_such_module", "info", "--tasks"]) == BAD_INPUT
    _one_error_line(capsys, "plugin my_no_such_module", "no module named")
    broken = tmp_path / "my_broken.py"
    broken.write_text("import protege\n\nprotege.tasks.make('not-a-task')\n")
    assert main(["--plugin", str(broken), "info", "--tasks"]) == BAD_INPUT
    _one_error_line(capsys, f"plugin {broken}", "UnknownTaskError", "line 3")
    broken.write_text("def f(:\n")
    assert main(["--plugin", str(broken), "info", "--tasks"]) == BAD_INPUT
    _one_error_line(capsys, f"plugin {broken}", "SyntaxError", "line 1")


def test_installed_packages_register_through_entry_points(
    fresh_plugins: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from importlib.metadata import EntryPoint

    from protege import tasks

    (tmp_path / "my_package_tasks.py").write_text(PLUGIN.format(name="my-installed-task"))
    monkeypatch.syspath_prepend(str(tmp_path))
    points = [
        EntryPoint("broken", "my_package_missing", tasks.ENTRY_POINT_GROUP),
        EntryPoint("mine", "my_package_tasks", tasks.ENTRY_POINT_GROUP),
    ]
    monkeypatch.setattr(
        tasks.importlib.metadata,
        "entry_points",
        lambda group: [ep for ep in points if ep.group == group],
    )
    monkeypatch.setattr(tasks, "_loaded", False)  # as in a new process
    with pytest.warns(UserWarning, match="my_package_missing"):  # warned, not fatal
        assert tasks.make("my-installed-task").horizon == 200
    assert "cartpole" in tasks.names()


# ================================================================== fast --help, lazily
def _parser_of(*path: str) -> argparse.ArgumentParser:
    """The parser of the command ``path``, with its flags."""
    parser = build_parser(only=path)
    for word in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[word]
    return parser


CONFIG_FLAGS = [
    (("train",), BCConfig, ("seed", "progress")),
    (
        ("train",),
        PolicyConfig,
        ("obs_shape", "obs_parts", "act_dim", "discrete", "n_actions", "action_low", "action_high"),
    ),
    (("dagger",), DAggerConfig, ("seed", "bc")),
    (("dagger",), ThriftyConfig, ()),
    (("dagger",), SupervisorConfig, ("risk",)),
    (("demo", "lunarlander"), LunarDemoConfig, ("seed", "progress")),
    (("demo", "obstacle"), ObstacleDemoConfig, ("seed", "progress")),
    (("demo", "carracing"), CarRacingDemoConfig, ("seed", "progress", "torch_threads")),
    (("experiment", "horizon"), HorizonConfig, ("seed",)),
]


@pytest.mark.parametrize(("path", "cls", "skip"), CONFIG_FLAGS)
def test_flags_are_the_config_fields_with_their_docstrings(path, cls, skip) -> None:
    """Every field of a command's config dataclass is a flag of the same name whose help
    is the field's docstring and default (those the command sets itself aside)."""
    flags = {a.option_strings[0]: a for a in _parser_of(*path)._actions if a.option_strings}
    for f in config_fields(cls, skip):
        if flag_kwargs(f.type) is None:
            continue  # not a flag: set from Python (a callable)
        assert f.flag in flags, (cls.__name__, f.flag)
        text = flags[f.flag].help.replace("%%", "%")
        assert f.doc in text and "(default: " in text, (f.flag, text)


def test_a_methods_flag_is_refused_for_another_method(tmp_path, capsys) -> None:
    base = ["dagger", "--task", "cartpole", "--out", str(tmp_path / "r")]
    assert main([*base, "--alpha-h", "0.05"]) == BAD_INPUT
    assert "--alpha-h is a setting of --method thrifty and fleet, not of --method dagger" in (
        capsys.readouterr().err
    )
    assert main([*base, "--method", "hg-dagger", "--members", "2"]) == BAD_INPUT
    err = capsys.readouterr().err
    assert "--members is a setting of --method ensemble, thrifty and fleet" in err
    assert main([*base, "--method", "gail"]) == BAD_INPUT
    assert "unknown method 'gail'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_methods_flags_make_its_settings() -> None:
    from protege.cli.interactive import _method_config

    parser = _parser_of("dagger")
    argv = ["--task", "x", "--out", "y", "--method", "thrifty", "--alpha-h", "0.05"]
    args = parser.parse_args([*argv, "--q-hidden", "8", "8", "--no-use-risk"])
    assert _method_config(args) == ThriftyConfig(alpha_h=0.05, q_hidden=(8, 8), use_risk=False)
    args = parser.parse_args([*argv[:-2], "--method-kwargs", '{"members": 3}', "--members", "2"])
    assert _method_config(args) == ThriftyConfig(members=2)  # the flag wins


def test_the_configs_import_only_the_standard_library() -> None:
    code = (
        "import pkgutil, importlib, json, sys\n"
        "before = set(sys.modules)\n"
        "import protege.configs as c\n"
        "for m in pkgutil.iter_modules(c.__path__):\n"
        "    importlib.import_module(f'protege.configs.{m.name}')\n"
        "import protege.algos.registry\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(json.dumps(sorted(new - set(sys.stdlib_module_names))))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == ["protege"]


HEAVY = ("torch", "gymnasium", "matplotlib", "ray")
HELP_CHECK = """
import json, sys
heavy = {heavy!r}
loaded = lambda: sorted(m for m in sys.modules if m.split(".")[0] in heavy)
from protege.cli import COMMANDS, main
before = loaded()
new = {{}}
for path in [(), *COMMANDS, ("train", "--batch-size", "many")]:
    main([*path, "--help"] if path[-1:] != ("many",) else list(path))
    new[" ".join(path)] = sorted(set(loaded()) - set(before))
print(json.dumps({{"before": before, "new": new}}))
"""


@functools.cache
def _help_imports() -> dict:
    """Heavy modules loaded by importing protege.cli, and then by each command's --help."""
    code = HELP_CHECK.format(heavy=HEAVY)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_help_and_flag_errors_import_nothing_heavy() -> None:
    """Building a command's flags imports no torch, gymnasium or matplotlib (beyond what
    importing protege.cli itself does; see the next test)."""
    assert all(not new for new in _help_imports()["new"].values()), _help_imports()["new"]


def test_importing_the_cli_imports_nothing_heavy() -> None:
    assert _help_imports()["before"] == []


def test_the_cli_names_the_tasks_plugin_variable() -> None:
    from protege import tasks

    assert registry.PLUGINS_ENV == tasks.PLUGINS_ENV
