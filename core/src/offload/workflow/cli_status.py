"""``offload status [RUN]``: each task of a run (default: the latest), read from the journal.

Read-only: the journal is never written and the run lock never taken, so this works
while ``offload run`` drives the run it shows.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", nargs="?", metavar="RUN", help="the run's id as offload runs lists it, or a unique start of it (default: the latest run)")
    parser.add_argument("--project", metavar="DIR", default=".", help="the project whose journal to read (default: .)")
    parser.add_argument("--json", action="store_true", help='one JSON document on stdout: {"run": {...}, "tasks": [...]} (keys in the README)')


def run(args: argparse.Namespace) -> int:
    import json

    from offload.workflow.history import TASK_HEADER, JournalReader, human_duration, local_time, table

    with JournalReader(args.project) as journal:
        found = journal.find_run(args.run_id)
        tasks = journal.task_rows(found.run_id, now=found.now)
    if args.json:
        print(json.dumps({"run": found.as_json(), "tasks": [t.as_json() for t in tasks]}, indent=2))
        return 0
    print(
        f"run {found.run_id} of {found.workflow} ({found.workflow_path}): {found.state}; "
        f"started {local_time(found.started_at)}, {human_duration(found.duration)}; {found.tasks_text()}"
    )
    if tasks:
        print(table(TASK_HEADER, [t.cells() for t in tasks]))
    return 0
