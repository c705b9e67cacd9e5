"""The two layers of the core: an embedder needs only the executor layer, the executor layer
never imports the workflow layer, and the core names no backend outside its data."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import offload

PACKAGE = Path(offload.__file__).resolve().parent
BACKEND_NAMES = {"local", "docker", "ecs", "kubernetes"}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_executor_layer_never_imports_the_workflow_layer() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(m for m in _imports(path) if m.startswith("offload.workflow"))
        for path in sorted((PACKAGE / "executor").rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_an_embedder_runs_a_command_without_loading_the_workflow_layer(tmp_path: Path) -> None:
    code = f"""
import json, sys
import offload
request = offload.TaskRequest(task_id="t1", argv=["/bin/sh", "-c", "echo embedded"], project_dir={str(tmp_path)!r}, io_dir=".offload/io/t1")
lines = []
with offload.Executor({{"command_executor": {{"type": "local"}}}}) as executor:
    result = executor.run(request, on_log=lines.append)
print(json.dumps({{"state": result.state.value, "lines": lines, "modules": sorted(m for m in sys.modules if m.startswith("offload"))}}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    report = json.loads(done.stdout)
    assert report["state"] == "succeeded" and report["lines"] == ["embedded"]
    assert "offload.executor.executor" in report["modules"]
    assert [m for m in report["modules"] if m.startswith("offload.workflow")] == []


DATA = ("DEFAULT_ORDER", "INSTALL_HINTS")


def _backend_names_in_code(path: Path) -> list[str]:
    """Backend names in string constants that are neither docstrings nor the core's data."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    allowed = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id in DATA for t in targets):
            allowed.update(id(c) for c in ast.walk(node) if isinstance(c, ast.Constant))
    return [
        f"{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.lower() in BACKEND_NAMES and id(node) not in allowed
    ]


def test_the_core_names_no_backend_outside_its_data() -> None:
    """Backend names appear only as data: Digdag's default order and the install hints."""
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        if {"runtime", "testing"} & set(path.relative_to(PACKAGE).parts):
            continue
        found.update(f"{path.relative_to(PACKAGE)}:{where}" for where in _backend_names_in_code(path))
    assert found == set()
