"""The ``offload`` command.

Exit status: 0 success, 1 a task failed (or a backend is unhealthy), 2 a usage or
config error (nothing launched), 130 interrupted. Imports are deferred so that
``offload --version`` costs little more than starting Python.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from offload import __version__ as VERSION

#: Commands about runs that happened, each in ``offload.workflow.cli_<name>`` (kept light to import).
HISTORY_COMMANDS = {
    "runs": "list the runs of this project's workflows",
    "status": "show each task of a run: backend, state, exit code, attempts, duration, error",
    "logs": "print a task's log, as it was streamed (--follow: while it runs)",
    "report": "write a run's timeline as one self-contained HTML file",
}


def _config_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="system config (offload.yml or Digdag .properties); default $OFFLOAD_CONFIG, else offload.yml beside the workflow",
    )


def _add_run(sub: Any) -> None:
    run = sub.add_parser("run", help="run a workflow file (resumes an interrupted or failed run)")
    run.add_argument("workflow", metavar="FLOW", help="the .dig workflow file")
    _config_option(run)
    run.add_argument("--rerun", action="store_true", help="start a new run instead of resuming the last unfinished one")
    run.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE", help="set a param (repeatable; wins over -P)")
    run.add_argument("-P", "--params-file", action="append", default=[], metavar="FILE", help="read params from a YAML file (Digdag's -P; repeatable)")
    run.add_argument("--session-time", metavar="ISO8601", help="the session time (default: now)")
    run.add_argument("--wait", action="store_true", help="if another offload run drives this workflow, wait for it to end instead of failing")
    run.add_argument("--start", metavar="+TASK", help="skip the tasks written before this one (Digdag's --start)")
    run.add_argument("--goal", metavar="+TASK", help="skip the tasks written after this one and what it contains (Digdag's --goal)")
    run.add_argument("--dry-run", action="store_true", help="check and plan everything, print the plan, launch nothing")


def _add_explain(sub: Any) -> None:
    explain = sub.add_parser("explain", help="show, per task, the backend chosen and why the others were skipped")
    explain.add_argument("workflow", metavar="FLOW")
    _config_option(explain)
    explain.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE")
    explain.add_argument("-P", "--params-file", action="append", default=[], metavar="FILE")
    explain.add_argument("--json", action="store_true", help="one JSON document on stdout (keys in the README)")


def _add_check(sub: Any) -> None:
    check = sub.add_parser("check", help="check the health of the installed backends")
    check.add_argument("backend", nargs="?", help="only this backend")
    _config_option(check)


def _add_plugins(sub: Any) -> None:
    sub.add_parser("plugins", help="list installed plugins (and ./offload_plugins.py), their distributions, versions and hooks")


def _add_secrets(sub: Any) -> None:
    secrets = sub.add_parser("secrets", help="set, list or delete the local secrets that ${secret:name} refers to")
    secrets_sub = secrets.add_subparsers(dest="action", metavar="ACTION", required=True)
    secret_set = secrets_sub.add_parser("set", help="set a secret; the value is read from standard input (or --from-file), never the command line")
    secret_set.add_argument("name")
    secret_set.add_argument("--from-file", metavar="PATH", help="read the value from this file (its content as it is)")
    secrets_sub.add_parser("list", help="list the names of the secrets (never their values)")
    secret_delete = secrets_sub.add_parser("delete", help="delete a secret")
    secret_delete.add_argument("name")


def _add_history(name: str) -> Callable[[Any], None]:
    def add(sub: Any) -> None:
        importlib.import_module(f"offload.workflow.cli_{name}").add_arguments(sub.add_parser(name, help=HISTORY_COMMANDS[name]))

    return add


def _add_gc(sub: Any) -> None:
    gc = sub.add_parser("gc", help="remove what offload left behind (containers, ...) that no journal tracks")
    gc.add_argument("project", nargs="?", default=".", help="the project whose journal tracks tasks (default: .)")
    gc.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    _config_option(gc)


#: Each command's subparser, in the order ``offload --help`` lists them.
SUBPARSERS: dict[str, Callable[[Any], None]] = {
    "run": _add_run,
    "explain": _add_explain,
    "check": _add_check,
    "plugins": _add_plugins,
    "secrets": _add_secrets,
    **{name: _add_history(name) for name in HISTORY_COMMANDS},
    "gc": _add_gc,
}


def _parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The command line's parser. When ``argv`` starts with a command, only that
    command's subparser is built (building all of them costs a run ~10 ms of start-up);
    otherwise (``--help``, ``--version``, a misspelt command) all of them."""
    parser = argparse.ArgumentParser(prog="offload", description="Run workflow tasks locally, in Docker or on AWS ECS, chosen by configuration.")
    parser.add_argument("--version", action="version", version=f"offload {VERSION}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    first = argv[0] if argv else None
    for name, add in SUBPARSERS.items():
        if first not in SUBPARSERS or name == first:
            add(sub)
    return parser


def _params(pairs: Sequence[str], files: Sequence[str] = ()) -> dict[str, Any]:
    """The session's params: each ``-P`` file's mapping in turn, then the ``-p`` pairs over them."""
    from offload.executor.errors import UsageError

    out: dict[str, Any] = {}
    for path in files:
        out.update(_params_file(path))
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"-p {pair!r}: expected KEY=VALUE")
        out[key] = value
    return out


def _params_file(path: str) -> dict[str, Any]:
    import yaml

    from offload.executor.errors import UsageError

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise UsageError(f"-P {path}: cannot read it: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise UsageError(f"-P {path}: not valid YAML{at}: {getattr(e, 'problem', None) or e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise UsageError(f"-P {path}: must be a mapping of param names to values, got {type(data).__name__}")
    return data


def _executor(config_path: str | None, workflow_path: str | None) -> Any:
    """The executor for a command: installed plugins, plus the project's ``offload_plugins.py``
    (beside the workflow, or in the current directory)."""
    import os

    from offload.executor.config import load_system_config
    from offload.executor.executor import Executor
    from offload.executor.plugins import make_plugin_manager

    project_dir = os.path.dirname(os.path.abspath(workflow_path)) if workflow_path else os.getcwd()
    executor = Executor(load_system_config(config_path, workflow_path), make_plugin_manager(project_dir=project_dir))
    for error in executor.pm.load_errors:
        print(f"offload: warning: {error}", file=sys.stderr)
    return executor


def cmd_run(args: argparse.Namespace) -> int:
    from offload.executor.models import TaskState
    from offload.workflow.report import Console, summary_table
    from offload.workflow.session import run_workflow

    if args.dry_run:
        return _dry_run(args)
    console = Console()
    executor = _executor(args.config, args.workflow)
    try:
        with executor:
            outcome = run_workflow(
                args.workflow,
                executor,
                params=_params(args.param, args.params_file),
                rerun=args.rerun,
                session_time=args.session_time,
                wait=args.wait,
                start=args.start,
                goal=args.goal,
                on_log=console.log,
                on_event=console.event,
                on_tick=console.tick,
            )
    finally:
        console.close()  # the status line (on a terminal) goes before anything else is printed
    print(summary_table(outcome.root), flush=True)
    console.event("run", f"{outcome.state.value}: run {outcome.run_id}")
    if outcome.state is TaskState.CANCELLED:
        return 130
    return 0 if outcome.state is TaskState.SUCCEEDED else 1


def _dry_run(args: argparse.Namespace) -> int:
    """``offload run --dry-run``: the whole pre-run check, then the plan; nothing launched,
    no journal written."""
    from offload.workflow.parser import load_workflow
    from offload.workflow.partial import skipped
    from offload.workflow.plan import check_workflow
    from offload.workflow.session import session_params_for

    workflow = load_workflow(args.workflow)
    leave_out = skipped(workflow, args.start, args.goal)
    executor = _executor(args.config, args.workflow)
    with executor:
        session = session_params_for(workflow, _params(args.param, args.params_file), args.session_time, "dry-run")
        plans = check_workflow(workflow, executor, session)
    print(f"dry run of {workflow.name} ({workflow.path}), session {session['session_time']}: nothing launched")
    for plan in plans:
        if any(plan.task.name == name or plan.task.name.startswith(name + "+") or plan.task.name.startswith(name + "^") for name in leave_out):
            print(f"{plan.task.name}: skipped (outside --start/--goal)")
        elif plan.selection is not None:
            print(f"{plan.task.name}: would run on {plan.selection.backend}")
        else:
            print(f"{plan.task.name}: {plan.note}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from offload.workflow.parser import load_workflow
    from offload.workflow.plan import explain, explain_lines
    from offload.workflow.session import session_params_for

    workflow = load_workflow(args.workflow)
    executor = _executor(args.config, args.workflow)
    session = session_params_for(workflow, _params(args.param, args.params_file), None, "explain")
    if args.json:
        import json

        print(json.dumps(explain(workflow, executor, session), indent=2))
        return 0
    for line in explain_lines(workflow, executor, session):
        print(line)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    import attrs

    from offload.executor.config import TYPE_ALIASES
    from offload.executor.errors import UsageError
    from offload.executor.selection import install_hint

    executor = _executor(args.config, None)
    names = executor.backend_names()
    args.backend = TYPE_ALIASES.get(args.backend, args.backend)  # Digdag's "simple" is local
    if args.backend:
        if args.backend not in names:
            raise UsageError(f"backend {args.backend!r} is {install_hint(args.backend)}; installed: {', '.join(names) or 'none'}")
        names = [args.backend]
    healthy = True
    reports = [executor.check(name) for name in names]
    # each storage a checked backend's config names, once, with the key path that names it
    for config in executor.storages():
        if any(f"command_executor.{name}." in config.where for name in names):
            health = executor.check_storage(config)
            reports.append(attrs.evolve(health, details=(f"configured at {config.where}", *health.details)))
    for health in reports:
        healthy = healthy and health.ok
        print(f"{'ok  ' if health.ok else 'FAIL'} {health.summary}")
        for detail in health.details:
            print(f"     {detail}")
    return 0 if healthy else 1


def cmd_plugins(args: argparse.Namespace) -> int:
    import os

    from offload.executor.plugins import make_plugin_manager

    pm = make_plugin_manager(project_dir=os.getcwd())
    for info in pm.plugin_infos():
        dist = " ".join(p for p in (info.distribution, info.version) if p) or "(not from a distribution)"
        print(f"{info.name}: {dist}")
        if info.backends:
            print(f"    backends: {', '.join(info.backends)}")
        if info.storages:
            print(f"    storages: {', '.join(info.storages)}")
        print(f"    hooks: {', '.join(info.hooks) or '-'}")
    for error in pm.load_errors:
        print(f"{error.name}: FAILED to load ({error.distribution}): {error.error}")
    return 1 if pm.load_errors else 0


def cmd_gc(args: argparse.Namespace) -> int:
    import os

    from offload.workflow.journal import Journal

    executor = _executor(args.config, None)
    tracked = []
    if os.path.isdir(os.path.join(args.project, ".offload")):
        journal = Journal(args.project)
        tracked = journal.tracked_handles()
        journal.close()
    for name in executor.backend_names():
        for line in executor.collect_garbage(name, tracked, dry_run=args.dry_run, project_dir=os.path.abspath(args.project)):
            print(f"{name}: {'would remove' if args.dry_run else 'removed'} {line}")
    return 0


def cmd_secrets(args: argparse.Namespace) -> int:
    from offload.executor.errors import UsageError
    from offload.workflow.secrets import SecretStore, check_name

    store = SecretStore()
    if args.action == "list":
        for name in store.names():
            print(name)
        return 0
    check_name(args.name)
    if args.action == "delete":
        if not store.delete(args.name):
            raise UsageError(f"no secret named {args.name!r} in {store.path}")
        print(f"deleted secret {args.name}", file=sys.stderr)
        return 0
    if args.from_file:
        try:
            with open(args.from_file, encoding="utf-8") as f:
                value = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"--from-file {args.from_file}: cannot read it ({e})") from None
    elif sys.stdin.isatty():
        import getpass

        value = getpass.getpass(f"value of secret {args.name}: ")
    else:
        value = sys.stdin.read()
        value = value[:-1] if value.endswith("\n") else value
    if not value:
        raise UsageError(f"secret {args.name}: the value is empty")
    store.set(args.name, value)
    print(f"set secret {args.name} in {store.path}", file=sys.stderr)
    return 0


COMMANDS = {"run": cmd_run, "explain": cmd_explain, "check": cmd_check, "plugins": cmd_plugins, "gc": cmd_gc, "secrets": cmd_secrets}


def _command(name: str) -> Any:
    if name in COMMANDS:
        return COMMANDS[name]
    return importlib.import_module(f"offload.workflow.cli_{name}").run


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from offload.executor.errors import ConfigError, OffloadError

    try:
        return int(_command(args.command)(args))
    except ConfigError as e:
        for problem in e.problems:
            print(f"offload: error: {problem}", file=sys.stderr)
        return 2
    except OffloadError as e:
        print(f"offload: error: {e}", file=sys.stderr)
        return e.exit_status
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        import os

        if os.environ.get("OFFLOAD_DEBUG"):
            raise
        print(f"offload: error: unexpected {type(e).__name__}: {e} (set OFFLOAD_DEBUG=1 to see where)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
