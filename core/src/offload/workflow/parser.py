"""Digdag's ``.dig`` file, the subset offload runs, parsed into a tree of tasks.

Supported: ``+task`` children run in order, ``_parallel: true``, ``_export`` (inherited
params, ``docker:`` and ``ecs:`` among them), ``_env``, ``_retry`` (a count), ``_error``
(tasks run when the task fails), ``${param}`` substitution, and the operators ``sh>``,
``py>`` and ``rb>``. Any other key of a task is a param of that task (as in
Digdag, where ``py>`` passes them to the function by name). Every problem in the file
is reported at once, naming the file, the task and the key.
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

OPERATORS = ("sh>", "py>", "rb>")
DIRECTIVES = ("_export", "_env", "_retry", "_error", "_parallel")
#: Top-level keys of a workflow file that configure the session, not a task.
SESSION_KEYS = ("timezone", "schedule")


@attrs.frozen
class Task:
    """One node of the workflow: an operator task (``operator`` set) or a group (``children``)."""

    name: str
    operator: str | None = None
    command: Any = None
    params: dict[str, Any] = attrs.field(factory=dict)
    export: dict[str, Any] = attrs.field(factory=dict)
    env: dict[str, str] = attrs.field(factory=dict)
    retry: int = 0
    parallel: bool = False
    children: tuple[Task, ...] = ()
    error: Task | None = None

    @property
    def is_group(self) -> bool:
        return self.operator is None

    def walk(self) -> Iterator[Task]:
        """This task and every task under it, in order (``_error`` tasks included)."""
        yield self
        for child in self.children:
            yield from child.walk()
        if self.error is not None:
            yield from self.error.walk()


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
    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def problem(self, task: str, key: str | None, message: str) -> None:
        where = f"{self.source}: {task}" + (f": {key}" if key else "")
        self.problems.append(Problem(where, message, fatal=True))

    def task(self, name: str, body: Any) -> Task:
        if body is None:
            body = {}
        if isinstance(body, str) or not isinstance(body, Mapping):
            self.problem(name, None, f"must be a mapping of keys (an operator such as 'sh>', or '+child' tasks), got {type(body).__name__}")
            return Task(name=name)
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
                self.problem(name, op, f"unknown operator (supported: {', '.join(OPERATORS)})")
        if len(operators) > 1:
            self.problem(name, None, f"a task has one operator, this one has {len(operators)}: {', '.join(operators)}")
        operator = operators[0] if len(operators) == 1 and operators[0] in OPERATORS else None
        command = body.get(operator) if operator else None
        if operator and children:
            self.problem(name, operator, "a task with an operator cannot also have '+child' tasks")
        if operator:
            self._check_command(name, operator, command, params)
        elif not children and not operators:
            self.problem(name, None, "has no operator (sh>, py>, rb>) and no '+child' tasks")
        error = None
        if "_error" in body:
            error = self.task(f"{name}^error", body["_error"])
        return Task(
            name=name,
            operator=operator,
            command=command,
            params=params,
            export=self._mapping(name, "_export", body.get("_export")),
            env=self._env(name, body.get("_env")),
            retry=self._retry(name, body.get("_retry", 0)),
            parallel=self._bool(name, "_parallel", body.get("_parallel", False)),
            children=tuple(children),
            error=error,
        )

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

    def _retry(self, name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            if isinstance(value, str) and value.isdigit():
                return int(value)
            self.problem(name, "_retry", f"must be a count of retries (0 or more), got {value!r}")
            return 0
        return value

    def _bool(self, name: str, key: str, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        self.problem(name, key, f"must be true or false, got {value!r}")
        return False


def parse_workflow(text: str, path: str) -> Workflow:
    """The workflow in ``text`` (read from ``path``), or a :class:`ConfigError` with every problem."""
    source = os.path.basename(path)
    try:
        data = yamlload.load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigError([Problem(source, f"not valid YAML{at}: {getattr(e, 'problem', None) or e}", fatal=True)]) from None
    if not isinstance(data, Mapping):
        raise ConfigError([Problem(source, f"must be a mapping of tasks, got {type(data).__name__}", fatal=True)])
    name = os.path.splitext(source)[0]
    parser = _Parser(source)
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


def load_workflow(path: str) -> Workflow:
    try:
        with open(path, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ConfigError([Problem(path, "is not a regular file: a workflow is a .dig file", fatal=True)])
            data = f.read(MAX_WORKFLOW_BYTES + 1)
        if len(data) > MAX_WORKFLOW_BYTES:
            raise ConfigError([Problem(path, f"is larger than {MAX_WORKFLOW_BYTES >> 20} MiB: not a workflow file", fatal=True)])
        text = data.decode("utf-8")
    except OSError as e:
        raise ConfigError([Problem(path, f"cannot read workflow file: {e.strerror or e}", fatal=True)]) from None
    except UnicodeDecodeError:
        raise ConfigError([Problem(path, "is not a UTF-8 text file", fatal=True)]) from None
    return parse_workflow(text, path)
