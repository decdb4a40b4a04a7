"""protege dagger | teleop | experiment horizon on the command line, at toy scale."""

import json

from fakes import PrintedTables, result_json
from protege.cli import main
from protege.cli.exit_codes import BAD_INPUT
from protege.data.store import Store
from protege.demos.common import json_safe


def test_dagger_cli_runs_counts_labels_and_resumes(tmp_path, capsys, monkeypatch):
    tables = PrintedTables(monkeypatch)
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
    assert main([*argv, "--json", str(tmp_path / "d.json")]) == 0
    printed = capsys.readouterr()
    tables.assert_whole(printed.out)  # the rounds' table, whole at 80 columns
    assert "[dagger] round 1:" in printed.err and "[dagger]" not in printed.out
    result = json.loads((out / "result.json").read_text())
    store = Store.open(out / "store")
    assert result["totals"]["labels"] == store.n_labels
    assert sorted({e.round for e in store.index}) == [0, 1]
    reported = result_json(tmp_path / "d.json", "dagger", seed=0)
    assert {k: reported[k] for k in result} == json_safe(result)
    assert reported["labels_to_reach_target"] in (None, *(r["labels"] for r in result["rows"]))
    for row in result["rows"]:
        line = next(x for x in printed.out.splitlines() if x.split()[:1] == [str(row["round"])])
        assert f"{row['labels']:,}" in line and f"{row['mean_return']:.1f} ±" in line
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
    assert main(argv) == BAD_INPUT
    assert "--method-kwargs" in capsys.readouterr().err


def test_teleop_and_experiment_have_help(capsys):
    for argv in (["teleop", "--help"], ["dagger", "--help"], ["experiment", "horizon", "--help"]):
        assert main(argv) == 0
    text = capsys.readouterr().out
    assert "hold SPACE to take over" in text and "--method" in text and "--epsilon" in text
    assert "--round" in text and "--human" in text


def test_experiment_horizon_cli_writes_table_and_plot(tmp_path, capsys, monkeypatch):
    tables = PrintedTables(monkeypatch)
    out = tmp_path / "h"
    argv = [
        "experiment",
        "horizon",
        "--out",
        str(out),
        *("--horizons", "20", "40", "80", "--epsilon", "2e-3", "--dagger-rounds", "2"),
        *("--seeds", "1", "--arms", "bc", "dagger", "hg-dagger"),
        *("--mc-episodes", "500", "--bootstrap", "100", "--saturated-epsilon", "0.05"),
        "--no-progress",
    ]  # the toy scale of the fast test in test_horizon.py; the full run is a benchmark
    assert main([*argv, "--json", str(tmp_path / "h.json")]) == 0
    slopes = json.loads((out / "horizon.json").read_text())
    assert result_json(tmp_path / "h.json", "experiment horizon", seed=0) == json_safe(slopes)
    assert (out / "horizon.png").stat().st_size > 10_000
    assert "bc" in (out / "horizon.md").read_text()
    assert slopes
    tables.assert_whole(capsys.readouterr().out)


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


def test_dagger_human_runs_rounds_with_a_person_and_reports_attention(tmp_path, capsys):
    """`protege dagger --method hg-dagger --human` (SDL's dummy display, nobody pressing a
    key): round 0 is the person's demonstration, so attention is the demonstration's time;
    the table shows it, and --resume of the finished run changes nothing."""
    out = tmp_path / "me"
    argv = ["dagger", "--method", "hg-dagger", "--human", "--task", "cartpole", "--out", str(out)]
    argv += ["--rounds", "1", "--episodes-per-round", "1", "--initial-demos", "1", "--fps", "500"]
    argv += ["--steps", "30", "--eval-episodes", "2", "--eval-envs", "2", "--no-progress"]
    argv += ["--hidden-sizes", "16"]
    assert main(argv) == 0
    result = json.loads((out / "result.json").read_text())
    store = Store.open(out / "store")
    assert sorted({e.round for e in store.index}) == [0, 1]
    demo = store.index[0]
    assert demo.labels == demo.length  # the person drove every step of round 0
    assert result["totals"]["labels"] == demo.labels  # and never took over in round 1
    attention = result["totals"]["attention_seconds"]
    assert attention == sum(e.extras["attention_seconds"] for e in store.index) > 0
    assert result["config"]["n_envs"] == 1 and not result["stopped"]
    text = capsys.readouterr().out
    assert "(you at the keyboard)" in text and "attention" in text
    assert main([*argv, "--resume"]) == 0
    assert json.loads((out / "result.json").read_text())["rows"] == result["rows"]


def test_dagger_human_flags_are_checked(tmp_path, capsys):
    base = ["dagger", "--task", "cartpole", "--out", str(tmp_path / "r"), "--human"]
    assert main(base) == BAD_INPUT
    assert "--human needs --method hg-dagger" in capsys.readouterr().err
    assert main([*base, "--method", "hg-dagger", "--n-envs", "4"]) == BAD_INPUT
    assert "one env at a time" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
