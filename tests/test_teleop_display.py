"""``teleop`` in a real X window: a person (xdotool) takes over from a learner and hands back.

Starts its own Xvfb server, runs ``protege.teleop.session.teleop`` with a saved protege Policy
on cartpole in a subprocess on that display, waits for the window, holds SPACE (take over)
and the right arrow (push right) for about a second, releases them, lets the learner drive
again, then presses ESC. The test notes the wall-clock time just before and just after it
sent SPACE's keydown and keyup; the per-step timestamps of ``<store>.teleop.jsonl`` must show
exactly the steps decided in between labeled and driven by the person (one frame of
tolerance at each edge), and no others.

Needs Xvfb and xdotool (``make system-deps`` installs them); skipped, saying so, without.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from protege import tasks
from protege.data.episode import EXPERT
from protege.data.store import Store
from protege.policies import Policy, PolicyConfig
from protege.rollout.loop import count_interventions
from protege.teleop.log import log_path

pytestmark = pytest.mark.display

FPS = 30
HOLD = 1.0  # seconds SPACE + Right are held

SCRIPT = """
import json, sys
from protege.teleop.session import teleop
summary = teleop("cartpole", sys.argv[1], episodes=10_000, policy=sys.argv[2], fps={fps})
print("SUMMARY " + json.dumps(summary.to_dict()), flush=True)
"""


@pytest.fixture
def xvfb() -> Iterator[str]:
    with xvfb_display() as display:
        yield display


@contextlib.contextmanager
def xvfb_display() -> Iterator[str]:
    """A private Xvfb server (a free display number, chosen by Xvfb), stopped at the end;
    skips (fails under ``PROTEGE_REQUIRE_DISPLAY``) without Xvfb and xdotool."""
    missing = [tool for tool in ("Xvfb", "xdotool") if shutil.which(tool) is None]
    if missing:
        why = f"{' and '.join(missing)} not installed (`make system-deps` installs them)"
        if os.environ.get("PROTEGE_REQUIRE_DISPLAY"):  # CI (.ci/run): the window must be tested
            pytest.fail(why)
        pytest.skip(why)
    read_fd, write_fd = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        # Read the whole line before anything else: Xvfb writes the number and the newline
        # separately, and dies of SIGPIPE if the pipe is closed in between.
        number, deadline = b"", time.monotonic() + 10.0
        while not number.endswith(b"\n") and time.monotonic() < deadline:
            ready, _, _ = select.select([read_fd], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(read_fd, 64) if ready else b""
            if not chunk:
                break
            number += chunk
        if not number.strip():
            pytest.fail("Xvfb did not report a display number within 10 s")
        yield f":{number.decode().strip()}"
    finally:
        os.close(read_fd)
        server.terminate()
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()


def xdotool(display: str, *args: str, timeout: float = 10.0) -> str:
    out = subprocess.run(
        ["xdotool", *args],
        env={**os.environ, "DISPLAY": display},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if out.returncode != 0:
        raise RuntimeError(f"xdotool {' '.join(args)} failed ({out.returncode}): {out.stderr}")
    return out.stdout.strip()


def teleop_window(display: str, pid: int, wait: float = 15.0) -> tuple[str, str]:
    """(window id, title) of the process's window once it has its own title. X may show a
    window a moment before its title is set, and SDL may replace the first window it maps
    (then the id found first is gone, or goes while ``search`` walks the window tree:
    BadWindow), so look again until one answers."""
    deadline = time.monotonic() + wait
    while True:
        try:
            found = xdotool(display, "search", "--sync", "--pid", str(pid), timeout=wait).split()
        except RuntimeError as exc:  # a window went away while xdotool walked the tree
            if "BadWindow" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)
            continue
        for wid in found:
            try:
                name = xdotool(display, "getwindowname", wid)
            except RuntimeError:  # the window went away between search and query
                continue
            if "protege" in name or time.monotonic() >= deadline:
                return wid, name
        if time.monotonic() >= deadline:
            return found[0], ""
        time.sleep(0.05)


def focus(display: str, pid: int, wait: float = 15.0) -> str:
    """Focus the process's window; the id focused. SDL may replace the window found first
    after its title is set (``windowfocus`` then fails with BadWindow), or the window may not
    be mapped yet (X refuses focus to a window that is not viewable: BadMatch): try again."""
    deadline = time.monotonic() + wait
    while True:
        wid, _ = teleop_window(display, pid, max(0.1, deadline - time.monotonic()))
        try:
            xdotool(display, "windowfocus", wid)
            return wid
        except RuntimeError as exc:
            transient = "BadWindow" in str(exc) or "BadMatch" in str(exc)
            if not transient or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def timed_key(display: str, action: str, key: str) -> tuple[float, float]:
    """Send one key event; (Unix time before sending, Unix time once the X server has
    processed it: the chained ``getmouselocation`` is a round trip on the same connection)."""
    before = time.time()
    xdotool(display, action, key, "getmouselocation")
    return before, time.time()


def test_person_takes_over_in_a_real_window(xvfb: str, tmp_path: Path) -> None:
    t0 = time.perf_counter()
    task = tasks.make("cartpole")
    policy_dir = tmp_path / "learner"
    Policy(PolicyConfig.for_spaces(*task.spaces)).save(policy_dir)  # untrained: it drives badly
    store = tmp_path / "hg"

    env = {**os.environ, "DISPLAY": xvfb, "SDL_VIDEODRIVER": "x11"}
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT.format(fps=FPS), str(store), str(policy_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # xdotool 3.2016 cannot match SDL's UTF8_STRING titles with --name; the window's
        # _NET_WM_PID finds it, and its name is checked after.
        wid, name = teleop_window(xvfb, proc.pid)
        assert "protege teleop" in name
        wid = focus(xvfb, proc.pid)
        xdotool(xvfb, "mousemove", "--window", wid, "50", "50")
        time.sleep(0.8)  # the learner drives
        xdotool(xvfb, "keydown", "Right", "getmouselocation")
        pressed = timed_key(xvfb, "keydown", "space")  # take over, pushing right
        time.sleep(HOLD)
        released = timed_key(xvfb, "keyup", "space")  # hand back
        xdotool(xvfb, "keyup", "Right")
        time.sleep(0.6)  # the learner drives again
        xdotool(xvfb, "key", "Escape")
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    summary = json.loads(out.split("SUMMARY ", 1)[1])

    data = Store.open(store).transitions()
    labeled, human = data.labeled.astype(bool), data.actor == EXPERT
    lines = [json.loads(x) for x in log_path(store).read_text().splitlines()]
    # When each step was decided (Unix time), from the per-step log.
    decided = np.concatenate([np.add(x["t0_unix"], x["t_wall"]) for x in lines])
    assert len(decided) == len(labeled) and (np.diff(decided) > 0).all()
    frame = 1.0 / FPS
    held = (decided > pressed[1] + frame) & (decided < released[0] - frame)
    free = (decided < pressed[0] - frame) | (decided > released[1] + frame)
    edges = ~held & ~free  # within one frame of sending the keydown or the keyup
    assert held.sum() >= 5 and edges.sum() <= 8, (held.sum(), edges.sum())  # a loaded
    # machine may tick slower than FPS: what is checked is which steps, not how many
    assert labeled[held].all(), "a step decided while SPACE was held is not labeled"
    assert not labeled[free].any(), "a step decided while SPACE was up is labeled"
    assert human[held].all() and not human[free].any()
    np.testing.assert_array_equal(labeled, human)
    # One hold of SPACE: the labeled steps are one contiguous stretch (across episodes),
    # all "push right", with learner steps before and after.
    n_labels = int(labeled.sum())
    idx = np.flatnonzero(labeled)
    assert idx[-1] - idx[0] + 1 == n_labels
    assert (data.actions[labeled] == 1).all() and (data.executed[labeled] == 1).all()
    assert idx[0] > 0 and idx[-1] < len(labeled) - 1

    assert summary["quit"] and summary["labels"] == n_labels
    assert summary["human_steps"] == n_labels and summary["steps"] == len(labeled)
    assert summary["episodes"] == len(data.episode_lengths)
    # One takeover, counted by the one rule (none in an episode the person drove throughout).
    per_episode = [count_interventions(np.array(x["in_control"], bool)) for x in lines]
    assert summary["interventions"] == sum(per_episode) <= 2
    assert [e.extras["interventions"] for e in Store.open(store).index] == per_episode
    # Attention: the seconds charged to the person's steps, about the time SPACE was held.
    dt = np.concatenate([x["dt"] for x in lines])
    assert summary["attention_seconds"] == pytest.approx(dt[labeled].sum(), abs=1e-3)
    # It is decided[last] − decided[first − 1] (each step is charged the time since the one
    # before), so it lies within the hold's bounds widened by a frame and a tick at each end.
    tick = float(np.diff(decided).max())
    shortest, longest = released[0] - pressed[1], released[1] - pressed[0]
    assert shortest - 2 * frame - tick <= summary["attention_seconds"] <= longest + 2 * frame + tick
    assert len(lines) == summary["episodes"]
    np.testing.assert_array_equal(np.concatenate([x["in_control"] for x in lines]), labeled)
    learner = np.concatenate([x["learner_actions"] for x in lines])
    np.testing.assert_array_equal(data.executed[~labeled], learner[~labeled])
    assert time.perf_counter() - t0 < 20
