"""Runs a ``py>`` task, for ``py_runner.py`` (see there): ``main(["py_runner.py", IO, CALLABLE])``.

Reads ``IO/input.json`` (``{"params": {...}, "task_name": "+flow+task"}``), imports
``pkg.mod`` and calls ``func`` (``pkg.mod.func``), or makes a ``Class`` and calls its
``method`` (``pkg.mod.Class.method``; ``pkg.mod.Class`` alone calls ``run``), passing params by
argument name as Digdag does. Writes ``IO/output.json`` (``store_params``, ``export_params``,
``subtask_config``, and ``error`` when the task failed, then exit status 1). The return value
is ignored, as in Digdag.

A module, not the script itself, so that Python can load it from the bytecode the driver
writes next to it (a script run by its path is compiled every time).
Standard library only, Python 3.8+: this runs in the task's image, where offload is not installed.
"""

from __future__ import annotations

import json
import os
import sys

# Only what every task needs is imported here: each import adds to every py> task's start.
# ``inspect``, ``asyncio`` and ``traceback`` are imported when a task needs them (a class
# with an unusual signature, a coroutine, an error); ``typing`` never.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import types
    from collections.abc import Callable, Mapping
    from typing import Any

INPUT_FILE = "input.json"
OUTPUT_FILE = "output.json"
#: The runner's own files: their frames are not the task's.
RUNNER_FILES = (os.path.abspath(__file__), os.path.join(os.path.dirname(os.path.abspath(__file__)), "py_runner.py"))
EXIT_FAILED = 1
EXIT_USAGE = 2
CO_VARARGS, CO_VARKEYWORDS = 0x04, 0x08


class _Probe:
    def method(self) -> None:
        """Its type and its bound method's are the ones :func:`_parameters` reads fast."""


FUNCTION = type(_Probe.method)
METHOD = type(_Probe().method)
MODULE = type(sys)


class SetupError(Exception):
    """The task can not be called (bad name, missing module or argument): no task traceback.

    ``kind`` is the Python exception class that describes it best, reported as the error class.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        sys.stderr.write("usage: python3 IO/py_runner.py IO_DIR MODULE.FUNCTION|MODULE.CLASS.METHOD\n")
        return EXIT_USAGE
    io_dir, name = argv[1], argv[2]
    label = f"py> {name}"
    _prepare_process(io_dir)
    _remove_stale_output(io_dir)
    import digdag  # noqa: F401  (ours, before anything named digdag the project might find)
    import offload_env  # from IO, put on sys.path by _prepare_process

    try:
        with open(os.path.join(io_dir, INPUT_FILE), encoding="utf-8") as f:
            data = json.load(f)
        task_params = data.get("params") or {}
        if not isinstance(task_params, dict):
            raise ValueError("params must be an object")
    except (OSError, ValueError, AttributeError) as e:
        return _fail(io_dir, offload_env, {"class": "InputError", "message": f"{label}: can not read {INPUT_FILE}: {e}", "backtrace": []})
    offload_env.start(task_params, data.get("task_name"))

    try:
        _call(name, task_params)
    except SetupError as e:
        sys.stderr.write(f"{e}\n")
        return _fail(io_dir, offload_env, {"class": e.kind, "message": str(e), "backtrace": []})
    except SystemExit as e:
        if e.code in (None, 0):
            return _succeed(io_dir, offload_env, label)
        code = e.code if isinstance(e.code, int) else EXIT_FAILED
        message = f"{label}: exited with status {e.code}" if isinstance(e.code, int) else str(e.code)
        sys.stderr.write(f"{message}\n")
        return _fail(io_dir, offload_env, _describe(e, message), code)
    except BaseException as e:  # noqa: BLE001  (any failure of the task's code is the task's result)
        import traceback

        tb = _task_traceback(e.__traceback__)
        traceback.print_exception(type(e), e, tb)
        return _fail(io_dir, offload_env, _describe(e, str(e)))
    return _succeed(io_dir, offload_env, label)


def _prepare_process(io_dir: str) -> None:
    """cwd first on ``sys.path`` (the task's modules), then IO (``offload_env``, ``digdag``).

    Python put the script's directory (IO) first; the task's own modules must win. No
    ``__pycache__`` is written into the project or IO (they may be mounted or uploaded back).
    Line-buffered output, so the task's log reaches the driver while it runs.
    """
    io_abs = os.path.abspath(io_dir)
    sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != io_abs]
    sys.path[0:0] = [os.getcwd(), io_abs]
    sys.dont_write_bytecode = True
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True)


def _remove_stale_output(io_dir: str) -> None:
    """A rerun in the same io directory must not leave the previous run's output behind."""
    try:
        os.remove(os.path.join(io_dir, OUTPUT_FILE))
    except FileNotFoundError:
        pass


def _call(name: str, task_params: dict[str, Any]) -> None:
    label = f"py> {name}"
    target, method = _resolve(name, label)
    if method is None:
        func = target
    else:
        func = _method_of(target, method, task_params, label)
    args, kwargs = _arguments(func, task_params, label)
    result = func(*args, **kwargs)
    if hasattr(result, "__await__"):
        import types

        if isinstance(result, types.CoroutineType):
            import asyncio

            asyncio.run(result)


def _resolve(name: str, label: str) -> tuple[Any, str | None]:
    """``(function, None)`` or ``(class, method name)`` for ``pkg.mod[.Class].name``.

    The longest importable prefix is the module. A ``ModuleNotFoundError`` for a module the
    task's code imports (not the prefix itself) is the task's error, with its traceback.
    """
    parts = name.split(".")
    if len(parts) < 2 or not all(part.isidentifier() for part in parts):
        raise SetupError("ValueError", f"{label}: expected MODULE.FUNCTION or MODULE.CLASS.METHOD")
    module = None
    missing = parts[0]
    for end in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:end])
        try:
            __import__(module_name)
            module = sys.modules[module_name]
        except ModuleNotFoundError as e:
            if e.name is not None and (module_name == e.name or module_name.startswith(e.name + ".")):
                missing = e.name
                continue
            raise
        break
    if module is None:
        raise SetupError("ModuleNotFoundError", f"{label}: no module named {missing!r} (searched from {os.getcwd()})")
    owner: Any = module
    owner_name = module_name
    for attr in parts[end:-1]:
        if not hasattr(owner, attr):
            if missing == f"{owner_name}.{attr}" and hasattr(owner, "__path__"):  # a package: which was meant?
                message = f"no module named {missing!r} (searched from {os.getcwd()}), and package {owner_name!r} has no attribute {attr!r}"
                raise SetupError("ModuleNotFoundError", f"{label}: {message}")
            raise SetupError("AttributeError", f"{label}: {owner_name!r} has no attribute {attr!r}")
        owner = getattr(owner, attr)
        owner_name += "." + attr
    last = parts[-1]
    if isinstance(owner, type):
        if _static_attr(owner, last) is None:
            raise SetupError("AttributeError", f"{label}: class {owner_name!r} has no method {last!r}")
        return owner, last
    if not isinstance(owner, MODULE):
        raise SetupError("TypeError", f"{label}: {owner_name!r} is neither a module nor a class")
    if not hasattr(owner, last):
        raise SetupError("AttributeError", f"{label}: module {owner_name!r} has no attribute {last!r}")
    target = getattr(owner, last)
    if isinstance(target, type):
        return target, "run"  # Digdag: ``py>: pkg.mod.Class`` runs ``Class().run()``
    if not callable(target):
        raise SetupError("TypeError", f"{label}: {name!r} is not callable")
    return target, None


def _method_of(cls: type, method: str, task_params: dict[str, Any], label: str) -> Callable[..., Any]:
    """The bound method to call: static and class methods need no instance."""
    raw = _static_attr(cls, method)
    if raw is None:
        raise SetupError("AttributeError", f"{label}: class {cls.__qualname__!r} has no method {method!r}")
    if isinstance(raw, (staticmethod, classmethod)):
        func: Callable[..., Any] = getattr(cls, method)
        return func
    init = cls.__init__  # type: ignore[misc]
    if init is object.__init__:
        instance = cls()
    else:
        args, kwargs = _arguments(init, task_params, label, of=f"{cls.__qualname__}.__init__")
        instance = cls(*args, **kwargs)
    func = getattr(instance, method)
    return func


def _static_attr(cls: type, name: str) -> Any:
    """``inspect.getattr_static(cls, name, None)``; the class's own MRO looked at first, so a
    method defined in the class costs no ``inspect`` import."""
    for klass in type.__dict__["__mro__"].__get__(cls):
        namespace = type.__dict__["__dict__"].__get__(klass)
        if name in namespace:
            return namespace[name]
    import inspect

    return inspect.getattr_static(cls, name, None)


def _parameters(func: Callable[..., Any]) -> list[tuple[str, str, bool]] | None:
    """``(name, kind, has a default)`` of each parameter, as ``inspect.signature`` gives them
    (kinds ``positional_only``, ``positional``, ``var_positional``, ``keyword_only``,
    ``var_keyword``); ``None`` for a callable without a signature (a builtin).

    A plain function, or a plain method bound to an instance, is read from its code object;
    anything else (a decorated function, a ``functools.partial``...) goes to ``inspect``.
    """
    bound = type(func) is METHOD
    plain = func.__func__ if bound else func  # type: ignore[attr-defined]
    if type(plain) is FUNCTION and not hasattr(plain, "__wrapped__") and not hasattr(plain, "__signature__"):
        code = plain.__code__
        if not (bound and code.co_argcount == 0):
            return _from_code(code, len(plain.__defaults__ or ()), plain.__kwdefaults__ or {})[1 if bound else 0 :]
    import inspect

    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    return [(p.name, p.kind.name.lower().replace("positional_or_keyword", "positional"), p.default is not p.empty) for p in signature.parameters.values()]


def _from_code(code: types.CodeType, defaults: int, kwdefaults: Mapping[str, Any]) -> list[tuple[str, str, bool]]:
    names = code.co_varnames
    positional, posonly, kwonly = code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount
    found = [(names[i], "positional_only" if i < posonly else "positional", i >= positional - defaults) for i in range(positional)]
    at = positional + kwonly
    if code.co_flags & CO_VARARGS:
        found.append((names[at], "var_positional", False))
        at += 1
    found += [(name, "keyword_only", name in kwdefaults) for name in names[positional : positional + kwonly]]
    if code.co_flags & CO_VARKEYWORDS:
        found.append((names[at], "var_keyword", False))
    return found


def _arguments(func: Callable[..., Any], task_params: Mapping[str, Any], label: str, of: str | None = None) -> tuple[list[Any], dict[str, Any]]:
    """Digdag's binding: each argument from the param of its name; defaults kept; ``**kw`` gets all.

    ``of`` names an ``__init__`` (unbound: its ``self`` is skipped) in the error messages.
    """
    parameters = _parameters(func)
    if parameters is None:  # a builtin without a signature: call it bare
        return [], {}
    if of is not None:
        parameters = parameters[1:]
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    positional_gap = False
    takes_all = False
    for name, kind, has_default in parameters:
        if kind == "var_keyword":
            takes_all = True
        elif kind == "var_positional":
            continue
        elif name in task_params:
            if kind == "positional_only":
                if not positional_gap:
                    args.append(task_params[name])
            else:
                kwargs[name] = task_params[name]
        elif not has_default:
            where = "" if of is None else f" of {of}"
            raise SetupError("TypeError", f"{label}: required argument {name!r}{where} is not set in the task's params")
        elif kind == "positional_only":
            positional_gap = True
    if takes_all:
        kwargs = dict(task_params)
    return args, kwargs


def _task_traceback(tb: types.TracebackType | None) -> types.TracebackType | None:
    """The traceback from the first frame of the task's code on (the runner's and importlib's dropped)."""
    while tb is not None and _is_machinery(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    return tb


def _is_machinery(filename: str) -> bool:
    if filename.startswith("<frozen importlib"):
        return True
    path = os.path.abspath(filename)
    importlib = sys.modules.get("importlib")  # the task's code may have used import_module
    return path in RUNNER_FILES or (importlib is not None and os.path.dirname(path) == os.path.dirname(os.path.abspath(importlib.__file__ or "")))


def _describe(e: BaseException, message: str) -> dict[str, Any]:
    cls = type(e)
    kind = cls.__qualname__ if cls.__module__ in ("builtins", "__main__") else f"{cls.__module__}.{cls.__qualname__}"
    import traceback

    frames = traceback.extract_tb(_task_traceback(e.__traceback__)) if e.__traceback__ is not None else []
    backtrace = [f'File "{frame.filename}", line {frame.lineno}, in {frame.name}' for frame in frames]
    return {"class": kind, "message": message, "backtrace": backtrace}


def _succeed(io_dir: str, env: Any, label: str) -> int:
    try:
        _write_output(io_dir, env.output())
    except (TypeError, ValueError) as e:  # params changed in place with values JSON can not hold
        error = {"class": "TypeError", "message": f"{label}: output params can not be written as JSON: {e}", "backtrace": []}
        sys.stderr.write(f"{error['message']}\n")
        return _fail(io_dir, env, error)
    return 0


def _fail(io_dir: str, env: Any, error: dict[str, Any], code: int = EXIT_FAILED) -> int:
    _write_output(io_dir, env.output(error))
    return code


def _write_output(io_dir: str, data: dict[str, Any]) -> None:
    """Write ``output.json`` atomically: a reader never sees half of it."""
    text = json.dumps(data, allow_nan=False, ensure_ascii=False)
    path = os.path.join(io_dir, OUTPUT_FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
