"""``offload report [RUN] [--project DIR] -o run.html``: a run's timeline as one HTML file.

The file stands alone (inline CSS, no script, nothing fetched): it can be mailed, kept as a
CI artifact or opened offline. The journal is only read, so the report can be made while
the run is going; tasks still running are drawn up to the moment it was made.
"""

from __future__ import annotations

import argparse
import sys

#: Log lines shown for each failed attempt unless ``--log-lines`` says otherwise.
DEFAULT_LOG_LINES = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", nargs="?", metavar="RUN", help="the run id, or a unique start of it (default: the project's latest run)")
    parser.add_argument("--project", default=".", metavar="DIR", help="the project directory, which holds .offload/ (default: .)")
    parser.add_argument("-o", "--output", metavar="FILE", help="the HTML file to write; - for standard output (default: offload-report-RUN.html)")
    parser.add_argument(
        "--log-lines", type=int, default=DEFAULT_LOG_LINES, metavar="N", help=f"last log lines shown for each failed attempt (default: {DEFAULT_LOG_LINES})"
    )


def run(args: argparse.Namespace) -> int:
    import time

    from offload.executor.errors import UsageError
    from offload.workflow.htmlreport import render
    from offload.workflow.htmlreport_data import load_run

    if args.log_lines < 0:
        raise UsageError(f"--log-lines {args.log_lines}: must be 0 or more")
    data = load_run(args.project, args.run, time.time(), args.log_lines)
    page = render(data)
    output = args.output or f"offload-report-{data.run_id}.html"
    if output == "-":
        sys.stdout.write(page)
        sys.stdout.flush()
        return 0
    write_file(output, page)
    print(f"offload: wrote {output}: run {data.run_id} ({data.state}), {len(data.attempts)} task attempts", file=sys.stderr)
    return 0


def write_file(path: str, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a reader never sees half a report)."""
    import os

    from offload.executor.errors import UsageError

    if os.path.isdir(path):
        raise UsageError(f"-o {path}: is a directory; name the HTML file to write")
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise UsageError(f"-o {path}: cannot write it: {e.strerror or e}") from None
