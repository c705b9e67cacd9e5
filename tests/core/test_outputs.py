"""What a task leaves in its io directory becomes part of its result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from offload.executor.models import Result, TaskState
from offload.executor.outputs import read_outputs

OK = Result(TaskState.SUCCEEDED, exit_code=0, started_at=1.0, finished_at=2.0)


def with_output(io: Path, content: Any, result: Result = OK) -> Result:
    (io / "output.json").write_text(content if isinstance(content, str) else json.dumps(content))
    return read_outputs(result, str(io))


def test_nothing_written_leaves_the_result_as_it_is(tmp_path: Path) -> None:
    assert read_outputs(OK, str(tmp_path)) is OK
    assert read_outputs(OK, str(tmp_path / "missing")) is OK


def test_store_and_export_params_are_read(tmp_path: Path) -> None:
    result = with_output(tmp_path, {"store_params": {"answer": 42, "nested": {"a": [1, None]}}, "export_params": {"region": "eu"}})
    assert result.store_params == {"answer": 42, "nested": {"a": [1, None]}}
    assert result.export_params == {"region": "eu"}
    assert (result.state, result.exit_code, result.error) == (TaskState.SUCCEEDED, 0, None)
    assert (result.started_at, result.finished_at) == (1.0, 2.0)


def test_params_are_merged_over_what_the_backend_reported(tmp_path: Path) -> None:
    base = Result(TaskState.SUCCEEDED, exit_code=0, store_params={"a": 1, "b": 1}, export_params={"x": 1})
    result = with_output(tmp_path, {"store_params": {"b": 2, "c": 3}}, base)
    assert result.store_params == {"a": 1, "b": 2, "c": 3}
    assert result.export_params == {"x": 1}


@pytest.mark.parametrize("content", [{}, {"store_params": None, "export_params": {}}, {"unrelated": True}])
def test_an_output_without_params_changes_nothing(tmp_path: Path, content: dict[str, Any]) -> None:
    result = with_output(tmp_path, content)
    assert (result.state, result.store_params, result.export_params, result.error) == (TaskState.SUCCEEDED, {}, {}, None)


@pytest.mark.parametrize(
    ("error", "message"),
    [
        ({"message": "division by zero", "class": "ZeroDivisionError"}, "ZeroDivisionError: division by zero"),
        ({"message": "only a message"}, "only a message"),
        ({"class": "KeyError"}, "KeyError"),
        ("a plain string", "a plain string"),
    ],
)
def test_an_error_in_output_json_fails_a_succeeded_result(tmp_path: Path, error: Any, message: str) -> None:
    result = with_output(tmp_path, {"error": error, "store_params": {"partial": True}})
    assert result.state is TaskState.FAILED
    assert result.exit_code == 1, "a task that exited 0 but reported an error still fails with a non-zero code"
    assert result.error == message
    assert result.store_params == {"partial": True}
    assert not result.ok


def test_an_error_keeps_a_non_zero_exit_code_and_the_failed_state(tmp_path: Path) -> None:
    failed = Result(TaskState.FAILED, exit_code=3, error="exit code 3")
    result = with_output(tmp_path, {"error": {"message": "bad input", "class": "ValueError"}}, failed)
    assert (result.state, result.exit_code, result.error) == (TaskState.FAILED, 3, "ValueError: bad input")


def test_an_error_does_not_turn_a_cancelled_task_into_a_failed_one(tmp_path: Path) -> None:
    cancelled = Result(TaskState.CANCELLED, exit_code=None)
    result = with_output(tmp_path, {"error": "interrupted"}, cancelled)
    assert (result.state, result.exit_code) == (TaskState.CANCELLED, None)


@pytest.mark.parametrize("error", [None, "", {}])
def test_an_empty_error_is_no_error(tmp_path: Path, error: Any) -> None:
    assert with_output(tmp_path, {"error": error}).ok


@pytest.mark.parametrize("content", ["{not json", '{"store_params": {"a": 1}', "", b"\xff\xfe".decode("latin-1")])
def test_invalid_json_fails_the_task_with_a_message(tmp_path: Path, content: str) -> None:
    result = with_output(tmp_path, content)
    assert result.state is TaskState.FAILED
    assert result.exit_code == 1
    assert (result.error or "").startswith("output.json is not valid JSON: ")
    assert result.store_params == {}


def test_output_json_that_is_not_utf8_fails_the_task(tmp_path: Path) -> None:
    (tmp_path / "output.json").write_bytes(b'{"store_params": {"a": "\xff"}}')
    result = read_outputs(OK, str(tmp_path))
    assert result.state is TaskState.FAILED
    assert (result.error or "").startswith("output.json is not valid JSON")


@pytest.mark.parametrize(("content", "kind"), [([1, 2], "an array"), ('"x"', "a string"), (3, "a number"), (None, "null")])
def test_output_json_must_hold_an_object(tmp_path: Path, content: Any, kind: str) -> None:
    result = with_output(tmp_path, content)
    assert (result.state, result.error) == (TaskState.FAILED, f"output.json must hold a JSON object, got {kind}")


@pytest.mark.parametrize("field", ["store_params", "export_params"])
def test_params_that_are_not_an_object_fail_the_task_instead_of_vanishing(tmp_path: Path, field: str) -> None:
    result = with_output(tmp_path, {field: ["a", "b"]})
    assert (result.state, result.error) == (TaskState.FAILED, f"output.json: {field} must be a JSON object, got an array")


def test_the_tasks_own_error_wins_over_a_malformed_param(tmp_path: Path) -> None:
    result = with_output(tmp_path, {"store_params": 5, "error": {"message": "real cause"}})
    assert result.error == "real cause"


def test_output_files_are_listed_relative_to_the_io_directory_and_sorted(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    (out / "deep" / "er").mkdir(parents=True)
    (out / "b.txt").write_text("b")
    (out / "a.csv").write_text("a")
    (out / "deep" / "er" / "c.bin").write_bytes(b"\0")
    (out / "empty-dir").mkdir()
    (tmp_path / "not-an-output.txt").write_text("x")
    result = read_outputs(OK, str(tmp_path))
    assert result.output_files == ("outputs/a.csv", "outputs/b.txt", "outputs/deep/er/c.bin")
    assert result.ok


def test_an_empty_outputs_directory_lists_nothing(tmp_path: Path) -> None:
    (tmp_path / "outputs").mkdir()
    assert read_outputs(OK, str(tmp_path)).output_files == ()


def test_output_files_and_params_together(tmp_path: Path) -> None:
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "report.html").write_text("<p>")
    result = with_output(tmp_path, {"export_params": {"report": "outputs/report.html"}})
    assert result.output_files == ("outputs/report.html",)
    assert result.export_params == {"report": "outputs/report.html"}
