"""CONTRIBUTING.md's example method, exactly as printed there, runs: one plugin file with one
``registry.register`` line makes ``--method coin-flip`` work from Python and from the CLI."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

from fakes import CountingExpert, round_numbers, short_demo
from protege import tasks
from protege.algos import engine, registry
from protege.cli import main
from protege.cli.exit_codes import BAD_INPUT
from protege.configs.interactive import DAggerConfig
from protege.data.episode import EXPERT, LEARNER
from protege.data.store import Store
from protege.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "coin_flip_dagger.py"
CARTPOLE = tasks.make("cartpole")
HIDDEN = (32, 32)
CONFIG = DAggerConfig(
    rounds=2,
    episodes_per_round=2,
    initial_demos=1,
    n_envs=2,
    bc=dataclasses.replace(DAggerConfig().bc, steps=300),
    eval_episodes=8,
    eval_envs=8,
)
"""test_dagger.py's toy scale: one expert demonstration, then two rounds of two episodes."""
ROW_KEYS = ("round", "beta", "episodes", "labels", "expert_steps", "learner_steps")
ROW_KEYS += ("interventions", "expert_queries", "mean_return", "std_return", "success_rate")
"""The keys of ``result.json``'s rows that :func:`fakes.round_numbers` takes, in its order."""


def test_the_example_in_contributing_md_is_the_file_the_tests_run() -> None:
    text = (ROOT / "CONTRIBUTING.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    printed = [b for b in blocks if b.startswith('"""Coin-flip DAgger')]
    assert len(printed) == 1, "CONTRIBUTING.md prints the example method once"
    assert printed[0] == EXAMPLE.read_text()


def check_coin_flips(store_path: Path, p: float) -> None:
    """Round 0 is the expert's; in later rounds the learner drove every step and the expert
    labelled about p of them."""
    data = Store.open(store_path).transitions()
    step_round = np.repeat(data.rounds, data.episode_lengths)
    demo, later = step_round == 0, step_round > 0
    assert np.all(data.actor[demo] == EXPERT) and data.labeled[demo].all()
    assert np.all(data.actor[later] == LEARNER)
    n, share = int(later.sum()), float(data.labeled[later].mean())
    assert abs(share - p) < 4 * np.sqrt(p * (1 - p) / n), (share, n)  # 4 standard errors


def test_the_example_method_runs_by_name_from_the_cli_and_from_python(
    fresh_plugins: None, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """test_dagger.py's toy run and thresholds: from a 60-step demonstration BC stays below
    250; two rounds of coin-flip labels (p = 0.3) lift the learner to at least 400 and twice
    BC (it reaches 478-500 on seeds 0-2 at p = 0.3 and 0.5)."""
    out = tmp_path / "cli"
    short_demo(CARTPOLE, out / "store", 60)
    argv = ["dagger", "--plugin", str(EXAMPLE), "--method", "coin-flip"]
    argv += ["--task", "cartpole", "--out", str(out), "--seed", "0", "--no-progress"]
    argv += ["--rounds", "2", "--episodes-per-round", "2", "--initial-demos", "1"]
    argv += ["--n-envs", "2", "--steps", "300", "--eval-episodes", "8", "--eval-envs", "8"]
    argv += ["--hidden-sizes", *map(str, HIDDEN)]
    assert main([*argv, "--method-kwargs", '{"p": 0.3}']) == 0
    assert "coin-flip on cartpole, seed 0" in capsys.readouterr().out
    cli_rows = json.loads((out / "result.json").read_text())["rows"]
    check_coin_flips(out / "store", 0.3)

    # The plugin registered one method with its settings class (a plugin's flags are
    # unknown while the command line is read, hence --method-kwargs).
    assert registry.names()[-1] == "coin-flip"
    settings = registry.entry("coin-flip").config_class()
    assert settings is not None and settings.__name__ == "CoinFlipConfig"
    with pytest.raises(ConfigError, match=r"CoinFlipConfig\.p must be in \[0, 1\]"):
        settings(p=1.5)

    short_demo(CARTPOLE, tmp_path / "py" / "store", 60)
    expert = CountingExpert(CARTPOLE.make_expert())
    result = registry.run_method(
        "coin-flip",
        CARTPOLE,
        tmp_path / "py" / "store",
        CONFIG,
        settings(p=0.3),
        make_policy=engine.policy_factory(CARTPOLE, hidden_sizes=HIDDEN),
        expert=expert,
    )
    rows = result.rows
    from_cli = [tuple(row[k] for k in ROW_KEYS) for row in cli_rows]
    assert round_numbers(result) == from_cli  # the same run, to the last digit

    # Every label counted, once: the demonstration's, then only the coin's heads.
    demo, last = rows[0].labels, rows[-1]
    assert demo == 60 and last.expert_steps == 60
    assert demo < last.labels == last.expert_queries < last.expert_steps + last.learner_steps
    assert expert.asked == last.labels - demo  # asked about the coin's heads, nothing else
    # The learner succeeds on cartpole rollouts where BC from the demonstration fails.
    bc_return = rows[0].mean_return
    assert bc_return < 250
    assert max(r.mean_return for r in rows[1:]) >= max(400, 2 * bc_return)
    assert last.mean_return >= 400

    # The method and its settings are recorded: a finished run resumes to itself, and
    # resuming with another p is refused, naming it.
    assert main([*argv, "--method-kwargs", '{"p": 0.3}', "--resume"]) == 0
    assert json.loads((out / "result.json").read_text())["rows"] == cli_rows
    assert main([*argv, "--method-kwargs", '{"p": 0.5}', "--resume"]) == BAD_INPUT
    assert "method_settings.p: 0.3 → 0.5" in capsys.readouterr().err
