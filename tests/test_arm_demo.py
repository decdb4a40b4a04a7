"""``protege demo arm``: the weekend arm project end to end (a smoke run, and the lesson)."""

from __future__ import annotations

import dataclasses
import json

import imageio.v2 as imageio
import numpy as np
import pytest

pytest.importorskip("metaworld")

from protege.cli import main
from protege.configs.demos import ArmDemoConfig
from protege.data.episode import LEARNER
from protege.data.store import Store
from protege.errors import ConfigError
from protege.tasks.mujoco_render import is_blank


def test_smoke_run_of_the_cli_writes_the_whole_report(tmp_path):
    """--smoke with a shorter horizon than its own 25 steps (rendering the camera setting's
    frames is most of the time): a flag given with --smoke overrides the smoke setting."""
    out = tmp_path / "arm"
    argv = ["demo", "arm", "--smoke", "--horizon", "12", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    cfg = ArmDemoConfig.smoke(horizon=12)
    assert results["config"] == json.loads(json.dumps(dataclasses.asdict(cfg)))
    assert list(results["settings"]) == ["main", "few", "hidden", "camera"]
    horizon, per_round = cfg.horizon, cfg.episodes_per_round
    for name, s in results["settings"].items():
        assert len(s["success"]) == len(s["labels"]) == cfg.rounds + 1
        assert len(s["disagreement"]) == cfg.rounds + 1
        assert all(d is not None and d >= 0 for d in s["disagreement"])
        store = Store.open(out / name / "store")
        demos = {"few": cfg.few_demos, "camera": cfg.camera_demos}.get(name, cfg.demos)
        assert sum(e.round == 0 for e in store.index) == demos
        parts = {"workspace", "state"} if name == "camera" else None
        assert (set(store.transitions().obs) if name == "camera" else None) == parts
        # Every state the learner reached in a DAgger round carries the expert's label.
        for ep in store.episodes():
            if ep.round > 0:
                assert np.all(ep.actor == LEARNER) and (ep.labeled is None or ep.labeled.all())
        # None of the smoke episodes succeeds in 12 steps, so each runs to the horizon.
        assert s["labels"][1] - s["labels"][0] == per_round * horizon
    assert "hidden" in results["settings"]["hidden"]["task"]
    for file in ("index.html", "report.md", "success.png", "disagreement.png"):
        assert (out / file).exists(), file
    report = (out / "report.md").read_text()
    assert "DAgger 1" in report and "Camera + proprioception" in report
    assert "not run (opt-in" not in report
    for gif in ("main-round0.gif", "main-round1.gif", "hidden-round1.gif", "camera-round1.gif"):
        frames = imageio.mimread(out / gif)
        assert len(frames) > 2 and not is_blank(frames[0])


def test_unknown_settings_say_so():
    with pytest.raises(ConfigError, match="camera"):
        ArmDemoConfig(settings=("main", "cmaera"))


def test_camera_is_opt_in_and_learns_through_a_cnn(tmp_path):
    from protege.demos.arm import _dagger_config, setting_task
    from protege.demos.arm_settings import SETTINGS
    from protege.policies import Policy, PolicyConfig

    assert "camera" not in ArmDemoConfig().settings
    cfg = ArmDemoConfig(settings=("camera",))
    setting = SETTINGS["camera"]
    task = setting_task(setting, cfg)
    policy = Policy(PolicyConfig.for_spaces(*task.spaces, **setting.policy))
    assert policy.config.encoder == "parts" and policy.config.random_shift == 4
    assert policy.config.obs_parts == {"workspace": (84, 84, 3), "state": (8,)}
    assert sum(p.numel() for p in policy.parameters()) < 300_000
    # Each DAgger round's CNN continues from the last one; the state settings start afresh.
    assert _dagger_config(cfg, setting).retrain == "warm"
    assert _dagger_config(cfg, SETTINGS["few"]).retrain == "scratch"


@pytest.mark.slow
def test_dagger_lifts_the_few_demonstrations_learner(tmp_path):
    from protege.demos.arm import run_arm_demo

    run = run_arm_demo(tmp_path / "arm", ArmDemoConfig(settings=("few",), gif=False), log=None)
    success = run.success("few")
    assert success[-1] >= success[0] + 0.3, success
