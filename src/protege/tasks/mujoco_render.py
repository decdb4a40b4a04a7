"""Offscreen MuJoCo pixels on a CPU: the GL backend, one renderer per process, fast settings.

Three facts of this machine kind decide the design (``../shared/references``, measured):

* **Backend.** Without a display MuJoCo needs ``MUJOCO_GL=egl`` (Mesa's llvmpipe renders in
  software) or ``osmesa``; unset, the first render fails with "OpenGL platform library has not
  been loaded". :func:`ensure_gl_backend` picks one before ``mujoco`` is first imported.
* **One renderer per process.** A second GL renderer created in a process after closing
  another returned all-black frames in trials, and envs come and go all the time (every
  evaluation makes a vector env and closes it). So protege keeps one :class:`SharedRenderer`
  per image size for the life of the process, shared by every env in it (each env passes its
  own model and data; the GL context holds the meshes and textures of the first model, and
  every env of one task has the same ones) and closed once, at exit.
* **Speed.** Meta-World's default render asks for a 4096² shadow map and 4× multisampling:
  ~3-10 frames/s in software. Without shadows, reflections and multisampling (
  :data:`FAST`), ~110-150 frames/s at 84×84 (``benchmarks/mujoco_render.py``).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes.util
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from protege.errors import ConfigError

FAST = True
"""Default of ``fast`` in :func:`renderer`: no shadows, reflections or multisampling."""


def ensure_gl_backend() -> str:
    """Set ``MUJOCO_GL`` when it is unset and there is no display; return the backend.

    ``egl`` when libEGL is found, else ``osmesa`` (``apt-get install libosmesa6``). With a
    display (``DISPLAY`` or ``WAYLAND_DISPLAY``) or a value set by the user, nothing changes.
    It must run before ``mujoco`` is first imported (MuJoCo reads the variable then): the
    task modules call it before importing Meta-World or gymnasium-robotics.
    """
    current = os.environ.get("MUJOCO_GL", "")
    if current or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return current or "glfw"
    backend = "egl" if ctypes.util.find_library("EGL") else "osmesa"
    # If mujoco is already imported its default context class is chosen; protege's renderer
    # picks the backend's class itself (:func:`_gl_context`), so the order does not matter.
    os.environ["MUJOCO_GL"] = backend
    return backend


def _gl_context(width: int, height: int) -> Any:
    """A GL context of the backend :func:`ensure_gl_backend` chose (EGL or OSMesa taken
    directly, so it works even when ``mujoco`` was imported before ``MUJOCO_GL`` was set)."""
    backend = ensure_gl_backend()
    if backend == "egl":
        from mujoco.egl import GLContext
    elif backend == "osmesa":
        from mujoco.osmesa import GLContext
    else:
        from mujoco.gl_context import GLContext
    return GLContext(width, height)


def fast_settings(model: Any) -> None:
    """No shadow map and no multisampling in ``model``'s offscreen buffer (read when the GL
    context of a renderer is made, so call it before)."""
    model.vis.quality.offsamples = 0
    model.vis.quality.shadowsize = 0


class SharedRenderer:
    """One GL context, MuJoCo render context and scene of one image size.

    ``render(model, data, camera)`` draws any env's state through it. Made by
    :func:`renderer`; never make a second one of the same size in a process.
    """

    def __init__(self, model: Any, width: int, height: int, fast: bool) -> None:
        import mujoco

        if fast:
            fast_settings(model)
        glob = model.vis.global_
        glob.offwidth, glob.offheight = max(glob.offwidth, width), max(glob.offheight, height)
        self.width, self.height, self.fast = width, height, fast
        self._gl = _gl_context(width, height)
        self._gl.make_current()
        self._context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._context)
        self._rect = mujoco.MjrRect(0, 0, width, height)
        self._scene = mujoco.MjvScene(model, maxgeom=10_000)
        self._option = mujoco.MjvOption()
        self._camera = mujoco.MjvCamera()
        self._pixels = np.empty((height, width, 3), np.uint8)
        if fast:
            self._scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
            self._scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0

    def render(self, model: Any, data: Any, camera: str | int | Mapping[str, Any]) -> np.ndarray:
        """An (height, width, 3) uint8 frame of ``data`` from ``camera``, in image order (row
        0 at the top of what the camera's y axis calls up).

        ``camera``: a fixed camera of the model (name or id), or a free camera's settings
        (``lookat``, ``distance``, ``azimuth``, ``elevation``, as gymnasium's MuJoCo envs
        give them).
        """
        import mujoco

        cam = self._camera
        if isinstance(camera, Mapping):
            cam.type = mujoco.mjtCamera.mjCAMERA_FREE
            cam.fixedcamid = -1
            for key, value in camera.items():
                if isinstance(value, np.ndarray | list | tuple):
                    getattr(cam, key)[:] = value
                else:
                    setattr(cam, key, value)
        else:
            cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
            cam.fixedcamid = camera_id(model, camera)
        self._gl.make_current()
        mujoco.mjv_updateScene(
            model, data, self._option, None, cam, mujoco.mjtCatBit.mjCAT_ALL, self._scene
        )
        mujoco.mjr_render(self._rect, self._scene, self._context)
        mujoco.mjr_readPixels(self._pixels, None, self._rect, self._context)
        return self._pixels[::-1].copy()  # OpenGL's rows run bottom to top

    def close(self) -> None:
        self._context.free()
        self._gl.free()


def camera_id(model: Any, camera: str | int) -> int:
    """The id of ``camera`` in ``model``; a ConfigError naming the cameras there is none."""
    import mujoco

    if isinstance(camera, int):
        cid = camera if 0 <= camera < model.ncam else -1
    else:
        cid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
    if cid < 0:
        names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
        raise ConfigError(f"camera {camera!r}: no such camera; the model has {names}")
    return cid


_RENDERERS: dict[tuple[str, int, int, bool], SharedRenderer] = {}


def renderer(scene: str, model: Any, width: int, height: int, fast: bool = FAST) -> SharedRenderer:
    """This process's renderer of ``scene`` (e.g. a Meta-World task's name) at this size,
    made from ``model`` the first time it is asked for and kept until exit."""
    key = (scene, int(width), int(height), bool(fast))
    if key not in _RENDERERS:
        ensure_gl_backend()
        first = not _RENDERERS
        _RENDERERS[key] = SharedRenderer(model, int(width), int(height), fast)
        if first:
            # After the GL context: MuJoCo's EGL module registers eglTerminate at exit when
            # it makes its first context, and exit handlers run last-registered first.
            atexit.register(_close_all)
    return _RENDERERS[key]


def _close_all() -> None:
    """Free the GL contexts before MuJoCo terminates the EGL display at exit (an EGL error
    is printed at exit otherwise)."""
    while _RENDERERS:
        _, r = _RENDERERS.popitem()
        with contextlib.suppress(Exception):  # the process is ending either way
            r.close()


def is_blank(frame: np.ndarray, min_std: float = 2.0) -> bool:
    """True for a frame of one flat colour (all black, all white): a failed render."""
    return float(np.asarray(frame, np.float32).std()) < min_std
