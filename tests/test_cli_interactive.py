"""protege dagger | teleop | experiment horizon on the command line, at toy scale."""

import json

from protege.cli import main
from protege.data.store import Store


def test_dagger_cli_runs_counts_labels_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [
        "dagger",
        "--task",
        "cartpole",
        "--out",
        str(out),
        "--rounds",
        "1",
        "--episodes-per-round",
        "2",
        "--initial-demos",
        "1",
        "--steps",
        "200",
        "--eval-episodes",
        "2",
        "--no-progress",
        "--hidden-sizes",
        "32",
        "32",
    ]
    assert main(argv) == 0
    result = json.loads((out / "result.json").read_text())
    store = Store.open(out / "store")
    assert result["totals"]["labels"] == store.n_labels
    assert sorted({e["round"] for e in store.index}) == [0, 1]
    first = result["rows"]
    assert main([*argv, "--resume"]) == 0  # nothing left to do: same numbers
    assert json.loads((out / "result.json").read_text())["rows"] == first
    assert "labels to reach 95% of expert" in capsys.readouterr().out


def test_dagger_cli_method_settings_are_checked(tmp_path, capsys):
    argv = [
        "dagger",
        "--task",
        "cartpole",
        "--out",
        str(tmp_path / "r"),
        "--method",
        "thrifty",
        "--method-kwargs",
        '{"nope": 1}',
    ]
    assert main(argv) == 1
    assert "--method-kwargs" in capsys.readouterr().err


def test_teleop_and_experiment_have_help(capsys):
    for argv in (["teleop", "--help"], ["dagger", "--help"], ["experiment", "horizon", "--help"]):
        assert main(argv) == 0
    text = capsys.readouterr().out
    assert "hold SPACE to take over" in text and "--method" in text and "--epsilon" in text


def test_experiment_horizon_cli_writes_table_and_plot(tmp_path):
    out = tmp_path / "h"
    argv = [
        "experiment",
        "horizon",
        "--out",
        str(out),
        "--seeds",
        "2",
        "--mc-episodes",
        "500",
        "--bootstrap",
        "100",
        "--no-progress",
    ]
    assert main(argv) == 0
    slopes = json.loads((out / "horizon.json").read_text())
    assert (out / "horizon.png").stat().st_size > 10_000
    assert "bc" in (out / "horizon.md").read_text()
    assert slopes


def test_eval_takes_any_methods_learner(tmp_path, capsys):
    """`protege eval` loads an EnsembleDAgger round's learner (an ensemble, not one policy)."""
    out = tmp_path / "ens"
    argv = ["dagger", "--task", "cartpole", "--out", str(out), "--method", "ensemble"]
    argv += ["--rounds", "1", "--episodes-per-round", "1", "--initial-demos", "1"]
    argv += ["--steps", "20", "--eval-episodes", "1", "--hidden-sizes", "16", "--no-progress"]
    argv += ["--method-kwargs", '{"members": 2}']
    assert main(argv) == 0
    learner = out / "learners" / "round_001"
    assert (learner / "ensemble.json").exists()
    report = tmp_path / "eval.json"
    flags = ["--episodes", "2", "--n-envs", "2", "--no-progress", "--json", str(report)]
    assert main(["eval", "--policy", str(learner), "--task", "cartpole", *flags]) == 0
    assert len(json.loads(report.read_text())["results"]["policy"]["returns"]) == 2
