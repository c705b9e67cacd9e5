"""What ``offload`` imports to start: a local-only run loads every installed plugin, but
none of the libraries of the backends it does not use (boto3, the Docker SDK, the
Kubernetes client, Google Cloud Storage); ``offload --version`` loads no plugin; config
errors are still found, and said, without them. Timing is measured by
``bench/startup.py``, never asserted here.

Also: the entry points that the core reads itself (to spare importing
``importlib.metadata``) are the ones ``importlib.metadata`` lists, in its order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from offload.executor import entrypoints
from offload.executor.plugins import ENTRY_POINT_GROUP

#: Libraries of the remote backends and storages, and what they pull in.
HEAVY = ("boto3", "botocore", "s3transfer", "docker", "kubernetes", "google.cloud", "google.auth", "google.api_core", "requests", "urllib3")

#: Runs the ``offload`` command in-process and dumps ``sys.modules`` at exit, however it ends.
WRAPPER = """
import json, sys
try:
    from offload.workflow.cli import main
    code = main(sys.argv[2:])
finally:
    with open(sys.argv[1], "w") as f:
        json.dump(sorted(sys.modules), f)
sys.exit(code)
"""


def offload(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """``offload ARGS`` in a fresh interpreter in ``tmp_path``, without any ``OFFLOAD_*``
    setting of the caller; returns the process and the modules it had imported."""
    dump = tmp_path / f"modules-{uuid.uuid4().hex[:8]}.json"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, str(dump), *args], cwd=tmp_path, env={**clean, **(env or {})}, capture_output=True, text=True, timeout=120
    )
    modules: list[str] = json.loads(dump.read_text())
    return done, modules


def heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


def installed_plugin_modules() -> list[str]:
    """The module of every installed ``offload.backends`` entry point."""
    return [ep.value.partition(":")[0].strip() for ep in entrypoints.from_importlib(ENTRY_POINT_GROUP)]


@pytest.fixture
def one_task(tmp_path: Path) -> Path:
    (tmp_path / "one.dig").write_text("+a:\n  sh>: echo hi\n")
    return tmp_path


@pytest.mark.parametrize("env", [{}, {"OFFLOAD_EXECUTOR": "local"}], ids=["no-config", "OFFLOAD_EXECUTOR=local"])
def test_a_local_run_loads_every_plugin_but_no_backend_library(one_task: Path, env: dict[str, str]) -> None:
    done, modules = offload(one_task, "run", "one.dig", env=env)
    assert done.returncode == 0, done.stderr
    assert "[+one+a] hi" in done.stdout
    plugins = installed_plugin_modules()
    assert {"offload_local.plugin", "offload_docker.plugin", "offload_ecs.plugin"} <= set(plugins)
    assert [p for p in plugins if p not in modules] == []  # the test means something only if they all loaded
    assert heavy(modules) == []
    # the parts of a backend that run its tasks are loaded when a task reaches it
    assert [m for m in ("offload_docker.watching", "offload_docker.starting", "offload_docker.events") if m in modules] == []
    # offload reads the entry points itself: importlib.metadata (the email package...) is not needed
    assert "importlib.metadata" not in modules


def test_version_loads_no_plugin(tmp_path: Path) -> None:
    done, modules = offload(tmp_path, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("offload ")
    assert [m for m in modules if m.startswith("offload_")] == []
    assert heavy(modules) == []
    assert "offload.executor.plugins" not in modules


def test_a_command_builds_only_its_own_arguments(one_task: Path) -> None:
    # building every command's arguments cost a run ~10 ms: those of the history commands
    # (their modules) are not loaded by "run"
    done, modules = offload(one_task, "run", "one.dig")
    assert done.returncode == 0, done.stderr
    assert [m for m in modules if m.startswith("offload.workflow.cli_")] == []
    done, _ = offload(one_task, "--help")
    assert done.returncode == 0 and all(name in done.stdout for name in ("run", "explain", "runs", "status", "logs", "report", "gc"))


#: Config errors found by the plugins' own parsing, as before: said at once, exit status 2.
CONFIG_ERRORS = [
    pytest.param(
        "command_executor:\n  ecs:\n    name: c1\n    c1: {region: us-east-1, launch_type: FARGTE}\n    temporal_storage: {type: s3, s3: {bucket: b}}\n",
        "+a:\n  sh>: echo hi\n",
        "offload.yml: command_executor.ecs.c1.launch_type: must be FARGATE or EC2, got 'FARGTE'",
        id="ecs-launch-type",
    ),
    pytest.param(
        "command_executor:\n  docker:\n    api_timeout: soon\n",
        "+a:\n  sh>: echo hi\n",
        "offload.yml: command_executor.docker.api_timeout: must be a number, got 'soon'",
        id="docker-system-config",
    ),
    pytest.param(
        None,
        "+a:\n  docker:\n    image: debian:12\n    run_options: [--no-such-flag]\n  sh>: echo hi\n",
        "one.dig: +one+a: docker.run_options: unknown run option '--no-such-flag' (supported: ",
        id="docker-run-options",
    ),
    pytest.param(
        "command_executor:\n  kubernetes:\n    namespace: default\n",
        "+a:\n  sh>: echo hi\n",
        "offload.yml: command_executor.kubernetes.name: required key missing",
        id="kubernetes-no-cluster-name",
    ),
]


@pytest.mark.parametrize(("config", "flow", "message"), CONFIG_ERRORS)
def test_config_errors_are_found_without_the_backend_libraries(tmp_path: Path, config: str | None, flow: str, message: str) -> None:
    if config is not None:
        (tmp_path / "offload.yml").write_text(config)
    (tmp_path / "one.dig").write_text(flow)
    done, modules = offload(tmp_path, "run", "one.dig")
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert heavy(modules) == []


def test_run_task_kwargs_are_still_checked_against_botocore_when_configured(tmp_path: Path) -> None:
    """The one check that needs botocore (its RunTask shape) imports it only for a
    config that has ``run_task_kwargs``, and reports what it did before."""
    (tmp_path / "offload.yml").write_text(
        "command_executor:\n  ecs:\n    name: c1\n    c1:\n      region: us-east-1\n      run_task_kwargs: {enableExecuteComand: true}\n"
        "    temporal_storage: {type: s3, s3: {bucket: b}}\n"
    )
    (tmp_path / "one.dig").write_text("+a:\n  sh>: echo hi\n")
    done, modules = offload(tmp_path, "run", "one.dig")
    assert done.returncode == 2, done.stderr
    assert 'offload.yml: command_executor.ecs.c1.run_task_kwargs: Unknown parameter in input: "enableExecuteComand"' in done.stderr
    assert "botocore" in modules and "boto3" not in modules


# -- the entry point scan ------------------------------------------------------------


def described(found: list[entrypoints.EntryPoint] | None) -> list[tuple[str, str, tuple[str, str]]]:
    assert found is not None
    return [(ep.name, ep.value, ep.distribution()) for ep in found]


@pytest.mark.parametrize("group", [ENTRY_POINT_GROUP, "console_scripts", "pytest11", "no.such.group"])
def test_the_scan_lists_what_importlib_metadata_lists(group: str) -> None:
    assert described(entrypoints.scan(group)) == described(entrypoints.from_importlib(group))


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Two directories first on ``sys.path``; the second has distributions the first shadows."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    monkeypatch.syspath_prepend(str(second))
    monkeypatch.syspath_prepend(str(first))
    yield first


def dist(where: Path, dirname: str, entry_points: str, metadata: str = "") -> None:
    info = where / dirname
    info.mkdir()
    (info / "METADATA").write_text(metadata or f"Metadata-Version: 2.1\nName: {dirname.split('-')[0]}\nVersion: 1.0\n\nlong: text\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


def test_the_scan_reads_and_shadows_distributions_as_importlib_metadata_does(site: Path) -> None:
    module = f"scan_{uuid.uuid4().hex[:8]}"
    (site / f"{module}.py").write_text("class Thing:\n    class Inner:\n        pass\n")
    dist(
        site,
        "Offload.Scan_Test-2.0.dist-info",
        f"""
        # a comment
        [console_scripts]
        not-ours = x:y
        [{ENTRY_POINT_GROUP}]
        scan-a = {module}
          scan-b  =  {module}:Thing.Inner [extra]
        # scan-commented = {module}
        """,
        metadata="Metadata-Version: 2.1\nName: Offload.Scan_Test\nVersion: 2.0\nSummary: s\n",
    )
    dist(site, "scan_egg-1.0.egg-info", f"[{ENTRY_POINT_GROUP}]\nscan-c = {module}:Thing\n")
    dist(site.parent / "second", "offload_scan_test-1.0.dist-info", f"[{ENTRY_POINT_GROUP}]\nscan-shadowed = {module}\n")
    dist(site.parent / "second", "scan_other-1.0.dist-info", f"[{ENTRY_POINT_GROUP}]\nscan-d = {module}\n")
    (site / "not-a-dist.txt").write_text("")
    try:
        scanned = entrypoints.scan(ENTRY_POINT_GROUP)
        assert described(scanned) == described(entrypoints.from_importlib(ENTRY_POINT_GROUP))
        mine = {ep.name: ep for ep in scanned or [] if module in ep.value}
        # scan-shadowed's distribution is shadowed by the first one of that name on sys.path
        assert sorted(mine) == ["scan-a", "scan-b", "scan-c", "scan-d"]
        assert mine["scan-b"].distribution() == ("Offload.Scan_Test", "2.0")
        loaded = sys.modules.get(module) or __import__(module)
        assert mine["scan-a"].load() is loaded
        assert mine["scan-b"].load() is loaded.Thing.Inner
        assert mine["scan-c"].load() is loaded.Thing
    finally:
        sys.modules.pop(module, None)


def test_a_malformed_value_fails_to_load_as_importlib_metadata_says(site: Path) -> None:
    dist(site, "scan_bad-1.0.dist-info", f"[{ENTRY_POINT_GROUP}]\nscan-bad = not a module!\n")
    (ep,) = [ep for ep in entrypoints.scan(ENTRY_POINT_GROUP) or [] if ep.name == "scan-bad"]
    (theirs,) = [ep for ep in entrypoints.from_importlib(ENTRY_POINT_GROUP) if ep.name == "scan-bad"]
    errors: list[str] = []
    for candidate in (ep, theirs):
        try:
            candidate.load()
        except Exception as e:  # noqa: BLE001 - whatever importlib.metadata raises
            errors.append(f"{type(e).__name__}: {e}")
    assert len(errors) == 2 and errors[0] == errors[1]


def test_what_the_scan_does_not_read_is_left_to_importlib_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "plugins.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("zipped_scan-1.0.dist-info/entry_points.txt", f"[{ENTRY_POINT_GROUP}]\nzipped = zipped_scan\n")
        z.writestr("zipped_scan-1.0.dist-info/METADATA", "Name: zipped-scan\nVersion: 1.0\n")
    monkeypatch.syspath_prepend(str(archive))
    assert entrypoints.scan(ENTRY_POINT_GROUP) is None
    assert "zipped" in [ep.name for ep in entrypoints.entry_points(ENTRY_POINT_GROUP)]


def test_another_finder_of_distributions_is_left_to_importlib_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    class Finder:
        @staticmethod
        def find_distributions(*args: Any, **kwargs: Any) -> list[Any]:
            return []

    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, Finder()])
    assert entrypoints.scan(ENTRY_POINT_GROUP) is None
