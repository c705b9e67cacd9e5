"""Fixtures of the CLI tests (a test module's own fixture of the same name wins)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory whose tasks run on the local backend."""
    monkeypatch.setenv("OFFLOAD_EXECUTOR", "local")
    return tmp_path
