"""Digdag's ``.dig`` file, the subset offload runs, parsed into a tree of tasks.

Supported: ``+task`` children run in order, ``_parallel`` (``true`` or ``{limit: N}``),
``_background``, ``_export`` (inherited params, ``docker:`` and ``ecs:`` among them),
``_env``, ``_retry`` (a count or ``{limit, interval, interval_type}``), ``_error`` (tasks
run when the task fails), ``_check`` (a task run after the task succeeded), ``${param}``
substitution, the command operators ``sh>``, ``py>`` and ``rb>``, and the operators
that run inside the engine (:mod:`offload.workflow.engineops`). Any other key of a task
is a param of that task (as in Digdag, where ``py>`` passes them to the function by
name). Every problem in the file is reported at once, naming the file, the task and
the key.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import yaml

from offload.executor.errors import ConfigError
from offload.executor.models import Problem
from offload.workflow import yamlload
from offload.workflow.directives import Parallelism, RetryPolicy, parse_flag, parse_parallel, parse_retry
from offload.workflow.engineops import ENGINE_OPERATORS, engine_problems, templates_of

COMMAND_OPERATORS = ("sh>", "py>", "rb>")
OPERATORS = COMMAND_OPERATORS + ENGINE_OPERATORS
DIRECTIVES = ("_export", "_env", "_retry", "_error", "_parallel", "_background", "_after", "_check", "_do", "_else_do", "_workdir")
#: Top-level keys of a workflow file that configure the session, not a task.
SESSION_KEYS = ("timezone", "schedule")


@attrs.frozen
class Task:
    """One node of the workflow: an operator task (``operator`` set) or a group (``children``).

    ``body`` is the task's mapping as written: the engine operators make their
    subtasks from it (``_do``) at run time; ``templates`` are those bodies parsed, for
    the checks made before a run."""

    name: str
    operator: str | None = None
    command: Any = None
    params: dict[str, Any] = attrs.field(factory=dict)
    export: dict[str, Any] = attrs.field(factory=dict)
    env: dict[str, str] = attrs.field(factory=dict)
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    parallel: Parallelism = attrs.field(factory=Parallelism)
    background: bool = False
    #: ``_after``: the siblings (``+name``) this child of a ``_parallel`` group waits for
    after: tuple[str, ...] = ()
    children: tuple[Task, ...] = ()
    error: Task | None = None
    check: Task | None = None
    body: dict[str, Any] = attrs.field(factory=dict)
    templates: tuple[Task, ...] = ()
    #: the directory of the workflow file the task comes from (``call>`` paths start there)
    origin: str = ""

    @property
    def is_group(self) -> bool:
        return self.operator is None

    def walk(self) -> Iterator[Task]:
        """This task and every task under it, in order (``_do``, ``_check`` and ``_error`` included)."""
        yield self
        for child in (*self.children, *self.templates, *((self.check,) if self.check else ()), *((self.error,) if self.error else ())):
            yield from child.walk()


@attrs.frozen
class Workflow:
    path: str
    name: str
    root: Task
    timezone: str = "UTC"

    @property
    def project_dir(self) -> str:
        return os.path.dirname(os.path.abspath(self.path))

    def operator_tasks(self) -> list[Task]:
        return [t for t in self.root.walk() if not t.is_group]


class _Parser:
    def __init__(self, source: str, origin: str) -> None:
        self.source, self.origin = source, origin
        self.problems: list[Problem] = []

    def problem(self, task: str, key: str | None, message: str) -> None:
        where = f"{self.source}: {task}" + (f": {key}" if key else "")
        self.problems.append(Problem(where, message, fatal=True))

    def task(self, name: str, body: Any) -> Task:
        if body is None:
            body = {}
        if isinstance(body, str) or not isinstance(body, Mapping):
            self.problem(name, None, f"must be a mapping of keys (an operator such as 'sh>', or '+child' tasks), got {type(body).__name__}")
            return Task(name=name, origin=self.origin)
        workdir = body.get("_workdir")
        if workdir is not None:
            # the body of a workflow file that call> read from another directory
            outer = self.origin
            self.origin = os.path.normpath(os.path.join(outer, str(workdir)))
            try:
                return self._task(name, {k: v for k, v in body.items() if k != "_workdir"})
            finally:
                self.origin = outer
        return self._task(name, body)

    def _task(self, name: str, body: Mapping[Any, Any]) -> Task:
        operators = [k for k in body if isinstance(k, str) and k.endswith(">")]
        children = []
        params: dict[str, Any] = {}
        for key, value in body.items():
            if not isinstance(key, str):
                self.problem(name, str(key), "keys must be strings")
            elif key.startswith("+"):
                if len(key) == 1:
                    self.problem(name, key, "a task name is needed after '+'")
                    continue
                children.append(self.task(f"{name}{key}", value))
            elif key.startswith("_"):
                if key not in DIRECTIVES:
                    self.problem(name, key, f"unknown directive (supported: {', '.join(DIRECTIVES)})")
            elif not key.endswith(">"):
                params[key] = value
        for op in operators:
            if op not in OPERATORS:
                self.problem(name, op, unknown_operator(op))
        if len(operators) > 1:
            self.problem(name, None, f"a task has one operator, this one has {len(operators)}: {', '.join(operators)}")
        operator = operators[0] if len(operators) == 1 and operators[0] in OPERATORS else None
        command = body.get(operator) if operator else None
        if operator and children:
            self.problem(name, operator, "a task with an operator cannot also have '+child' tasks")
        templates: tuple[Task, ...] = ()
        if operator in ENGINE_OPERATORS:
            for key, message in engine_problems(operator, command, body):
                self.problem(name, key, message)
            templates = tuple(self.task(f"{name}^sub", template) for template in templates_of(operator, body))
        elif operator:
            self._check_command(name, operator, command, params)
        elif not children and not operators:
            self.problem(name, None, "has no operator (sh>, py>, rb>, echo>, ...) and no '+child' tasks")
        for key in ("_do", "_else_do"):
            if key in body and operator not in ENGINE_OPERATORS:
                self.problem(name, key, "only for the operators if>, for_each>, for_range> and loop>")
        report = lambda key, message: self.problem(name, key, message)  # noqa: E731 - one line each
        parallel = parse_parallel(body.get("_parallel"), report)
        self._check_after(name, parallel.enabled, children)
        return Task(
            name=name,
            operator=operator,
            command=command,
            params=params,
            export=self._mapping(name, "_export", body.get("_export")),
            env=self._env(name, body.get("_env")),
            retry=parse_retry(body.get("_retry"), report),
            parallel=parallel,
            background=parse_flag("_background", body.get("_background"), report),
            after=self._after(name, body.get("_after")),
            children=tuple(children),
            error=self.task(f"{name}^error", body["_error"]) if "_error" in body else None,
            check=self.task(f"{name}^check", body["_check"]) if "_check" in body else None,
            body=dict(body),
            templates=templates,
            origin=self.origin,
        )

    def _after(self, name: str, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            self.problem(name, "_after", f"must be a sibling's name (+name) or a list of them, got {value!r}")
            return ()
        return tuple(n if n.startswith("+") else f"+{n}" for n in names)

    def _check_after(self, name: str, parallel: bool, children: list[Task]) -> None:
        """``_after`` names earlier siblings, under a ``_parallel`` group only (as in Digdag)."""
        seen: set[str] = set()
        for child in children:
            short = child.name[len(name) :]
            for after in child.after:
                if not parallel:
                    self.problem(child.name, "_after", "is only for a child of a group with _parallel: true (elsewhere children already run in order)")
                elif after not in seen:
                    self.problem(child.name, "_after", f"{after!r} is not a sibling written before this task")
            seen.add(short)

    def _check_command(self, name: str, operator: str, command: Any, params: Mapping[str, Any]) -> None:
        if operator == "sh>" and not isinstance(command, str):
            self.problem(name, operator, f"must be a shell command string, got {type(command).__name__}")
        elif operator == "py>":
            if not isinstance(command, str) or "." not in command or not all(part.isidentifier() for part in command.split(".")):
                self.problem(name, operator, f"must be 'module.function' or 'module.Class.method', got {command!r}")
        elif operator == "rb>":
            if not isinstance(command, str) or "." not in command:
                self.problem(name, operator, f"must be 'Class.method', got {command!r}")
            require = params.get("require")
            if require is not None and not isinstance(require, str):
                self.problem(name, "require", "must be a file name string")

    def _mapping(self, name: str, key: str, value: Any) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            self.problem(name, key, "must be a mapping with string keys")
            return {}
        return dict(value)

    def _env(self, name: str, value: Any) -> dict[str, str]:
        env = self._mapping(name, "_env", value)
        out = {}
        for k, v in env.items():
            if isinstance(v, (dict, list)) or v is None:
                self.problem(name, f"_env.{k}", "must be a string, number or boolean")
            else:
                out[k] = str(v).lower() if isinstance(v, bool) else str(v)
        return out


def unknown_operator(operator: str) -> str:
    """Why offload does not run ``operator`` (Digdag's service operators need their service)."""
    return f"unknown operator (offload runs: {', '.join(OPERATORS)}; Digdag's operators for other services, such as td> or bq>, are not supported)"


def parse_body(name: str, body: Any, source: str, origin: str) -> Task:
    """A task built from ``body`` at run time (generated subtasks), its ``call>`` paths
    starting at ``origin``; :class:`ConfigError` with every problem."""
    parser = _Parser(source, origin)
    task = parser.task(name, body)
    if parser.problems:
        raise ConfigError(parser.problems)
    return task


def parse_document(text: str, source: str, base_dir: str | None = None, root_dir: str | None = None) -> dict[str, Any]:
    """A workflow file's YAML as a mapping; :class:`ConfigError` naming ``source`` otherwise.
    ``!include`` paths start at ``base_dir`` and stay in ``root_dir``."""
    try:
        data = yamlload.load(text, base_dir, root_dir)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigError([Problem(source, f"not valid YAML{at}: {getattr(e, 'problem', None) or e}", fatal=True)]) from None
    if not isinstance(data, Mapping):
        raise ConfigError([Problem(source, f"must be a mapping of tasks, got {type(data).__name__}", fatal=True)])
    return dict(data)


def parse_workflow(text: str, path: str) -> Workflow:
    """The workflow in ``text`` (read from ``path``), or a :class:`ConfigError` with every problem."""
    source = os.path.basename(path)
    here = os.path.dirname(os.path.abspath(path))
    data = parse_document(text, source, here, here)
    name = os.path.splitext(source)[0]
    parser = _Parser(source, os.path.dirname(os.path.abspath(path)))
    body = {k: v for k, v in data.items() if k not in SESSION_KEYS}
    timezone = data.get("timezone", "UTC")
    if not isinstance(timezone, str):
        parser.problem(f"+{name}", "timezone", "must be a time zone name such as UTC or Asia/Tokyo")
        timezone = "UTC"
    root = parser.task(f"+{name}", body)
    if parser.problems:
        raise ConfigError(parser.problems)
    return Workflow(path=os.path.abspath(path), name=name, root=root, timezone=timezone)


#: A workflow file larger than this is refused (``/dev/zero`` would never end).
MAX_WORKFLOW_BYTES = 16 << 20


def read_text(path: str) -> str:
    """The text of the workflow file at ``path``; :class:`ConfigError` when it cannot be one."""
    try:
        with open(path, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ConfigError([Problem(path, "is not a regular file: a workflow is a .dig file", fatal=True)])
            data = f.read(MAX_WORKFLOW_BYTES + 1)
        if len(data) > MAX_WORKFLOW_BYTES:
            raise ConfigError([Problem(path, f"is larger than {MAX_WORKFLOW_BYTES >> 20} MiB: not a workflow file", fatal=True)])
        return data.decode("utf-8")
    except OSError as e:
        raise ConfigError([Problem(path, f"cannot read workflow file: {e.strerror or e}", fatal=True)]) from None
    except UnicodeDecodeError:
        raise ConfigError([Problem(path, "is not a UTF-8 text file", fatal=True)]) from None


def read_workflow_file(path: str, root_dir: str) -> dict[str, Any]:
    """The mapping in the workflow file at ``path`` (``call>`` runs its body)."""
    return parse_document(read_text(path), os.path.basename(path), os.path.dirname(os.path.abspath(path)), root_dir)


def load_workflow(path: str) -> Workflow:
    return parse_workflow(read_text(path), path)
