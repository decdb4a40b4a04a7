"""What the command prints and returns: whole tables at any width, results-only stdout,
progress bars only when asked, --json everywhere, and the documented exit codes."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table

from fakes import PrintedTables, in_order
from protege.cli import COMMANDS, build_parser, exit_codes, main, output
from protege.cli.exit_codes import BAD_INPUT, INTERNAL_ERROR, INTERRUPTED
from protege.configs.bc import BCConfig
from protege.configs.demos import CarRacingDemoConfig, LunarDemoConfig, ObstacleDemoConfig

PROTEGE = Path(sys.executable).with_name("protege")
WIDE_COLUMNS = ["method", "expert labels", "return (mean ± std)", "vs BC (mean ± s.e.)", "tiles"]
WIDE_ROWS = [
    ["BC + steps (control)", "8,170", "648.3 ± 276.1", "+30.2 ± 21.4", "74%"],
    ["DAgger (2 rounds)", "14,967", "828.0 ± 206.5", "+210.1 ± 160.0", "91%"],
]


# ================================================================================= tables
def test_a_table_wider_than_the_columns_is_printed_whole(
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    # what rich alone does at that width: squeezes and cuts (the bug of the issue)
    squeezed = Table()
    for col in WIDE_COLUMNS:
        squeezed.add_column(col)
    for row in WIDE_ROWS:
        squeezed.add_row(*row)
    Console(file=(buffer := io.StringIO()), width=60).print(squeezed)
    assert not all(any(in_order(x, r) for x in buffer.getvalue().splitlines()) for r in WIDE_ROWS)

    title = "carracing: a title longer than sixty columns, with 828.0 in it"
    output.print_table(title, WIDE_COLUMNS, WIDE_ROWS)
    output.facts("Facts", {"store": "/a/long/path/" + "x" * 70 + ": 3 episodes"})
    lines = capsys.readouterr().out.splitlines()
    assert title in lines
    for cells in [WIDE_COLUMNS, *WIDE_ROWS, ["store", "/a/long/path/" + "x" * 70]]:
        assert any(in_order(line, cells) for line in lines), cells


def test_a_table_that_fits_keeps_to_the_columns(
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    output.print_table(None, ["round", "labels"], [[1, "[bold]2,000[/]"]])  # no markup
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= 80 and any(in_order(x, ["1", "[bold]2,000[/]"]) for x in lines)


# ============================================================================== progress
def test_progress_bars_only_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not BCConfig().progress  # Python calls: off unless progress=True
    assert not any(c().progress for c in (LunarDemoConfig, ObstacleDemoConfig, CarRacingDemoConfig))
    tables = PrintedTables(monkeypatch)
    argv = ["collect", "--task", "cartpole", "--episodes", "1", "--n-envs", "1"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0  # stderr is no terminal here
    printed = capsys.readouterr()
    assert "collect:" not in printed.err and "\r" not in printed.out + printed.err
    tables.assert_whole(printed.out)
    assert main([*argv, "--out", str(tmp_path / "b"), "--progress"]) == 0
    printed = capsys.readouterr()
    assert "collect:" in printed.err and "\r" not in printed.out


# ================================================================================= --json
NOT_REPORTING = {"info", "repair", "import", "export"}
"""Commands that manage data and files rather than report results: no ``--json``."""
REPORTING = sorted(" ".join(c) for c in COMMANDS if " ".join(c) not in NOT_REPORTING)


def test_the_reporting_list_holds_every_command_a_user_runs_for_results() -> None:
    assert {"collect", "train", "eval", "dagger", "teleop", "finetune"} <= set(REPORTING)
    assert {"demo arm", "demo finetune", "demo lunarlander", "experiment horizon"} <= set(REPORTING)


@pytest.mark.parametrize("name", REPORTING)
def test_every_command_that_reports_results_takes_json(name: str) -> None:
    path = tuple(name.split())
    assert path in COMMANDS
    parser = build_parser(only=path)
    sub = parser._subparsers._group_actions[0].choices[path[0]]  # type: ignore[union-attr]
    if len(path) == 2:
        sub = sub._subparsers._group_actions[0].choices[path[1]]
    assert "--json" in sub._option_string_actions, name


def test_teleop_json_is_the_sessions_summary(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """SDL's dummy driver (conftest): nobody at the keys, so the person "drives" no-ops."""
    from fakes import result_json
    from protege.data.store import Store

    out = tmp_path / "me"
    argv = ["teleop", "--task", "cartpole", "--out", str(out), "--episodes", "1", "--fps", "1000"]
    assert main([*argv, "--json", str(tmp_path / "t.json"), "--seed", "2"]) == 0
    results = result_json(tmp_path / "t.json", "teleop", seed=2)
    store = Store.open(out)
    assert results["episodes"] == len(store) == 1 and results["labels"] == store.n_labels
    assert results["returns"] == [store.index[0].episode_return]
    assert f"labels {results['labels']}" in capsys.readouterr().out


# ============================================================================ exit codes
def test_help_lists_the_exit_codes(capsys: pytest.CaptureFixture) -> None:
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for code in (0, BAD_INPUT, INTERRUPTED, INTERNAL_ERROR):
        assert f"\n  {code:<4} " in text
    assert exit_codes.DEBUG_ENV in text
    assert len({0, BAD_INPUT, INTERRUPTED, INTERNAL_ERROR}) == 4


def test_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    proc = subprocess.run(
        [str(PROTEGE), "info", str(missing)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == BAD_INPUT == 2
    assert proc.stderr.strip() == f"protege info: error: {missing}: no such file or directory"
    assert proc.stdout == ""


def test_sigint_stops_collect_with_130_keeping_its_episodes(tmp_path: Path) -> None:
    out = tmp_path / "demos"
    argv = [str(PROTEGE), "collect", "--task", "cartpole", "--out", str(out), "--n-envs", "1"]
    # A job started in the background by a non-interactive shell inherits SIGINT ignored
    # (and Python then keeps it ignored): give the child the default, as a terminal would.
    proc = subprocess.Popen(
        [*argv, "--episodes", "100000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        index, deadline = out / "episodes.jsonl", time.time() + 60
        while not (index.exists() and index.read_text().count("\n") >= 1):
            assert proc.poll() is None and time.time() < deadline, proc.stderr
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == INTERRUPTED == 130
    assert err.strip().splitlines()[-1] == (
        f"protege collect: interrupted; the store {out} keeps every episode that ended (each is "
        "saved as it ends); collect appends, so a run with another --seed adds more"
    )
    assert "Traceback" not in err
    from protege.data.store import Store

    assert len(Store.open(out)) >= 1


def _dagger(tmp_path: Path) -> list[str]:
    return ["dagger", "--task", "cartpole", "--out", str(tmp_path / "my run"), "--rounds", "2"]


def test_an_interrupted_dagger_says_the_resume_command(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from protege.algos import registry

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(registry, "run_method", interrupted)
    assert main(_dagger(tmp_path)) == INTERRUPTED
    out = tmp_path / "my run"
    assert capsys.readouterr().err.strip() == (
        "protege dagger: interrupted; every finished episode and round is kept. To continue: "
        f"protege dagger --task cartpole --out '{out}' --rounds 2 --resume"
    )


def test_sigterm_is_an_interruption_too(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from protege.algos import registry

    def terminated(*args: object, **kwargs: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this
        raise AssertionError("SIGTERM did not interrupt the run")

    monkeypatch.setattr(registry, "run_method", terminated)
    before = signal.getsignal(signal.SIGTERM)
    assert main([*_dagger(tmp_path), "--resume"]) == INTERRUPTED
    assert "--rounds 2 --resume" in capsys.readouterr().err  # --resume once
    assert signal.getsignal(signal.SIGTERM) == before  # restored


@pytest.mark.parametrize("debug", [False, True])
def test_an_internal_error_exits_70_and_says_where_the_traceback_is(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, debug: bool
) -> None:
    from protege.rollout import collect

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("a bug\nover two lines")

    monkeypatch.setattr(collect, "collect", broken)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    if debug:
        monkeypatch.setenv(exit_codes.DEBUG_ENV, "1")
    argv = ["collect", "--task", "cartpole", "--out", str(tmp_path / "d"), "--episodes", "1"]
    assert main(argv) == INTERNAL_ERROR == 70
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith(
        "protege collect: internal error: ValueError: a bug over two lines. This is a bug in "
        "protege or a plugin: please report it with the command line and the traceback"
    )
    crashes = list(tmp_path.glob("protege-crash-*.txt"))
    if debug:
        assert "Traceback (most recent call last)" in err and not crashes
        assert last.endswith("the traceback above")
    else:
        assert "Traceback" not in err and len(crashes) == 1
        assert f"written to {crashes[0]} ({exit_codes.DEBUG_ENV}=1 prints it)" in last
        text = crashes[0].read_text()
        assert text.startswith("protege collect --task cartpole") and "in broken" in text
