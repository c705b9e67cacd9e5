"""Selection as Digdag's executors choose: ``simple`` names the local backend, and a forced
backend hands the tasks it is not configured for on (ECS to Docker, Docker and any other
backend to local). The CLI's view of the same is in ``tests/e2e/test_cli_selection.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

import offload
from offload.executor.config import DEFAULT_ORDER, build_system_config, fallbacks
from offload.testing import make_request


@pytest.mark.parametrize(
    ("name", "expected"),
    [("ecs", ("docker", "local")), ("docker", ("local",)), ("local", ()), ("kubernetes", ("local",)), ("nice", ("local",))],
)
def test_where_each_forced_backend_hands_a_task_it_is_not_configured_for(name: str, expected: tuple[str, ...]) -> None:
    assert fallbacks(name) == expected


@pytest.mark.parametrize(
    ("section", "environ", "type_", "order"),
    [
        ({"type": "simple"}, {}, "local", DEFAULT_ORDER),
        ({"type": "docker"}, {"OFFLOAD_EXECUTOR": "simple"}, "local", DEFAULT_ORDER),
        ({"order": "ecs, simple"}, {}, "auto", ("ecs", "local")),
        ({"order": ["simple", "local"]}, {}, "auto", ("local",)),
    ],
)
def test_simple_is_read_as_local_wherever_a_backend_is_named(section: dict[str, object], environ: dict[str, str], type_: str, order: tuple[str, ...]) -> None:
    system = build_system_config({"command_executor": section}, "offload.yml", environ)
    assert (system.type, system.order) == (type_, order)
    assert system.type_alias == ("simple" if type_ == "local" else None)


def test_a_forced_backend_outside_digdags_order_hands_its_unconfigured_tasks_to_local(tmp_path: Path) -> None:
    request = make_request(tmp_path, "true", {})
    with offload.Executor({"command_executor": {"type": "kubernetes"}}) as executor:
        selection = executor.select(request)
    assert selection.backend == "local"
    assert [a.backend for a in selection.attempts] == ["kubernetes", "local"]
    assert "not configured" in selection.attempts[0].reasons[0]


def test_type_simple_says_so_when_chosen(tmp_path: Path) -> None:
    with offload.Executor({"command_executor": {"type": "simple"}}) as executor:
        selection = executor.select(make_request(tmp_path, "true", {"docker": {"image": "debian:12"}}))
    assert selection.backend == "local"
    assert selection.attempts[0].reasons == ("forced by command_executor.type: simple (Digdag's name for local)",)


def test_type_simple_runs_a_command(tmp_path: Path) -> None:
    with offload.Executor({"command_executor": {"type": "simple"}}) as executor:
        result = executor.run(make_request(tmp_path, "echo simple > simple.txt", {}))
    assert result.ok
    assert (tmp_path / "simple.txt").read_text() == "simple\n"
