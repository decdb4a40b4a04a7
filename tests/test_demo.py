"""`protege demo`: the report folder at a tiny budget, and the full LunarLander run (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fakes import PrintedTables, result_json
from protege.algos import registry
from protege.cli import main
from protege.configs.demos import LunarDemoConfig
from protege.configs.methods import ThriftyConfig
from protege.demos.common import json_safe, timed, write_json
from protege.demos.lunarlander import run_demo
from protege.demos.lunarlander_report import lesson
from protege.report import plots

FIGURES = ["returns.png", "disagreement.png", "loss.png", "bc.gif"]
REPORT_FILES = ["index.html", "report.md", "results.json", *FIGURES, "policy/config.json"]


def _check_report(out: Path) -> dict:
    for name in REPORT_FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    html = (out / "index.html").read_text()
    md = (out / "report.md").read_text()
    for figure in FIGURES:
        assert f'src="{figure}"' in html and f"]({figure})" in md
    for fact in ("seed", "wall time: total", "command", "machine", "expert labels"):
        assert fact in html and fact in md
    return json.loads((out / "results.json").read_text())


def test_tiny_demo_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    tiny = {"n_envs": 2, "batch_size": 32, "hidden_sizes": (16,), "progress": False}
    tiny |= {"methods": ()}
    # the demo's own validation split: 10% of the 6 demonstrations, rounded to one
    cfg = LunarDemoConfig(task="cartpole", seed=1, episodes=6, steps=20, eval_episodes=2, **tiny)
    run = run_demo(out, cfg)
    results = _check_report(out)
    assert results["seed"] == 1
    assert set(results["methods"]) == {"expert", "BC"}
    assert results["methods"]["BC"]["labels"] == run.store.n_labels == 3000
    assert results["methods"]["expert"]["mean_return"] == 500.0
    # the loss figure has a validation curve: every point of BC's history has both losses
    bc = results["bc"]
    assert bc["n_val"] == 500 and bc["n_train"] == 2500
    assert all(np.isfinite([row["train_loss"], row["val_loss"]]).all() for row in bc["history"])
    report = (out / "report.md").read_text()
    assert "BC training and validation loss" in report
    assert "the final weights are kept" in report  # BCConfig.restore_best is off
    assert run.headline("BC").startswith("BC reaches")
    assert "2,500 of the 3,000 expert labels (500 held out for validation)" in run.headline("BC")
    # a second run replaces the demonstrations instead of appending to them
    run = run_demo(
        out,
        LunarDemoConfig(
            task="cartpole", seed=1, episodes=2, steps=5, eval_episodes=1, gif=False, **tiny
        ),
    )
    assert len(run.store) == 2


def test_tiny_demo_compares_interactive_methods_on_return_against_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The demo runs each method with its default settings; ThriftyDAgger's success critic
    # gets a toy budget here, as its BC learners do (round_bc_steps): 2,000 TD steps of a
    # 2x256 critic were most of this test's time, and nothing here depends on the critic.
    real = registry.run_method

    def toy_critic(method, task, store, config=None, method_config=None, **kwargs):
        if method == "thrifty":
            assert method_config is None  # the demo's default settings, made toy
            method_config = ThriftyConfig(q_steps=20, q_hidden=(16, 16))
        return real(method, task, store, config, method_config, **kwargs)

    monkeypatch.setattr(registry, "run_method", toy_critic)
    out = tmp_path / "demo"
    cfg = LunarDemoConfig(
        task="cartpole",
        seed=2,
        episodes=3,
        steps=10,
        eval_episodes=2,
        n_envs=2,
        hidden_sizes=(16,),
        progress=False,
        gif=False,
        methods=("dagger", "hg-dagger", "thrifty"),
        rounds=1,
        round_bc_steps=5,
        round_eval_episodes=2,
    )
    run = run_demo(out, cfg)
    results = json.loads((out / "results.json").read_text())
    dirs = {"DAgger": "dagger", "HG-DAgger": "hg-dagger", "ThriftyDAgger": "thrifty"}
    names = list(dirs)
    assert list(results["methods"]) == ["expert", "BC", *names]
    assert list(run.policies) == ["BC", *names]  # final learners, evaluated like BC
    # BC's learning curve: the first 1 and 2 of the 3 demonstrations (500 steps each).
    assert results["curves"]["BC"]["labels"] == [500, 1000]
    for name in names:
        curve, totals = results["curves"][name], results["interactive"][name]["totals"]
        assert len(curve["labels"]) == 2  # round 0 (one demonstration) and round 1
        assert curve["labels"][0] == 500 and curve["labels"][-1] == totals["labels"]
        # the table's labels are the method's own count, not BC's
        assert results["methods"][name]["labels"] == totals["labels"]
        assert (out / "interactive" / dirs[name] / "run" / "learners" / "round_001").is_dir()
    # DAgger labels every learner step; the gated methods label only what their gate asks.
    dagger_totals = results["interactive"]["DAgger"]["totals"]
    assert dagger_totals["labels"] == 500 + dagger_totals["learner_steps"]
    assert "return_vs_labels.png" in (out / "report.md").read_text()
    assert (out / "return_vs_labels.png").stat().st_size > 0
    assert "Reaching 95% of the expert's return" in (out / "report.md").read_text()


def test_demo_command_prints_where_the_report_is(tmp_path: Path, capsys, monkeypatch) -> None:
    tables = PrintedTables(monkeypatch)
    out = tmp_path / "cli-demo"
    flags = "--task cartpole --episodes 2 --n-envs 2 --steps 10 --hidden-sizes 16 --eval-episodes 2"
    flags += " --methods dagger --rounds 1 --round-eval-episodes 2 --round-bc-steps 7"
    flags += f" --no-gif --no-progress --json {tmp_path / 'demo.json'}"
    assert main(["demo", "--out", str(out), *flags.split()]) == 0
    printed = capsys.readouterr().out
    tables.assert_whole(printed)
    assert "seed=0" in printed and "BC reaches" in printed
    assert "DAgger" in printed and "Reaching 95% of the expert's return" in printed
    assert str(out / "index.html") in printed
    assert (out / "index.html").exists() and not (out / "bc.gif").exists()
    results = json.loads((out / "results.json").read_text())
    assert results["interactive"]["DAgger"]["config"]["bc"]["steps"] == 7  # --round-bc-steps
    assert result_json(tmp_path / "demo.json", "demo lunarlander", seed=0) == results


def test_plots_cope_with_edge_cases(tmp_path: Path) -> None:
    # no validation rows, an empty method, a learner no episode kept for long
    plots.plot_losses([{"step": 1, "train_loss": 0.5}], tmp_path / "l.png")
    plots.plot_returns({"expert": np.array([1.0, 2.0]), "BC": np.array([])}, tmp_path / "r.png")
    plots.plot_disagreement(
        {"BC": (np.array([0.5, np.nan]), np.array([1, 0]))}, tmp_path / "d.png", discrete=False
    )
    assert all((tmp_path / f).stat().st_size > 0 for f in ("l.png", "r.png", "d.png"))


def test_results_json_says_null_for_what_was_not_measured(tmp_path: Path) -> None:
    nan, inf = float("nan"), float("inf")
    value = {"a": [1.5, nan, (np.float64(nan), -inf)], "b": {"c": np.float32(0.5), "d": "x"}}
    assert json_safe(value) == {"a": [1.5, None, [None, None]], "b": {"c": 0.5, "d": "x"}}
    assert isinstance(json_safe(np.int64(3)), int) and json_safe(np.bool_(True)) is True
    path = write_json(tmp_path / "r.json", {"std": np.float64(nan), "n": 2})
    assert json.loads(path.read_text()) == {"std": None, "n": 2}


def test_timed_steps_add_up() -> None:
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for _ in range(2):
        with timed(wall, "step", cpu):
            sum(range(100_000))
    with timed(wall, "other"):
        pass
    assert set(wall) == {"step", "other"} and set(cpu) == {"step"}
    assert wall["step"] > 0 and cpu["step"] >= 0


@pytest.mark.slow
def test_full_demo_shows_where_interactive_labels_beat_more_demonstrations(
    tmp_path: Path,
) -> None:
    cfg = LunarDemoConfig(seed=0, progress=False)
    assert cfg.task == "lunarlander-noisy-mild"  # the task where compounding error costs BC
    run = run_demo(tmp_path / "demo", cfg)
    _check_report(tmp_path / "demo")
    text = lesson(run)
    # an interactive method reached 95% of the expert with fewer labels than BC needed
    assert "labels on the states the learner drifts into were worth more" in text, text
    assert text in (tmp_path / "demo" / "report.md").read_text()
    assert run.wall_seconds < 300


@pytest.mark.slow
def test_full_demo_bc_reaches_80_percent_of_the_expert_on_the_stock_lander(
    tmp_path: Path,
) -> None:
    cfg = LunarDemoConfig(task="lunarlander", seed=0, methods=(), progress=False)
    run = run_demo(tmp_path / "demo", cfg)
    _check_report(tmp_path / "demo")
    assert run.fraction_of_expert("BC") >= 0.8, run.headline("BC")
