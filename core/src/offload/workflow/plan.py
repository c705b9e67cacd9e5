"""What a workflow will do, worked out before anything runs.

Params of a task are assembled in layers, each substituted against the layers before
it: the session's built-ins, the ``_export`` of every ancestor (root first), params
exported by earlier tasks of the same group, params stored by earlier tasks, then the
task's own keys. The static check finds, before launching anything, every problem a
run would hit: a bad ``${...}``, an unknown param that no earlier task could have
stored, a backend config that is wrong for a task, a task no backend can run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from offload.executor.config import fallbacks
from offload.executor.errors import ConfigError
from offload.executor.models import Problem, TaskRequest

if TYPE_CHECKING:
    from offload.executor.executor import Executor
from offload.executor.selection import Selection
from offload.workflow.engineops import ENGINE_OPERATORS, STORELESS, exported_names
from offload.workflow.operators import executor_config, run_settings
from offload.workflow.params import BUILTIN_NAMES, UNKNOWABLE, UnknownParam, check_expressions, references, substitute
from offload.workflow.parser import Task, Workflow
from offload.workflow.secrets import REFERENCE as SECRET_REFERENCE
from offload.workflow.secrets import SecretStore, missing_message, secret_names


class Verbatim(dict[str, Any]):
    """A layer of params that tasks produced: data, merged as it is, never evaluated."""


class Stored(Verbatim):
    """The params tasks stored (``store_params``): merged leaf by leaf into the params
    before them, as Digdag merges them, so a stored ``{"limits": {"memory": 2}}`` keeps
    the other keys of ``limits``."""


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` merged into ``base``: mappings key by key, any other value replaced."""
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        out[key] = deep_merge(old, value) if isinstance(old, Mapping) and isinstance(value, Mapping) else value
    return out


def layered_params(layers: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Merge ``layers`` in order, substituting each against the params before it
    (except :class:`Verbatim` layers: a task's output is not a template)."""
    params: dict[str, Any] = {}
    for layer in layers:
        if isinstance(layer, Stored):
            params = deep_merge(params, layer)
        else:
            params.update(layer if isinstance(layer, Verbatim) else substitute(dict(layer), params))
    return params


def chains(root: Task) -> Iterator[tuple[Task, list[Task]]]:
    """Every task under ``root`` (``root`` included) in the order of :meth:`Task.walk`,
    with the tasks from ``root`` down to it (both included)."""
    stack: list[tuple[Task, list[Task]]] = [(root, [root])]
    while stack:
        task, chain = stack.pop()
        yield task, chain
        below = (*task.children, *task.templates, *((task.check,) if task.check else ()), *((task.error,) if task.error else ()))
        stack.extend((child, [*chain, child]) for child in reversed(below))


@attrs.frozen
class TaskPlan:
    task: Task
    selection: Selection | None
    note: str = ""


def _static_names(chain: list[Task]) -> set[str] | None:
    """The params the last task of ``chain`` surely has; ``None`` when only the run knows."""
    names = set(BUILTIN_NAMES)
    for task in chain:
        names.update(task.export)
        if task.name.endswith("^error") or "^error" in task.name:
            names.add("error")
        if task is not chain[-1] and task.operator in ENGINE_OPERATORS:
            given = exported_names(task.operator, task.command)
            if given is None:
                return None
            names.update(given)
    names.update(chain[-1].params)
    return names


def dry_request(task: Task, params: Mapping[str, Any], project_dir: str, executor: Executor) -> TaskRequest:
    """A request with what chooses the task's backend (its executor config, timeout and
    resources, as plugins' ``offload_validate_config`` see them); :class:`ConfigError`
    when its timeout or resources are wrong."""
    timeout, resources = run_settings(task.name, params)
    return TaskRequest(
        task_id=task.name,
        argv=("true",),
        project_dir=project_dir,
        executor_config=executor_config(params, executor.task_keys),
        timeout=timeout,
        resources=resources,
    )


def _env_problems(source: str, task: Task, secrets: SecretStore) -> list[Problem]:
    """Problems of a task's ``_env``: bad expressions, and secrets that are not set."""
    problems = []
    for key, value in task.env.items():
        where = f"{source}: {task.name}: _env.{key}"
        problems += [Problem(where, message, fatal=True) for message in check_expressions(SECRET_REFERENCE.sub("", value))]
        problems += [Problem(where, missing_message(name), fatal=True) for name in secret_names(value) if secrets.get(name) is None]
    return problems


def _unknowable(source: str, task: Task, session: Mapping[str, Any]) -> list[Problem]:
    """Digdag's built-ins that offload cannot know, wherever the task uses them: reported
    before the run, not when a task in the middle of it needs one."""
    problems = []
    values = [("_export", task.export), *((f"_env.{k}", v) for k, v in task.env.items())]
    values += [(task.operator or "", task.command), *task.params.items()] if not task.is_group else []
    for label, value in values:
        for name in dict.fromkeys(references(value)):
            if name in UNKNOWABLE and name not in session:
                problems.append(
                    Problem(
                        f"{source}: {task.name}: {label}",
                        f"${{{name}}}: Digdag's built-in {name!r} is {UNKNOWABLE[name]} (give it with -p {name}=VALUE)",
                        fatal=True,
                    )
                )
    return problems


def check_workflow(workflow: Workflow, executor: Executor, session: Mapping[str, Any], secrets: SecretStore | None = None) -> list[TaskPlan]:
    """Every operator task's plan; raises :class:`ConfigError` with every problem found."""
    secrets = secrets or SecretStore()
    source = workflow.path.rsplit("/", 1)[-1]
    problems: list[Problem] = []
    plans: list[TaskPlan] = []
    earlier_operator = False
    for task, chain in chains(workflow.root):
        for message in check_expressions(task.export):
            problems.append(Problem(f"{source}: {task.name}: _export", message, fatal=True))
        problems += _env_problems(source, task, secrets)
        problems += _unknowable(source, task, session)
        if task.is_group:
            continue
        for key, value in (("command", task.command), *task.params.items(), *(("_env." + k, v) for k, v in task.env.items())):
            label = task.operator if key == "command" else key
            if not key.startswith("_env."):
                problems += [Problem(f"{source}: {task.name}: {label}", message, fatal=True) for message in check_expressions(value)]
            known = None if earlier_operator else _static_names(chain)
            if known is not None:
                known |= set(session)  # -p and -P params are the session's
                for name in references(value):
                    if name not in known:
                        problems.append(Problem(f"{source}: {task.name}: {label}", f"${{{name}}}: unknown param {name!r}", fatal=True))
        # a task before may have stored any param (engine operators store none)
        earlier_operator = earlier_operator or task.operator not in STORELESS
        if task.operator in ENGINE_OPERATORS:
            plans.append(TaskPlan(task, None, f"runs in offload's engine ({task.operator} needs no backend)"))
            continue
        layers = [session, *(t.export for t in chain), {"task_name": task.name}, task.params]
        try:
            params = layered_params(layers)
        except UnknownParam:
            plans.append(TaskPlan(task, None, "backend chosen at run time: its config uses params stored by earlier tasks"))
            continue
        try:
            request = dry_request(task, params, workflow.project_dir, executor)
        except ConfigError as e:
            problems += [Problem(f"{source}: {p.where}", p.message, fatal=True) for p in e.problems]
            continue
        selection = executor.select(request)
        for p in selection.fatal:
            where = p.where.removeprefix(f"task {task.name}").removeprefix(": ")
            problems.append(Problem(f"{source}: {task.name}" + (f": {where}" if where else ""), p.message, fatal=True))
        if selection.backend is None and not selection.fatal:
            problems.append(Problem(f"{source}: {task.name}", selection.why_none(), fatal=True))
        plans.append(TaskPlan(task, selection))
    if problems:
        raise ConfigError(problems)
    return plans


def explain(workflow: Workflow, executor: Executor, session: Mapping[str, Any], secrets: SecretStore | None = None) -> dict[str, Any]:
    """``offload explain`` as data (``--json``): per task, the chosen backend and every
    backend tried, with its reasons. Keys (documented in the README):

    ``workflow``, ``path``, ``config`` (the system config's source), ``backends`` (the
    order tried: one name when ``command_executor.type`` forces one), ``notes``, and
    ``tasks``: ``task``, ``backend`` (``null`` when chosen only at run time or run in
    the engine), ``note``, ``attempts`` (``backend``, ``chosen``, ``reasons``).
    """
    system = executor.system
    # a forced type hands unconfigured tasks on as Digdag does (ECS -> Docker -> local)
    chosen = {system.type, *fallbacks(system.type)} if system.type != "auto" else set(system.order)
    # As in Digdag, a section alone does not select a backend: say so, or it looks ignored.
    notes = [
        f"command_executor.{name} is configured but not used: set command_executor.type: {name}, or list it in command_executor.order"
        for name in sorted(n for n, section in system.sections.items() if section and n not in chosen)
    ]
    tasks = []
    for plan in check_workflow(workflow, executor, session, secrets):
        selection = plan.selection
        tasks.append(
            {
                "task": plan.task.name,
                "backend": None if selection is None else selection.backend,
                "note": plan.note,
                "attempts": [] if selection is None else [{"backend": a.backend, "chosen": a.chosen, "reasons": list(a.reasons)} for a in selection.attempts],
            }
        )
    return {
        "workflow": workflow.name,
        "path": workflow.path,
        "config": system.source,
        "backends": [system.type] if system.type != "auto" else list(system.order),
        "notes": notes,
        "tasks": tasks,
    }


def explain_lines(workflow: Workflow, executor: Executor, session: Mapping[str, Any], secrets: SecretStore | None = None) -> list[str]:
    """``offload explain``: per task, the chosen backend and why the others were skipped."""
    data = explain(workflow, executor, session, secrets)
    lines = [f"workflow {data['workflow']} ({data['path']}); config {data['config']}; backends: {' -> '.join(data['backends'])}"]
    lines += [f"note: {note}" for note in data["notes"]]
    for task in data["tasks"]:
        if task["note"]:  # no selection: run in the engine, or chosen at run time
            lines.append(f"{task['task']}: {task['note']}")
            continue
        lines.append(f"{task['task']}: runs on {task['backend']}")
        for attempt in task["attempts"]:
            mark = "chosen" if attempt["chosen"] else "skipped"
            lines.append(f"    {attempt['backend']:<8} {mark}: {'; '.join(attempt['reasons'])}")
    return lines
