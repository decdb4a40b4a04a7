"""The `protege` command end to end at toy scale: collect → train → eval → info, in seconds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from protege import __version__
from protege.cli import COMMANDS, main
from protege.cli.core import _with_default_subcommand

PROTEGE = Path(sys.executable).with_name("protege")
TOY = ["--no-progress", "--seed", "3"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store collected by the console script and a policy trained on it."""
    d = tmp_path_factory.mktemp("cli")
    argv = [str(PROTEGE), "collect", "--out", str(d / "demos"), *TOY]
    flags = "--task cartpole --episodes 3 --n-envs 2"
    argv += flags.split()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "seed=3" in proc.stdout and "Collected 3 cartpole episodes" in proc.stdout
    flags = "--task cartpole --steps 30 --eval-every 10 --batch-size 64 --hidden-sizes 32 32"
    argv = ["train", "--data", str(d / "demos"), "--out", str(d / "policy"), *TOY]
    assert main([*argv, *flags.split(), "--val-fraction", "0.34"]) == 0
    return d


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


def test_eval_prints_table_and_writes_json(run_dir: Path, capsys: pytest.CaptureFixture) -> None:
    out_json = run_dir / "eval.json"
    # --task comes from the policy's config.json
    argv = ["eval", "--policy", str(run_dir / "policy"), "--json", str(out_json), *TOY]
    flags = "--episodes 2 --n-envs 2 --expert"
    assert main([*argv, *flags.split()]) == 0
    printed = capsys.readouterr().out
    assert "seed=3" in printed and "expert" in printed and "policy" in printed
    results = json.loads(out_json.read_text())["results"]
    assert results["expert"]["mean_return"] == 500.0
    assert len(results["policy"]["returns"]) == 2
    assert 0.0 <= results["policy"]["disagreement"] <= 1.0


def test_info_describes_a_store_a_policy_and_the_tasks(
    run_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["info", str(run_dir / "demos")]) == 0
    printed = capsys.readouterr().out
    assert "1,500" in printed  # 3 episodes × 500 transitions, all labeled
    assert "cartpole" in printed and "0: 3 ep" in printed
    assert main(["info", str(run_dir / "policy")]) == 0
    printed = capsys.readouterr().out
    assert "categorical" in printed and "30 steps" in printed
    assert main(["info", "--tasks"]) == 0
    assert "lunarlander" in capsys.readouterr().out


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
    assert main(["train", "--data", str(missing), "--out", str(tmp_path / "p"), *TOY]) == 1
    _one_error_line(capsys, "train: error:", str(missing), "no such store")
    assert main(["info", str(missing)]) == 1
    _one_error_line(capsys, "info: error:", str(missing))


def test_corrupt_policy_config_is_one_clear_error(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bad = tmp_path / "bad-policy"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes((run_dir / "policy" / "model.safetensors").read_bytes())
    (bad / "config.json").write_text('{"format": "protege-policy", "policy": {')
    assert main(["eval", "--policy", str(bad), "--task", "cartpole", "--episodes", "1", *TOY]) == 1
    _one_error_line(capsys, "eval: error:", "config.json", "corrupt JSON")
    assert main(["info", str(bad)]) == 1
    _one_error_line(capsys, "info: error:", "config.json")


def test_other_bad_input_is_one_clear_error(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["collect", "--task", "nope", "--out", str(tmp_path / "d"), *TOY]) == 1
    _one_error_line(capsys, "unknown task 'nope'", "cartpole")
    # a store of CartPole observations checked against LunarLander's spaces
    args = ["train", "--data", str(run_dir / "demos"), "--out", str(tmp_path / "p"), *TOY]
    assert main([*args, "--task", "lunarlander"]) == 1
    _one_error_line(capsys, "observation space")
    assert main([*args, "--head", "gaussian"]) == 1
    _one_error_line(capsys, "gaussian", "Discrete")
    assert main(["eval", "--task", "cartpole", *TOY]) == 1
    _one_error_line(capsys, "--policy")
    # flag errors are argparse's: usage and exit code 2
    assert main(["train", "--data", "x", "--out", "y", "--batch-size", "many"]) == 2


def test_train_is_reproducible_from_its_seed(run_dir: Path, tmp_path: Path) -> None:
    weights = []
    for name in ("a", "b"):
        argv = ["train", "--data", str(run_dir / "demos"), "--out", str(tmp_path / name), *TOY]
        assert main([*argv, "--steps", "5", "--hidden-sizes", "8"]) == 0
        weights.append((tmp_path / name / "model.safetensors").read_bytes())
    assert weights[0] == weights[1]


def test_demo_obstacle_writes_its_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "obstacle"
    argv = ["demo", "obstacle", "--out", str(out), "--demos", "10", "--steps", "20"]
    argv += ["--episodes", "5", "--n-envs", "5", "--heads", "mse", "flow", "--chunks", "4"]
    assert main([*argv, "--no-sweep-steps", *TOY]) == 0
    printed = capsys.readouterr().out
    assert "flow" in printed and "report:" in printed
    results = json.loads((out / "results.json").read_text())
    assert set(results["rows"]) == {"chunk4/mse", "chunk4/flow"}
    assert results["config"]["seed"] == 3 and results["steps_sweep"] == {}
    for file in ("index.html", "report.md", "results.md", "obstacle_chunks.png"):
        assert (out / file).stat().st_size > 0, file


def test_demo_carracing_smoke_runs_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "carracing"
    assert main(["demo", "carracing", "--smoke", "--out", str(out), "--gif", *TOY]) == 0
    assert "report:" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["seed"] == 3
    assert (out / "index.html").exists() and (out / "return_vs_labels.png").exists()
