"""The task registry: ``make(name)``, ``register(task)``, ``names()``, and plugins.

A *plugin* is a module whose import registers tasks (:func:`register`; a task carries its own
teleop keys and HG-DAgger safe set, :class:`~protege.tasks.base.Task`) or heads, so the CLI
knows them. The CLI imports the plugins named by ``--plugin`` and by the ``PROTEGE_PLUGINS``
environment variable (:func:`load_plugins`); installed packages declare theirs as entry points
of the group ``protege.plugins``, which the registry imports with the built-in tasks::

    [project.entry-points."protege.plugins"]
    my-tasks = "my_package.protege_tasks"    # a module, or "pkg.mod:function" to call
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType

from protege.errors import ConfigError
from protege.tasks.base import EpisodeOutcome, Task, action_shape, is_discrete

PLUGINS_ENV = "PROTEGE_PLUGINS"
"""Environment variable of plugins the CLI imports, ``os.pathsep``-separated."""
ENTRY_POINT_GROUP = "protege.plugins"
"""Entry-point group of installed packages' plugins."""

_REGISTRY: dict[str, Task] = {}


class UnknownTaskError(ConfigError):
    """``make`` was given a name no imported module registered."""

    def __init__(self, name: str, known: Iterable[str]):
        self.name = name
        super().__init__(
            f"unknown task {name!r}; registered tasks: {', '.join(known)}. A task of your own "
            "is known once the module that registers it (protege.tasks.register) is imported: "
            "`protege --plugin my_tasks.py COMMAND ...` (a .py file or a module name; "
            f"repeatable), or list it in ${PLUGINS_ENV}, or declare a "
            f"'{ENTRY_POINT_GROUP}' entry point; in Python, import the module"
        )


def register(task: Task, *, overwrite: bool = False) -> Task:
    """Add a task to the registry so ``make(task.name)`` and the CLI's ``--task`` find it."""
    if task.name in _REGISTRY and not overwrite:
        raise ConfigError(f"task {task.name!r} is already registered (pass overwrite=True)")
    _REGISTRY[task.name] = task
    return task


def make(name: str) -> Task:
    """Return the registered task called ``name``."""
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownTaskError(name, sorted(_REGISTRY)) from None


def names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


_loaded = False


def _load_builtin() -> None:
    """Import protege's own task modules, then the installed packages' plugins."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    _load_entry_points()


# Modules that register protege's own tasks on import.
_BUILTIN_MODULES: list[str] = [
    "protege.tasks.classic",
    "protege.tasks.lane",
    "protege.tasks.carracing",
    "protege.tasks.obstacle",
    "protege.tasks.metaworld",
    "protege.tasks.fetch",
]


# ================================================================================ plugins
def load_plugins(specs: Iterable[str] = (), *, env: bool = False) -> list[ModuleType]:
    """Import each plugin in ``specs``: a module name (``my_pkg.tasks``) or a ``.py`` path.

    A file is imported as a module named after it, and its folder goes on ``sys.path`` (at
    the end) so it can import the modules next to it, as a script would. With ``env``, the
    entries of ``$PROTEGE_PLUGINS`` follow ``specs``. A plugin already imported is not
    imported again, so its registrations never run twice. Raises ConfigError naming the
    plugin when it cannot be found or its import fails.

    Example:
        >>> protege.tasks.load_plugins(["my_tasks.py"])
        >>> protege.tasks.make("my-cartpole")
    """
    specs = list(specs)
    if env:
        specs += plugins_from_env()
    modules = [_import_plugin(spec) for spec in specs]
    for spec in specs:
        name = _loaded_name(spec)
        if name not in _LOADED:
            _LOADED.append(name)
    return modules


_LOADED: list[str] = []
"""Every plugin :func:`load_plugins` imported: a file's resolved path, or a module name."""


def loaded_plugins() -> list[str]:
    """The plugins this process imported with :func:`load_plugins` (files by absolute path),
    in order: what a Ray worker imports to know the same tasks and methods."""
    return list(_LOADED)


def _loaded_name(spec: str) -> str:
    if spec.endswith(".py") or "/" in spec or os.sep in spec:
        return str(Path(spec).expanduser().resolve())
    return spec


def plugins_from_env() -> list[str]:
    """The plugins listed in ``$PROTEGE_PLUGINS`` (separated by ``os.pathsep``)."""
    value = os.environ.get(PLUGINS_ENV, "")
    return [s.strip() for s in value.split(os.pathsep) if s.strip()]


_FILE_PLUGINS: dict[Path, ModuleType] = {}
"""Plugins imported from a file, by resolved path."""


def _import_plugin(spec: str) -> ModuleType:
    if spec.endswith(".py") or "/" in spec or os.sep in spec:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ConfigError(f"plugin {spec}: no such file")
        return _guarded(spec, lambda: _import_file(path))
    return _guarded(spec, lambda: importlib.import_module(spec))


def _guarded(spec: str, load: Callable[[], ModuleType]) -> ModuleType:
    """``load()``, with whatever goes wrong turned into one ConfigError naming ``spec``."""
    try:
        return load()
    except ModuleNotFoundError as exc:
        if exc.name is not None and (spec + ".").startswith(exc.name + "."):  # spec itself
            raise ConfigError(
                f"plugin {spec}: no module named {exc.name!r} (give an importable module "
                "name, or the path of a .py file)"
            ) from None
        raise _import_failed(spec, exc) from exc
    except (Exception, SystemExit) as exc:  # a plugin calling sys.exit fails like one raising
        raise _import_failed(spec, exc) from exc


def _import_file(path: Path) -> ModuleType:
    """Import a .py file once (by resolved path), as a module named after the file."""
    resolved = path.resolve()
    if resolved in _FILE_PLUGINS:
        return _FILE_PLUGINS[resolved]
    name, n = resolved.stem, 0
    while not name.isidentifier() or name in sys.modules:
        n += 1
        name = f"_protege_plugin_{n}"
    spec = importlib.util.spec_from_file_location(name, resolved)
    assert spec is not None and spec.loader is not None  # a .py file always has one
    module = importlib.util.module_from_spec(spec)
    if str(resolved.parent) not in sys.path:
        sys.path.append(str(resolved.parent))
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    _FILE_PLUGINS[resolved] = module
    return module


def _import_failed(spec: str, exc: BaseException) -> ConfigError:
    """One line: which plugin, what went wrong, and where (the plugin's own line if the
    traceback passes through it, else the deepest frame)."""
    if isinstance(exc, SystemExit):
        what = f"it called sys.exit({exc.code!r}) while being imported"
    else:
        what = f"its import failed with {type(exc).__name__}: {exc}"
    return ConfigError(
        f"plugin {spec}: {what}" + (f" ({where})" if (where := _where(spec, exc)) else "")
    )


def _where(spec: str, exc: BaseException) -> str:
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}, line {exc.lineno}"
    frames = traceback.extract_tb(exc.__traceback__)
    origin = _origin(spec)
    own = [f for f in frames if origin is not None and Path(f.filename) == origin]
    if not (own or frames):
        return ""
    frame = (own or frames)[-1]
    return f"{frame.filename}, line {frame.lineno}"


def _origin(spec: str) -> Path | None:
    """The file of a plugin (a path, or a module name's source file), if it can be found."""
    if spec.endswith(".py") or "/" in spec or os.sep in spec:
        return Path(spec).expanduser().resolve()
    try:
        found = importlib.util.find_spec(spec)
    except (ImportError, ValueError):
        return None
    return Path(found.origin).resolve() if found and found.origin else None


def _load_entry_points() -> None:
    """Import the ``protege.plugins`` entry points; a broken one is a warning, not an error
    (it should not stop a command that does not need it)."""
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = ep.load()
            if callable(loaded) and not isinstance(loaded, ModuleType):
                loaded()
        except Exception as exc:
            warnings.warn(
                f"protege plugin {ep.name!r} ({ep.value}): {_import_failed(ep.value, exc)}",
                stacklevel=2,
            )


__all__ = [
    "ENTRY_POINT_GROUP",
    "PLUGINS_ENV",
    "EpisodeOutcome",
    "Task",
    "UnknownTaskError",
    "action_shape",
    "is_discrete",
    "load_plugins",
    "loaded_plugins",
    "make",
    "names",
    "plugins_from_env",
    "register",
]
