"""The person's preference window in a real X window: xdotool key presses become the answers.

Starts its own Xvfb server (the fixture of ``test_teleop_display.py``), runs a script in a
subprocess on that display that shows five CartPole segment pairs, one after the other, with
:class:`protege.teleop.preference_window.PersonLabeler` and commits each answer to a
:class:`~protege.rewards.preference_data.PreferenceFile` through the reward source's own
``query``. The test waits for each pair's window to be up (the script prints ``ASK k``),
presses one key (Left, Right, Up, Down, then ``1``), and checks the file records exactly the
answers those keys mean, in order; then the script's last query is stopped with Escape.

Needs Xvfb and xdotool (``make system-deps`` installs them); skipped, saying so, without.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_teleop_display import focus, teleop_window, xdotool, xvfb  # noqa: F401  (the fixture)

pytestmark = pytest.mark.display

SCRIPT = """
import sys
import numpy as np
from protege import tasks
from protege.configs.preferences import PreferenceConfig
from protege.rewards.preference_data import PreferenceFile, Segment
from protege.rewards.preference_model import RewardSpec
from protege.rewards.preference_source import PreferenceReward
from protege.teleop.preference_window import PersonLabeler, StopAsking, state_renderer

task = tasks.make("cartpole")
rng = np.random.default_rng(0)

def segment(n):
    obs = rng.normal(0, 0.05, size=(n, 4)).astype(np.float32)
    return Segment(obs, np.zeros(n, np.int64), obs, np.zeros(n, bool), float(n))

class Announcing(PersonLabeler):
    def ask(self, left, right, update, index):
        print(f"ASK {index}", flush=True)
        return super().ask(left, right, update, index)

labeler = Announcing(state_renderer(task), fps=30, title="protege preferences - test")
file = PreferenceFile.open(sys.argv[1], discrete=True)
source = PreferenceReward(RewardSpec((4,), 2), PreferenceConfig(), file, labeler, seed=0)
try:
    source.query([(segment(5 + k), segment(8)) for k in range(6)], update=0)
except StopAsking:
    print("STOPPED", flush=True)
print("DONE", len(file), flush=True)
"""

KEYS = ["Left", "Right", "Up", "Down", "1"]
EXPECTED = ["left", "right", "equal", "skip", "left"]


def wait_for(proc: subprocess.Popen, text: str, timeout: float = 30.0) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.strip() == text:
            return
    raise AssertionError(f"the window script never printed {text!r}")


def test_key_presses_record_the_right_choices(xvfb: str, tmp_path: Path) -> None:  # noqa: F811
    file = tmp_path / "preferences.jsonl"
    env = {**os.environ, "DISPLAY": xvfb, "SDL_VIDEODRIVER": "x11"}
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(file)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(proc, "ASK 0")
        _, name = teleop_window(xvfb, proc.pid)
        assert "protege preferences" in name
        focus(xvfb, proc.pid)
        for k, key in enumerate(KEYS):
            if k:
                wait_for(proc, f"ASK {k}")
            time.sleep(0.2)  # the pair is on screen
            xdotool(xvfb, "key", key)
        wait_for(proc, f"ASK {len(KEYS)}")
        time.sleep(0.2)
        xdotool(xvfb, "key", "Escape")
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "STOPPED" in out and f"DONE {len(KEYS)}" in out
    lines = [json.loads(x) for x in file.read_text().splitlines()]
    assert [x["choice"] for x in lines] == EXPECTED
    assert [x["index"] for x in lines] == list(range(len(KEYS)))
    assert all(x["source"] == "human" and x["seconds"] > 0 for x in lines)
    # The segments shown are the ones recorded: the left one of pair k has 5 + k steps.
    assert [len(x["left"]["obs"]) for x in lines] == [5 + k for k in range(len(KEYS))]
