"""offload against Prefect 3 and Dagster on the same shell tasks, each as its users write it.

    .venv/bin/python bench/peers.py [--repeat 3] [--jobs seq,parallel,chain]
                                    [--peers prefect,dagster] [--dagster-multiprocess] [--refresh]

Jobs (issue 13): ``seq``, 50 ``echo`` one after another; ``parallel``, 200 ``sleep 0.2`` at
the same time; ``chain``, 20 tasks each adding one to the value the one before returned.
The sources are in ``bench/peers/``:

- offload: ``seq.dig``, ``parallel.dig``, ``chain.dig`` (``loop>`` with ``sh>``), run with
  ``offload run`` of this interpreter's environment, local backend (``OFFLOAD_EXECUTOR=local``);
- Prefect 3: ``prefect_flows.py``, ``@flow``/``@task`` calling ``subprocess``, ``.submit()`` to
  the default thread pool for the parallel job; ephemeral mode (no ``PREFECT_API_URL``: the
  flow starts a temporary API server on loopback, with its database in a temporary
  ``PREFECT_HOME``);
- Dagster: ``dagster_jobs.py``, ops from factories, a dynamic fan-out for the parallel job,
  run with ``execute_in_process()``, whose executor runs one op at a time (so the 200
  sleeps take 40 s at least). ``--dagster-multiprocess`` adds ``execute_job`` with the default
  multiprocess executor (a spawned process per op, as many at once as there are CPUs), which
  is slow: minutes per job on 2 cores;
- the floor, no tool at all: ``floors.py`` (a ``subprocess.run`` loop, a thread per command,
  a loop feeding each command the value the one before printed).

Prefect and Dagster are not dependencies of offload: each gets a virtual environment made
here once (``python -m venv`` and pip) and kept in ``~/.cache/offload-bench/venvs``
(``$XDG_CACHE_HOME`` is honoured); ``--refresh`` makes them anew.

Method. Each measurement is the whole command as a user types it, start-up and shutdown
included, run as the child of a fresh wrapper process (``bench/peers/measure.py``):
wall time is ``perf_counter`` around the child; CPU is user + sys of the child and every
process under it (``getrusage(RUSAGE_CHILDREN)`` of the wrapper, which holds this one
command only because the wrapper is new each time; the wrapper is a child subreaper, so
processes that detach are counted too); peak RSS is ``ru_maxrss`` from the same call:
the peak of the largest single process, not the sum over processes. The wrapper runs the
command in a network namespace with only loopback (as root), so nothing reaches another
address; telemetry is switched off as well (``DO_NOT_TRACK``, ``PREFECT_SERVER_ANALYTICS_ENABLED``,
``DAGSTER_DISABLE_TELEMETRY`` and ``telemetry: enabled: false`` in ``DAGSTER_HOME``). Each
tool keeps its state (offload's project, ``PREFECT_HOME``, ``DAGSTER_HOME``) for the whole
session and runs once unmeasured first, as a user who has run it before. Bytecode is
cached as an installed package's would be, for every tool alike (``PYTHONDONTWRITEBYTECODE``
unset, ``PYTHONPYCACHEPREFIX`` in the session's directory, which keeps the repository
clean). Rounds interleave the tools; each figure is the median of ``--repeat`` rounds.
Target (issue 13): offload's wall time at least 10x below both peers' on every job.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent / "peers"
JOBS = ("seq", "parallel", "chain")
FLOORS = {"seq": "floor: subprocess.run loop", "parallel": "floor: a thread each", "chain": "floor: python loop"}
JOB_TITLES = {"seq": "50 sequential echo", "parallel": "200 parallel sleep 0.2", "chain": "chain of 20 passing a value"}
VENV_REQUIREMENTS = {
    # Prefect 3.8 passes Body(min_items=...), which FastAPI 0.155 and later reject.
    "prefect": ["prefect>=3,<4", "fastapi<0.155"],
    "dagster": ["dagster"],  # execute_in_process and the multiprocess executor need nothing more
}
TARGET = 10.0


@dataclass(frozen=True)
class Tool:
    name: str  # the row's label
    argv: tuple[str, ...]  # the command; the job's name is appended, or replaces {job}
    env: tuple[tuple[str, str], ...] = ()
    version: str = ""

    def command(self, job: str) -> list[str]:
        if any("{job}" in a for a in self.argv):
            return [a.replace("{job}", job) for a in self.argv]
        return [*self.argv, job]


@dataclass(frozen=True)
class Sample:
    wall: float
    cpu: float
    rss_mb: float


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "offload-bench" / "venvs"


def ensure_venv(name: str, refresh: bool) -> Path:
    """The venv for ``name``, made with ``python -m venv`` and pip unless it is already there."""
    root = cache_dir() / name
    marker = root / "bench-requirements.json"
    wanted = json.dumps(VENV_REQUIREMENTS[name])
    if not refresh and marker.exists() and marker.read_text() == wanted:
        return root
    shutil.rmtree(root, ignore_errors=True)
    print(f"making the {name} venv in {root} (pip install {' '.join(VENV_REQUIREMENTS[name])})...", file=sys.stderr, flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(root)], check=True)
    pip = [str(root / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *VENV_REQUIREMENTS[name]], check=True)
    marker.write_text(wanted)
    return root


def version_of(python: str, distribution: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({distribution!r}))"
    return subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout.strip()


def clean_env(state: Path) -> dict[str, str]:
    """The caller's environment without any tool's settings; telemetry off; bytecode cached."""
    prefixes = ("OFFLOAD_", "PREFECT_", "DAGSTER_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(state / "pycache")
    env["DO_NOT_TRACK"] = "1"
    return env


def make_tools(args: argparse.Namespace, state: Path) -> list[Tool]:
    """offload, the peers asked for, and the floor, each with its environment."""
    offload = Path(sys.executable).parent / "offload"
    tools = [
        Tool(
            "offload",
            (sys.executable, str(offload), "run", str(state / "offload" / "{job}.dig")),
            (("OFFLOAD_EXECUTOR", "local"),),
            f"offload {version_of(sys.executable, 'offload')}",
        )
    ]
    (state / "offload").mkdir()
    for job in JOBS:  # the project: the flows copied into a directory of their own
        shutil.copy(HERE / f"{job}.dig", state / "offload" / f"{job}.dig")
    if "prefect" in args.peers:
        python = str(ensure_venv("prefect", args.refresh) / "bin" / "python")
        env = {
            "PREFECT_HOME": str(state / "prefect-home"),
            "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "true",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",  # the first start creates the database
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
        tools.append(Tool("prefect", (python, str(HERE / "prefect_flows.py")), tuple(env.items()), f"prefect {version_of(python, 'prefect')}"))
    if "dagster" in args.peers:
        python = str(ensure_venv("dagster", args.refresh) / "bin" / "python")
        home = state / "dagster-home"
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env = {"DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "yes"}
        version = f"dagster {version_of(python, 'dagster')}"
        script = str(HERE / "dagster_jobs.py")
        tools.append(Tool("dagster in-process", (python, script, "{job}", "in_process"), tuple(env.items()), version))
        if args.dagster_multiprocess:
            tools.append(Tool("dagster multiprocess", (python, script, "{job}", "multiprocess"), tuple(env.items()), version))
    tools.append(Tool("floor", (sys.executable, str(HERE / "floors.py"))))
    return tools


def measure(tool: Tool, job: str, state: Path) -> tuple[Sample, bool]:
    """One run of ``job`` by ``tool`` in a fresh wrapper; fails loudly, with the log's end."""
    log = state / "last.log"
    cwd = state / "offload" if tool.name == "offload" else state
    env = {**clean_env(state), **dict(tool.env)}
    wrapper = [sys.executable, str(HERE / "measure.py"), str(log), str(cwd), *tool.command(job)]
    line = subprocess.run(wrapper, env=env, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    got = json.loads(line)
    output = log.read_text(errors="replace")
    if got["rc"] != 0 or (job == "chain" and "result=20" not in output):
        tail = "\n".join(output.splitlines()[-25:])
        raise SystemExit(f"{tool.name} {job} failed (exit {got['rc']}); the end of its output:\n{tail}")
    return Sample(got["wall"], got["cpu"], got["maxrss_kb"] / 1024), bool(got["isolated"])


def median(samples: Sequence[Sample]) -> Sample:
    return Sample(*(statistics.median(getattr(s, f) for s in samples) for f in ("wall", "cpu", "rss_mb")))


def report(results: dict[str, dict[str, Sample]], tools: list[Tool], repeat: int) -> None:
    print(f"\nmedians of {repeat}; 'x offload' = the tool's figure / offload's (above 1: offload is ahead)")
    header = f"{'job':28s} {'tool':26s} {'wall s':>8s} {'CPU s':>8s} {'RSS MB':>7s}   {'wall x offload':>14s} {'CPU x offload':>13s}"
    print(header)
    print("-" * len(header))
    verdicts = []
    for job, row in results.items():
        ours = row["offload"]
        for i, tool in enumerate(tools):
            s = row[tool.name]
            title = JOB_TITLES[job] if i == 0 else ""
            name = FLOORS[job] if tool.name == "floor" else tool.name
            ratio = "" if tool.name == "offload" else f"{s.wall / ours.wall:14.2f} {s.cpu / ours.cpu:13.2f}"
            print(f"{title:28s} {name:26s} {s.wall:8.2f} {s.cpu:8.2f} {s.rss_mb:7.0f}   {ratio}")
        peers = [t.name for t in tools if t.name not in ("offload", "floor")]
        if peers:
            fastest = min(peers, key=lambda p: row[p].wall)
            lead = row[fastest].wall / ours.wall
            verdicts.append(f"  {JOB_TITLES[job]}: {lead:.1f}x ahead of the fastest peer ({fastest}): {'met' if lead >= TARGET else 'NOT met'}")
        floor = row["floor"].wall
        verdicts.append(f"    offload above the floor: +{ours.wall - floor:.2f} s ({ours.wall / floor:.1f}x the floor's wall)")
    print(f"\ntarget: offload's wall at least {TARGET:.0f}x below every peer's, on every job")
    print("\n".join(verdicts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=3, help="measured rounds; the median counts")
    parser.add_argument("--jobs", default=",".join(JOBS), help=f"comma-separated, of {','.join(JOBS)}")
    parser.add_argument("--peers", default="prefect,dagster", help="comma-separated, of prefect,dagster")
    parser.add_argument("--dagster-multiprocess", action="store_true", help="also run Dagster's multiprocess executor (slow)")
    parser.add_argument("--refresh", action="store_true", help="make the peers' venvs anew")
    args = parser.parse_args()
    args.peers = [p for p in args.peers.split(",") if p]
    jobs = [j for j in args.jobs.split(",") if j]
    if unknown := (set(jobs) - set(JOBS)) | (set(args.peers) - {"prefect", "dagster"}):
        parser.error(f"unknown: {', '.join(sorted(unknown))}")
    state = Path(tempfile.mkdtemp(prefix="offload-bench-peers-"))
    try:
        tools = make_tools(args, state)
        print("versions: " + ", ".join(dict.fromkeys(t.version for t in tools if t.version)), flush=True)
        load = os.getloadavg()[0]
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load:.2f} at the start", flush=True)
        isolated = True
        for tool in tools:  # warm up: create databases, fill file caches and bytecode
            print(f"warming up {tool.name}...", file=sys.stderr, flush=True)
            isolated &= measure(tool, "chain" if "chain" in jobs else jobs[0], state)[1]
        samples: dict[str, dict[str, list[Sample]]] = {j: {t.name: [] for t in tools} for j in jobs}
        for r in range(args.repeat):
            for job in jobs:
                for tool in tools:
                    sample, ok = measure(tool, job, state)
                    isolated &= ok
                    samples[job][tool.name].append(sample)
                    print(f"  round {r + 1} {job:8s} {tool.name:22s} {sample.wall:7.2f} s", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    print(f"load average {os.getloadavg()[1]:.2f} over the last 5 minutes (other work on the machine skews the figures)")
    print("network: " + ("each run in a namespace with loopback only" if isolated else "NOT isolated (not root): telemetry off by environment only"))
    report({j: {t: median(v) for t, v in row.items()} for j, row in samples.items()}, tools, args.repeat)


if __name__ == "__main__":
    main()
