"""A Docker task's log is kept by the driver: ``offload logs`` reads it after the container is gone."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from offload.workflow.cli import main

FLOW = """\
_export:
  docker:
    image: {image}
+step:
  sh>: |
    echo "from the container: $(cat /etc/debian_version >/dev/null && echo debian)"
    echo second line
"""


def test_a_docker_tasks_log_is_readable_after_its_container_was_removed(
    tmp_path: Path, image: str, engine: docker.DockerClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OFFLOAD_EXECUTOR", "docker")
    (tmp_path / "flow.dig").write_text(FLOW.format(image=image))
    assert main(["run", str(tmp_path / "flow.dig")]) == 0, capsys.readouterr()
    assert "started on docker" in capsys.readouterr().err
    assert engine.containers.list(all=True, filters={"label": f"offload.project={tmp_path}"}) == [], "removed once collected"
    assert main(["logs", "step", "--project", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "from the container: debian\nsecond line\n"
