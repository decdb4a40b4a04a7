"""The CarRacing pixels tutorial: a toy run of every stage, and the full run (slow)."""

import json

import numpy as np
import pytest

import protege.demos.carracing as carracing_demo
from fakes import PrintedTables, result_json
from protege.cli import main
from protege.cli.demos import _SMOKE_STEPS
from protege.configs.demos import CarRacingDemoConfig
from protege.demos.carracing import run_carracing_demo
from protege.demos.carracing_driving import CONTROL, OFF_TRACK, Driving


def test_smoke_run_from_the_command_line_writes_every_part_of_the_report(
    tmp_path, capsys, monkeypatch
):
    """`protege demo carracing --smoke` runs every stage (one run serves the report's checks
    and the command line's: at 80 columns each table value comes out whole, even through
    `| tee log`, the issue's case)."""
    runs = []

    def recorded(*args, **kwargs):
        runs.append(run_carracing_demo(*args, **kwargs))
        return runs[-1]

    monkeypatch.setattr(carracing_demo, "run_carracing_demo", recorded)
    tables = PrintedTables(monkeypatch)
    out = tmp_path / "report"
    argv = ["demo", "carracing", "--smoke", "--out", str(out), "--gif"]
    argv += ["--json", str(tmp_path / "c.json"), "--no-progress", "--seed", "3"]
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert "report:" in printed.out and "[demo]" not in printed.out  # notes go to stderr
    assert "[demo] BC:" in printed.err
    tables.assert_whole(printed.out)
    (run,) = runs
    steps = _SMOKE_STEPS  # the length of a smoke episode
    assert run.config == CarRacingDemoConfig.smoke(seed=3, progress=False, gif=True)
    assert list(run.rows) == ["expert", "BC", CONTROL, "DAgger", "DART"]
    for name in ("DAgger", "DART"):
        rows = run.curves[name].rows
        assert [r.round for r in rows] == [0, 1]
        # Round 0 is the shared BC policy on the demonstrations; round 1 adds labels.
        assert rows[0].labels == run.rows["BC"].labels == 2 * steps
        assert rows[1].labels == rows[0].labels + 2 * steps
        assert run.rows[name].labels == rows[1].labels
    # DAgger's learner drove its round; DART's expert did, with noise.
    assert run.curves["DAgger"].rows[1].learner_steps == 2 * steps
    assert run.curves["DART"].rows[1].learner_steps == 0
    for d in run.rows.values():
        assert len(d.returns) == 2 and len(d.offsets) == 2 and len(d.tiles) == 2
        assert all(len(o) == n for o, n in zip(d.offsets, d.lengths, strict=True))
        assert np.all((d.tiles >= 0) & (d.tiles <= 1))
    for file in (
        "index.html",
        "report.md",
        "results.json",
        "return_vs_labels.png",
        "off_track.png",
        "returns.png",
        "bc.gif",
        "dagger.gif",
        "dart.gif",
    ):
        assert (out / file).exists(), file
    results = json.loads((out / "results.json").read_text())
    assert set(results["methods"]) == {"expert", "BC", CONTROL, "DAgger", "DART"}
    assert "DAgger" in (out / "report.md").read_text()
    assert results["config"]["seed"] == 3
    assert result_json(tmp_path / "c.json", "demo carracing", seed=3) == results


def test_off_track_events_are_counted_when_the_car_leaves_the_road():
    off = np.array([0.0, 1.0, OFF_TRACK + 1, OFF_TRACK + 2, 2.0, OFF_TRACK + 0.5, 1.0])
    d = Driving("x", 0, np.zeros(2), np.array([7, 3]), np.ones(2), [off, np.zeros(3)])
    assert [e.tolist() for e in d.events()] == [[2, 5], []]
    np.testing.assert_array_equal(d.first_off, [2, np.nan])
    assert d.off_fraction == pytest.approx(3 / 10)
    np.testing.assert_array_equal(d.off_by_step(4), [0, 0, 0.5, 0.5])


@pytest.mark.slow
def test_full_demo_dagger_keeps_the_car_on_the_road_more_than_bc(tmp_path):
    """The tutorial's lesson at its default budget (its wall time is a benchmark, not a test:
    BENCHMARKS.md)."""
    run = run_carracing_demo(tmp_path / "report", CarRacingDemoConfig(progress=False), log=None)
    assert run.rows["expert"].mean_return > 800
    assert run.rows["DAgger"].off_fraction < run.rows["BC"].off_fraction
