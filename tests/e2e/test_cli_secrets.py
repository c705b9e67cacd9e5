"""``${secret:name}``: set with ``offload secrets``, used in ``_env``, never written anywhere in plain sight."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

OFFLOAD = [sys.executable, "-m", "offload.workflow.cli"]
VALUE = "s3cr3t-${not_a_param}-value"

FLOW = """\
_env:
  GROUP_PASS: ${secret:db.password}
+use:
  _env:
    PASS: "${secret:db.password}"
    TOKEN: prefix-${secret:api-key}
  sh>: |
    echo "got $PASS and $TOKEN"
    test "$PASS" = "$GROUP_PASS" && test "$PASS" = "$EXPECTED_PASS" && test "$TOKEN" = "prefix-$EXPECTED_TOKEN"
    printf '{"store_params": {"leak": "%s"}}' "$PASS" > "$OFFLOAD_IO_DIR/output.json"
+fail:
  _env:
    PASS: ${secret:db.password}
  sh>: echo "failing with $PASS" >&2; exit 3
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "OFFLOAD_DISABLE_PLUGINS": "docker ecs",
        "OFFLOAD_SECRETS_FILE": str(tmp_path / "home" / "secrets.json"),
        "OFFLOAD_SECRET_API_KEY": "from-env-1234",
        "EXPECTED_PASS": VALUE,  # the driver's environment reaches local tasks
        "EXPECTED_TOKEN": "from-env-1234",
    }


def offload(project: Path, env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OFFLOAD, *args], cwd=project, env=env, input=stdin, capture_output=True, text=True, timeout=120)


#: What the task itself wrote (its output, and its raw output as the local backend keeps it).
TASK_WRITTEN = {"output.json", "offload-local.log"}


def everything_offload_wrote(project: Path) -> bytes:
    """The journal (its WAL too), scripts, inputs: every file under .offload but the task's own."""
    files = [p for p in (project / ".offload").rglob("*") if p.is_file() and p.name not in TASK_WRITTEN]
    assert any(p.name == "runner.sh" for p in files)
    return b"".join(p.read_bytes() for p in files)


def test_a_secret_reaches_its_task_and_nothing_offload_writes(tmp_path: Path, env: dict[str, str]) -> None:
    assert offload(tmp_path, env, "secrets", "set", "db.password", stdin=VALUE + "\n").returncode == 0
    secrets_file = Path(env["OFFLOAD_SECRETS_FILE"])
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    listed = offload(tmp_path, env, "secrets", "list")
    assert listed.stdout.splitlines() == ["db.password"] and VALUE not in listed.stdout + listed.stderr

    (tmp_path / "flow.dig").write_text(FLOW)
    run = offload(tmp_path, env, "run", "flow.dig")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "[+flow+use] got *** and prefix-***" in run.stdout
    assert "failing with ***" in run.stdout
    assert re.search(r"\+flow\+use +local +succeeded", run.stdout)
    explain = offload(tmp_path, env, "explain", "flow.dig")
    assert explain.returncode == 0, explain.stderr
    for output in (run.stdout, run.stderr, explain.stdout, explain.stderr):
        assert VALUE not in output and "from-env-1234" not in output
    # the journal (with the stored param), the scripts, the io directories
    written = everything_offload_wrote(tmp_path)
    assert (tmp_path / ".offload" / "journal.sqlite").exists()
    assert VALUE.encode() not in written and b"from-env-1234" not in written


def test_a_missing_secret_stops_the_run_before_anything_runs(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "flow.dig").write_text("+a:\n  _env:\n    P: ${secret:nope}\n  sh>: touch ran\n")
    run = offload(tmp_path, env, "run", "flow.dig")
    assert run.returncode == 2
    assert "flow.dig: +flow+a: _env.P: ${secret:nope}: no secret named 'nope' (set it with `offload secrets set nope`" in run.stderr
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("where", ["sh>: echo ${secret:api-key}", "p: ${secret:api-key}\n  sh>: echo", "_export:\n    p: ${secret:api-key}\n  sh>: echo"])
def test_a_secret_outside_env_is_refused(tmp_path: Path, env: dict[str, str], where: str) -> None:
    (tmp_path / "flow.dig").write_text(f"+a:\n  {where}\n")
    run = offload(tmp_path, env, "run", "flow.dig")
    assert run.returncode == 2, run.stderr
    assert "${secret:api-key}: a secret can be used only in an _env value" in run.stderr


def test_a_secrets_file_others_can_read_is_refused(tmp_path: Path, env: dict[str, str]) -> None:
    assert offload(tmp_path, env, "secrets", "set", "db.password", stdin="x" * 8).returncode == 0
    os.chmod(env["OFFLOAD_SECRETS_FILE"], 0o644)
    (tmp_path / "flow.dig").write_text("+a:\n  _env:\n    P: ${secret:db.password}\n  sh>: touch ran\n")
    run = offload(tmp_path, env, "run", "flow.dig")
    assert run.returncode == 2
    assert f"secrets file {env['OFFLOAD_SECRETS_FILE']} can be read by others (mode 644): chmod 600" in run.stderr
    assert not (tmp_path / "ran").exists()


def test_set_from_file_and_delete(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "value").write_text("multi\nline\n")
    assert offload(tmp_path, env, "secrets", "set", "cert", "--from-file", "value").returncode == 0
    (tmp_path / "flow.dig").write_text("+a:\n  _env:\n    C: ${secret:cert}\n  sh>: printf '%s' \"$C\" > seen\n")
    assert offload(tmp_path, env, "run", "flow.dig").returncode == 0
    assert (tmp_path / "seen").read_text() == "multi\nline\n"
    assert offload(tmp_path, env, "secrets", "delete", "cert").returncode == 0
    assert offload(tmp_path, env, "secrets", "list").stdout == ""
    missing = offload(tmp_path, env, "secrets", "delete", "cert")
    assert missing.returncode == 2 and "no secret named 'cert'" in missing.stderr
    bad = offload(tmp_path, env, "secrets", "set", "bad name", stdin="x")
    assert bad.returncode == 2 and "secret name 'bad name'" in bad.stderr
