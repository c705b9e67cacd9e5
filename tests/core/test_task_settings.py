"""A third party's backend gets its own task settings, parsed once by its own type,
and a project's ``offload_plugins.py`` is loaded as a plugin (as tox loads ``toxfile.py``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import attrs
import pytest

import offload
from offload.workflow.cli import main

#: A real, small backend: it runs the command to its end in ``submit`` (the contract allows
#: a backend whose tasks are finished when polled). It prints the settings it received.
PLUGIN = '''
from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence

import attrs

import offload

PARSED: list[str] = []


@attrs.frozen
class QueueSettings:
    queue: str
    priority: int = 0


class MineBackend(offload.Backend):
    name = "mine"
    task_config_type = QueueSettings

    def parse_task_config(self, sections, where):
        PARSED.append(where)
        if "mine" not in sections:
            return None, [offload.Problem(f"{where}: mine", "not configured for this task")]
        return super().parse_task_config(sections, where)

    def submit(self, request: offload.TaskRequest) -> offload.Handle:
        env = {**os.environ, **request.env}
        done = subprocess.run(request.argv, cwd=request.work_path, env=env, capture_output=True, text=True)
        note = f"settings={request.settings!r} parsed={len(PARSED)}"
        lines = [note, *done.stdout.splitlines(), *done.stderr.splitlines()]
        return offload.Handle(self.name, request.task_id, request.io_path, {"code": done.returncode, "lines": lines})

    def poll(self, handles: Sequence[offload.Handle]) -> list[offload.Status]:
        out = []
        for h in handles:
            state = offload.TaskState.SUCCEEDED if h.state["code"] == 0 else offload.TaskState.FAILED
            out.append(offload.Status(state, exit_code=h.state["code"], logs=h.state["lines"], handle=h.with_state(lines=[])))
        return out

    def collect(self, handle: offload.Handle) -> offload.Result:
        code = handle.state["code"]
        state = offload.TaskState.SUCCEEDED if code == 0 else offload.TaskState.FAILED
        return offload.Result(state, exit_code=code, error=None if code == 0 else f"exit code {code}")

    def cancel(self, handle: offload.Handle, grace: float = 10.0) -> None:
        pass


@offload.hookimpl
def offload_register_backends(register: Callable[[type[offload.Backend]], None]) -> None:
    register(MineBackend)
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "offload_plugins.py").write_text(PLUGIN)
    (tmp_path / "offload.yml").write_text("command_executor:\n  order: [mine, local]\n")
    return tmp_path


def test_a_third_party_backend_receives_its_own_settings_parsed_once(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "flow.dig").write_text(
        textwrap.dedent(
            """\
            _export:
              mine: {queue: fast, priority: "3"}
            +a:
              sh>: env | sort
            +b:
              mine: {queue: slow}
              sh>: echo plain
            +c:
              _export: {mine: null}
              sh>: echo local
            """
        )
    )
    assert main(["run", str(project / "flow.dig")]) == 0, capsys.readouterr().err
    out, err = capsys.readouterr()
    assert "[+flow+a] settings=QueueSettings(queue='fast', priority=3)" in out
    assert "[+flow+b] settings=QueueSettings(queue='slow', priority=0)" in out
    assert "offload: +flow+c: started on local" in err
    env_names = {line.split("] ", 1)[1].split("=", 1)[0] for line in out.splitlines() if line.startswith("[+flow+a] ") and "=" in line}
    assert "PATH" in env_names, out
    assert "mine" not in env_names, "a backend's task settings never become environment variables"
    # parsed once per task at run time (the pre-run check parsed each task once before)
    parsed = [int(line.rsplit("parsed=", 1)[1]) for line in out.splitlines() if "parsed=" in line]
    assert parsed == [4, 5], out


def test_explain_and_plugins_show_the_project_plugin(project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "flow.dig").write_text("+a:\n  mine: {queue: fast}\n  sh>: 'true'\n+b:\n  sh>: 'true'\n")
    assert main(["explain", str(project / "flow.dig")]) == 0
    out = capsys.readouterr().out
    assert "+flow+a: runs on mine\n    mine     chosen: configured for this task\n" in out
    assert "+flow+b: runs on local\n    mine     skipped: task +flow+b: mine: not configured for this task\n" in out
    monkeypatch.chdir(project)
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert f"project:offload_plugins.py: {project / 'offload_plugins.py'}\n    backends: mine\n    hooks: offload_register_backends\n" in out


def test_a_section_its_backend_rejects_stops_the_run_before_anything_starts(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "flow.dig").write_text("+first:\n  sh>: touch started\n+a:\n  mine: {queue: fast, prio: 1, priority: high}\n  sh>: 'true'\n")
    assert main(["run", str(project / "flow.dig")]) == 2
    err = capsys.readouterr().err
    assert "offload: error: flow.dig: +flow+a: mine: unknown key 'prio' (known keys: queue, priority)\n" in err
    assert "offload: error: flow.dig: +flow+a: mine.priority: must be an integer, got 'high'\n" in err
    assert not (project / "started").exists()


def test_a_broken_project_plugin_file_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "offload_plugins.py").write_text("import offload\n\nraise RuntimeError('site policy misconfigured')\n")
    (tmp_path / "flow.dig").write_text("+a:\n  sh>: 'true'\n")
    assert main(["run", str(tmp_path / "flow.dig")]) == 2
    err = capsys.readouterr().err
    assert err == f"offload: error: {tmp_path / 'offload_plugins.py'}, line 3: cannot load the project's plugin file: RuntimeError: site policy misconfigured\n"


def test_a_project_plugin_can_forbid_what_a_site_does_not_allow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "offload_plugins.py").write_text(
        textwrap.dedent(
            """\
            import offload

            @offload.hookimpl
            def offload_validate_config(backend, config, task):
                if task.timeout is None:
                    return [offload.Problem(f"task {task.task_id}: timeout", "this site requires a timeout on every task", fatal=True)]
                return []
            """
        )
    )
    (tmp_path / "flow.dig").write_text("+a:\n  sh>: 'true'\n")
    assert main(["run", str(tmp_path / "flow.dig")]) == 2
    assert "offload: error: flow.dig: +flow+a: timeout: this site requires a timeout on every task\n" in capsys.readouterr().err
    (tmp_path / "flow.dig").write_text("+a:\n  timeout: 60\n  sh>: 'true'\n")
    assert main(["run", str(tmp_path / "flow.dig")]) == 0


@attrs.frozen
class Image:
    image: str


@attrs.frozen
class Both:
    grid: dict[str, int] = attrs.field(factory=dict)
    docker: Image | None = None


class Grid(offload.Backend):
    name = "grid"
    task_keys = ("grid", "docker")
    task_config_type = Both

    def submit(self, request: offload.TaskRequest) -> offload.Handle:
        raise NotImplementedError

    def poll(self, handles: object) -> list[offload.Status]:
        raise NotImplementedError

    def collect(self, handle: offload.Handle) -> offload.Result:
        raise NotImplementedError

    def cancel(self, handle: offload.Handle, grace: float = 10.0) -> None:
        raise NotImplementedError


def test_default_parsing_of_several_keys_structures_each_into_its_field() -> None:
    backend = Grid()
    assert backend.parse_task_config({"grid": {"slots": 2}, "docker": {"image": "x"}}, "task t") == (Both({"slots": 2}, Image("x")), [])
    settings, problems = backend.parse_task_config({"docker": {"image": "x", "tag": 1}}, "task t")
    assert settings is None
    assert [str(p) for p in problems] == ["task t: docker: unknown key 'tag' (known keys: image)"]


def test_the_cli_works_from_another_directory_with_no_project_plugin(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "offload", "plugins"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode in (0, 1), done.stderr
    assert "project:" not in done.stdout
