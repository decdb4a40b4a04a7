"""protege's MuJoCo rendering set-up: the GL backend choice and the blank-frame check (no
MuJoCo needed; frames themselves are tested in ``tests/test_arm_tasks.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from protege.tasks import mujoco_render


@pytest.fixture
def no_display(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in ("MUJOCO_GL", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_headless_picks_egl_when_libegl_is_there(no_display) -> None:
    no_display.setattr(mujoco_render.ctypes.util, "find_library", lambda name: f"lib{name}.so")
    assert mujoco_render.ensure_gl_backend() == "egl"
    assert mujoco_render.os.environ["MUJOCO_GL"] == "egl"


def test_headless_falls_back_to_osmesa_without_libegl(no_display) -> None:
    no_display.setattr(mujoco_render.ctypes.util, "find_library", lambda name: None)
    assert mujoco_render.ensure_gl_backend() == "osmesa"
    assert mujoco_render.os.environ["MUJOCO_GL"] == "osmesa"


def test_a_users_choice_or_a_display_is_left_alone(no_display) -> None:
    no_display.setenv("MUJOCO_GL", "osmesa")
    assert mujoco_render.ensure_gl_backend() == "osmesa"
    no_display.delenv("MUJOCO_GL")
    no_display.setenv("DISPLAY", ":0")
    assert mujoco_render.ensure_gl_backend() == "glfw"
    assert "MUJOCO_GL" not in mujoco_render.os.environ


def test_blank_frames_are_caught() -> None:
    assert mujoco_render.is_blank(np.zeros((84, 84, 3), np.uint8))
    assert mujoco_render.is_blank(np.full((84, 84, 3), 255, np.uint8))
    rng = np.random.default_rng(0)
    assert not mujoco_render.is_blank(rng.integers(0, 256, (84, 84, 3), dtype=np.uint8))
