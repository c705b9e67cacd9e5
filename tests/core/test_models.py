"""The models cross process boundaries as JSON: each one must come back unchanged."""

from __future__ import annotations

import json
from typing import Any

import attrs
import cattrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from offload.executor.models import Handle, Health, ImageSpec, Problem, Resources, Result, Status, TaskRequest, TaskState
from offload.executor.serialization import from_dict, from_json, to_dict, to_json

NESTED_STATE: dict[str, Any] = {
    "pid": 4242,
    "start_time": "1234567",
    "cursor": {"offset": 1024, "files": ["log", "code"], "done": False},
    "containers": [{"id": "abc", "ports": [80, 443]}, None],
    "ratio": 0.25,
    "note": "naïve ✓ \"quoted\" \\ back",
}

HANDLE = Handle(backend="local", task_id="+flow+step", io_path="/p/.offload/io/t1", state=NESTED_STATE)

MODELS = [
    HANDLE,
    Handle(backend="ecs", task_id="t", io_path="/io"),
    TaskRequest(
        task_id="t1",
        argv=("/bin/sh", "-c", "echo hi"),
        project_dir="/project",
        workdir="sub",
        io_dir=".offload/io/t1",
        env={"A": "1", "EMPTY": ""},
        timeout=12.5,
        resources=Resources(cpu=0.5, memory=512, gpu=1),
        executor_config={"docker": {"image": "python:3.12", "run_options": ["-m", "1G"]}, "ecs": {}},
        labels={"team": "data"},
    ),
    TaskRequest(task_id="min", argv=["true"], project_dir="/p"),
    Status(TaskState.RUNNING, logs=("line 1", "line 2"), handle=HANDLE.with_state(cursor={"offset": 2048})),
    Status(TaskState.FAILED, exit_code=3, reason="exited with 3"),
    Result(
        TaskState.SUCCEEDED,
        exit_code=0,
        store_params={"answer": 42, "nested": {"k": [1, 2]}},
        export_params={"region": "eu"},
        output_files=("outputs/a.txt",),
        started_at=1700000000.125,
        finished_at=1700000003.5,
    ),
    Result(TaskState.LOST, error="the task vanished"),
    Problem("offload.yml: command_executor.ecs", "must be a mapping", fatal=True),
    Health(ok=False, summary="docker: engine not reachable", details=("tried unix:///var/run/docker.sock",)),
    ImageSpec("debian:12", build=("apt-get update", "apt-get install -y curl"), build_options=("--build-arg", "A=1")),
    Resources(),
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: type(m).__name__)
def test_every_model_round_trips_through_json_unchanged(model: Any) -> None:
    text = to_json(model)
    back = from_json(text, type(model))
    assert back == model
    assert to_json(back) == text
    json.loads(text)  # plain JSON, readable by any other process


def test_a_handle_keeps_its_nested_state_exactly() -> None:
    back = from_json(to_json(HANDLE), Handle)
    assert back.state == NESTED_STATE
    assert back.state["cursor"]["files"] == ["log", "code"]
    assert back.state["containers"][1] is None
    assert back.state["note"] == NESTED_STATE["note"]


def test_json_is_canonical_so_a_journal_can_compare_it() -> None:
    a = Handle("local", "t", "/io", {"b": 1, "a": 2})
    b = Handle("local", "t", "/io", {"a": 2, "b": 1})
    assert to_json(a) == to_json(b)


def test_the_task_state_is_stored_by_its_value() -> None:
    assert to_dict(Status(TaskState.CANCELLED))["state"] == "cancelled"
    assert from_dict({"state": "lost"}, Status).state is TaskState.LOST


def test_unknown_keys_are_refused_when_reading_a_model() -> None:
    data = to_dict(HANDLE) | {"surprise": 1}
    with pytest.raises(cattrs.ClassValidationError):
        from_dict(data, Handle)


def test_a_missing_required_field_is_refused() -> None:
    with pytest.raises(cattrs.ClassValidationError):
        from_json('{"backend": "local", "task_id": "t"}', Handle)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: type(m).__name__)
def test_models_are_frozen(model: Any) -> None:
    field = attrs.fields(type(model))[0].name
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(model, field, None)


def test_models_are_hashable_values() -> None:
    assert Problem("w", "m") == Problem("w", "m")
    assert len({Problem("w", "m"), Problem("w", "m"), Problem("w", "m", fatal=True)}) == 2
    assert hash(ImageSpec("a", ["b"])) == hash(ImageSpec("a", ("b",)))


def test_with_state_returns_a_new_handle_and_leaves_the_old_one() -> None:
    first = Handle("local", "t", "/io", {"pid": 1, "cursor": 0})
    second = first.with_state(cursor=10)
    assert second.state == {"pid": 1, "cursor": 10}
    assert first.state == {"pid": 1, "cursor": 0}
    assert second is not first


def test_sequences_are_normalised_to_tuples_of_strings() -> None:
    request = TaskRequest(task_id="t", argv=["echo", 1, 2.5], project_dir="/p")
    assert request.argv == ("echo", "1", "2.5")
    assert Status(TaskState.RUNNING, logs=["a"]).logs == ("a",)
    assert ImageSpec("i", build=["x"]).build == ("x",)


def test_request_paths_are_resolved_against_the_project() -> None:
    request = TaskRequest(task_id="t", argv=["true"], project_dir="/p", workdir="sub/../w", io_dir=".offload/io/t")
    assert request.work_path == "/p/w"
    assert request.io_path == "/p/.offload/io/t"


@pytest.mark.parametrize(
    ("started", "finished", "expected"),
    [(10.0, 12.5, 2.5), (None, 12.5, None), (10.0, None, None), (None, None, None), (12.0, 10.0, 0.0)],
)
def test_result_duration(started: float | None, finished: float | None, expected: float | None) -> None:
    assert Result(TaskState.SUCCEEDED, started_at=started, finished_at=finished).duration == expected


@pytest.mark.parametrize(
    ("state", "finished"),
    [
        (TaskState.PENDING, False),
        (TaskState.RUNNING, False),
        (TaskState.SUCCEEDED, True),
        (TaskState.FAILED, True),
        (TaskState.CANCELLED, True),
        (TaskState.LOST, True),
    ],
)
def test_task_state_finished(state: TaskState, finished: bool) -> None:
    assert state.finished is finished


def test_only_a_succeeded_result_is_ok() -> None:
    assert [s for s in TaskState if Result(s).ok] == [TaskState.SUCCEEDED]


def test_image_spec_needs_a_build_only_with_build_lines() -> None:
    assert not ImageSpec("debian:12").needs_build
    assert not ImageSpec("debian:12", build_options=["--pull"]).needs_build
    assert ImageSpec("debian:12", build=["true"]).needs_build


def test_problem_text_names_where_it_is() -> None:
    assert str(Problem("offload.yml: command_executor.type", "unknown backend")) == "offload.yml: command_executor.type: unknown backend"
    assert str(Problem("", "no place")) == "no place"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(
    backend=st.text(min_size=1, max_size=10),
    task_id=st.text(max_size=20),
    io_path=st.text(max_size=30),
    state=st.dictionaries(st.text(max_size=10), json_values, max_size=6),
)
def test_any_handle_with_json_able_state_round_trips(backend: str, task_id: str, io_path: str, state: dict[str, Any]) -> None:
    handle = Handle(backend=backend, task_id=task_id, io_path=io_path, state=state)
    text = to_json(handle)
    back = from_json(text, Handle)
    assert back == handle
    assert to_json(back) == text
    # and through a status, as a poll returns it
    status = Status(TaskState.RUNNING, handle=handle)
    assert from_json(to_json(status), Status) == status
