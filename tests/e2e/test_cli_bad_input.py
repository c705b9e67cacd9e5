"""Bad input gets one clear message naming file, task and key, exit status 2, and launches nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offload.workflow.cli import main

CASES = {
    "not yaml": ("+a:\n  sh>: echo: [\n", "flow.dig: not valid YAML (line"),
    "not a mapping": ("- just\n- a list\n", "flow.dig: must be a mapping of tasks, got list"),
    "two operators": ("+a:\n  sh>: echo 1\n  py>: m.f\n", "flow.dig: +flow+a: a task has one operator, this one has 2: sh>, py>"),
    "unknown operator": (
        "+a:\n  s3_wait>: x\n",
        "flow.dig: +flow+a: s3_wait>: unknown operator (offload runs: sh>, py>, rb>, echo>, fail>, call>, if>, for_each>, for_range>, loop>;",
    ),
    "unknown directive": ("+a:\n  _paralel: true\n  sh>: echo\n", "flow.dig: +flow+a: _paralel: unknown directive (supported: _export"),
    "empty task": ("+a:\n  foo: 1\n", "flow.dig: +flow+a: has no operator (sh>, py>, rb>, echo>, ...) and no '+child' tasks"),
    "bad retry": (
        "+a:\n  _retry: many\n  sh>: echo\n",
        "flow.dig: +flow+a: _retry: must be a count of retries (0 or more) or {limit: N, interval: S, interval_type: constant|exponential}, got 'many'",
    ),
    "bad py> target": ("+a:\n  py>: not a callable\n", "flow.dig: +flow+a: py>: must be 'module.function' or 'module.Class.method'"),
    "unknown param": ("+a:\n  sh>: echo ${nope}\n", "flow.dig: +flow+a: sh>: ${nope}: unknown param 'nope'"),
    "expression": ("+a:\n  sh>: echo ${1 + 2}\n", "flow.dig: +flow+a: sh>: ${1 + 2}: only ${name} and ${name.key} are supported"),
    "bad export": ("_export:\n  x: ${1+1}\n+a:\n  sh>: echo\n", "flow.dig: +flow: _export: ${1+1}: only ${name} and ${name.key} are supported"),
    "bad env": ("+a:\n  _env:\n    X: [1]\n  sh>: echo\n", "flow.dig: +flow+a: _env.X: must be a string, number or boolean"),
}


def run_cli(project: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["run", str(project / "flow.dig"), *args])
    captured = capsys.readouterr()
    return code, captured.err


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_workflow_is_one_clear_error_and_nothing_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    text, expected = CASES[case]
    (tmp_path / "flow.dig").write_text(text)
    code, err = run_cli(tmp_path, capsys)
    assert code == 2
    assert expected in err
    assert "Traceback" not in err
    assert not (tmp_path / ".offload" / "io").exists()


def test_every_problem_is_reported_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "flow.dig").write_text("+a:\n  s3>: x\n+b:\n  _retry: -1\n  sh>: echo\n+c: {}\n")
    code, err = run_cli(tmp_path, capsys)
    assert code == 2
    assert len([line for line in err.splitlines() if line.startswith("offload: error: ")]) == 3


def test_misspelt_backend_in_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "flow.dig").write_text("+a:\n  sh>: echo hi\n")
    (tmp_path / "offload.yml").write_text("command_executor:\n  type: dokcer\n  lcoal: {}\n")
    code, err = run_cli(tmp_path, capsys)
    assert code == 2
    assert "offload.yml: command_executor.lcoal: unknown backend (known: " in err
    assert "offload.yml: command_executor.type: unknown backend 'dokcer'" in err


def test_unknown_key_in_a_backend_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "flow.dig").write_text("+a:\n  sh>: echo hi\n")
    (tmp_path / "offload.yml").write_text("command_executor:\n  local:\n    shel: /bin/sh\n")
    code, err = run_cli(tmp_path, capsys)
    assert code == 2
    assert "offload.yml: command_executor.local: unknown key 'shel' (known keys: shell)" in err


def test_missing_workflow_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(tmp_path, capsys)
    assert code == 2
    assert "cannot read workflow file" in err


def test_bad_param_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "flow.dig").write_text("+a:\n  sh>: echo hi\n")
    code, err = run_cli(tmp_path, capsys, "-p", "novalue")
    assert code == 2
    assert "-p 'novalue': expected KEY=VALUE" in err


# Random documents: a run or a clear error, never a traceback. Commands come from a
# harmless set; everything around them (keys, nesting, types) is random.
commands = st.sampled_from(["echo hi", "exit 1", "true", "echo ${greeting}", "echo ${nope}"])
scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.text(max_size=5), commands)
keys = st.one_of(
    st.sampled_from(["+a", "+b", "+c", "sh>", "py>", "rb>", "_export", "_env", "_retry", "_parallel", "_error", "greeting", "docker", "timeout"]),
    st.text(max_size=4),
)
documents = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(keys, children, max_size=4)),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=documents)
def test_random_workflows_run_or_fail_clearly(tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str], doc: object) -> None:
    import yaml

    project = tmp_path_factory.mktemp("random")
    (project / "flow.dig").write_text(yaml.safe_dump(doc))
    code = main(["run", str(project / "flow.dig")])
    err = capsys.readouterr().err
    assert code in (0, 1, 2), err
    assert "Traceback" not in err
    assert "unexpected" not in err, err  # an internal error, caught by main() as a last resort
    if code == 2:
        assert "offload: error: " in err


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=documents)
def test_random_configs_load_or_fail_clearly(tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str], doc: object) -> None:
    import yaml

    project = tmp_path_factory.mktemp("config")
    (project / "flow.dig").write_text("+a:\n  sh>: 'true'\n")
    (project / "offload.yml").write_text(yaml.safe_dump({"command_executor": doc}))
    code = main(["explain", str(project / "flow.dig")])
    err = capsys.readouterr().err
    assert code in (0, 2), err
    assert "Traceback" not in err
    assert "unexpected" not in err, err


def _without(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """As if the distribution of plugin ``name`` were not installed."""
    import importlib.metadata

    real = importlib.metadata.entry_points

    def without(**kwargs: object) -> object:
        return [ep for ep in real(**kwargs) if ep.name != name]  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.metadata, "entry_points", without)


def _without_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    _without(monkeypatch, "docker")


@pytest.mark.parametrize("command", ["explain", "run"])
def test_a_task_for_a_missing_backend_is_not_run_elsewhere(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _without_docker(monkeypatch)
    (tmp_path / "flow.dig").write_text("_export:\n  docker:\n    image: python:3.12-slim\n+a:\n  sh>: echo hi\n")
    assert main([command, str(tmp_path / "flow.dig")]) == 2
    err = capsys.readouterr().err
    assert err == (
        "offload: error: flow.dig: +flow+a: docker: set for this task, but the docker backend is not installed "
        "(pip install offload-docker); local would ignore it\n"
    )
    assert not (tmp_path / ".offload" / "io").exists(), "nothing was launched"


def test_a_task_section_of_a_backend_offload_knows_but_nobody_installed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _without(monkeypatch, "kubernetes")
    (tmp_path / "flow.dig").write_text("+a:\n  kubernetes:\n    namespace: batch\n  sh>: echo hi\n")
    assert main(["run", str(tmp_path / "flow.dig")]) == 2
    assert "+flow+a: kubernetes: set for this task, but the kubernetes backend is not installed (pip install offload-kubernetes)" in capsys.readouterr().err


def test_forced_local_ignores_other_backends_sections_and_keeps_them_out_of_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _without_docker(monkeypatch)
    monkeypatch.setenv("OFFLOAD_EXECUTOR", "local")
    (tmp_path / "flow.dig").write_text("_export:\n  docker:\n    image: x\n  kubernetes: {namespace: b}\n+a:\n  sh>: env > env.txt\n")
    assert main(["run", str(tmp_path / "flow.dig")]) == 0, capsys.readouterr().err
    names = {line.split("=", 1)[0] for line in (tmp_path / "env.txt").read_text().splitlines()}
    assert not names & {"docker", "kubernetes", "ecs", "local"}


def test_explain_says_when_a_backend_is_disabled(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFLOAD_DISABLE_PLUGINS", "docker")
    (tmp_path / "flow.dig").write_text("_export:\n  docker:\n    image: python:3.12-slim\n+a:\n  sh>: echo hi\n")
    assert main(["explain", str(tmp_path / "flow.dig")]) == 2
    assert "+flow+a: docker: set for this task, but the docker backend is disabled by OFFLOAD_DISABLE_PLUGINS" in capsys.readouterr().err


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:00:00-14:00"])
def test_a_session_time_out_of_range_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], when: str) -> None:
    (tmp_path / "flow.dig").write_text("+a:\n  sh>: echo a > ran\n")
    code, err = run_cli(tmp_path, capsys, "--session-time", when)
    assert code == 2
    assert f"offload: error: session time {when!r}: out of the range of dates" in err
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/null", "."])
def test_a_workflow_that_is_not_a_regular_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], path: str) -> None:
    code = main(["run", path])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"offload: error: {path}: ") and "unexpected" not in err


def test_a_huge_workflow_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "flow.dig").write_bytes(b"# padding\n" * (2 << 20))
    code, err = run_cli(tmp_path, capsys)
    assert code == 2
    assert "is larger than 16 MiB: not a workflow file" in err


@pytest.mark.parametrize("timeout", ["-1", "0", "abc", "nan", "inf"])
def test_a_bad_timeout_from_the_command_line_is_refused_before_anything_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str], timeout: str) -> None:
    (tmp_path / "flow.dig").write_text("+a:\n  sh>: echo a > ran\n")
    code, err = run_cli(tmp_path, capsys, "-p", f"timeout={timeout}")
    assert code == 2
    assert f"flow.dig: +flow+a: timeout: must be a number of seconds above 0, got {timeout!r}" in err
    assert not (tmp_path / "ran").exists()


def test_bad_resources_are_refused_before_anything_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "flow.dig").write_text("+a:\n  resources: {memroy: 2}\n  sh>: echo a > ran\n")
    code, err = run_cli(tmp_path, capsys)
    assert code == 2
    assert "flow.dig: +flow+a: resources" in err and "memroy" in err
    assert not (tmp_path / "ran").exists()


def test_a_system_config_section_for_a_backend_not_installed_is_an_error_naming_the_package(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _without(monkeypatch, "ecs")
    (tmp_path / "flow.dig").write_text("+a:\n  sh>: echo hi > ran.txt\n")
    (tmp_path / "offload.yml").write_text("command_executor:\n  ecs:\n    name: my-cluster\n")
    assert main(["run", str(tmp_path / "flow.dig")]) == 2
    assert "offload.yml: command_executor.ecs: configures the ecs backend, which is not installed (pip install offload-ecs)" in capsys.readouterr().err
    assert not (tmp_path / "ran.txt").exists()  # not run locally instead
    (tmp_path / "offload.yml").write_text("command_executor:\n  ecs: {}\n")  # an empty section configures nothing
    assert main(["run", str(tmp_path / "flow.dig")]) == 0
