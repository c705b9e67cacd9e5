"""``offload runs``: the runs of a project's workflows, newest first, read from its journal.

Read-only: the journal is never written and the run lock never taken, so this works
while ``offload run`` drives a run.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", metavar="DIR", default=".", help="the project whose journal to read (default: .)")
    parser.add_argument("--workflow", metavar="FLOW", help="only the runs of this workflow (its name, file name or path)")
    parser.add_argument("--json", action="store_true", help='one JSON document on stdout: {"runs": [...]} (keys in the README)')


def run(args: argparse.Namespace) -> int:
    import json

    from offload.workflow.history import RUN_HEADER, JournalReader, matches_workflow, table

    with JournalReader(args.project) as journal:
        runs = journal.run_rows()
    if args.workflow:
        runs = [r for r in runs if matches_workflow(r, args.workflow)]
    if args.json:
        print(json.dumps({"runs": [r.as_json() for r in runs]}, indent=2))
    elif runs:
        print(table(RUN_HEADER, [r.cells() for r in runs]))
    else:
        print("no runs" + (f" of workflow {args.workflow}" if args.workflow else ""))
    return 0
