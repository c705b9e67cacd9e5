"""Secrets: ``${secret:name}`` in a task's ``_env``, as in Digdag.

A secret comes from the environment variable ``OFFLOAD_SECRET_<NAME>`` (the name in
upper case, ``.`` and ``-`` as ``_``), else from the local secrets file that
``offload secrets set`` writes (``$OFFLOAD_SECRETS_FILE``, default
``~/.config/offload/secrets.json``, private to its owner: a file others can read is
refused, as ssh refuses a readable key). A secret reaches its task only as an
environment variable, never in a script, a command line or a param, and its value
is masked (``***``) wherever offload writes something: the console, events, error
messages and the journal.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from offload.executor.errors import UsageError
from offload.executor.models import Result

REFERENCE = re.compile(r"\$\{\s*secret:([^{}]*?)\s*\}")
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
MASK = "***"
#: Values shorter than this are not masked: ``1`` or ``ok`` would mask half the log.
MIN_MASKED = 4


def env_name(name: str) -> str:
    return "OFFLOAD_SECRET_" + re.sub(r"[.-]", "_", name).upper()


def default_path() -> str:
    configured = os.environ.get("OFFLOAD_SECRETS_FILE")
    if configured:
        return configured
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "offload", "secrets.json")


class SecretStore:
    """The secrets this driver can see: environment variables, then the secrets file."""

    def __init__(self, path: str | None = None, environ: Mapping[str, str] | None = None) -> None:
        self.path = path or default_path()
        self.environ = os.environ if environ is None else environ
        self._file: dict[str, str] | None = None

    def _read_file(self) -> dict[str, str]:
        if self._file is None:
            try:
                with open(self.path, encoding="utf-8") as f:
                    mode = os.fstat(f.fileno()).st_mode
                    if stat.S_IMODE(mode) & 0o077:
                        raise UsageError(f"secrets file {self.path} can be read by others (mode {stat.S_IMODE(mode):o}): chmod 600 {self.path}")
                    data = json.load(f)
            except FileNotFoundError:
                data = {}
            except (ValueError, UnicodeDecodeError):
                raise UsageError(f"secrets file {self.path} is not a JSON object of names to strings; fix it or remove it") from None
            if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
                raise UsageError(f"secrets file {self.path} is not a JSON object of names to strings; fix it or remove it")
            self._file = data
        return self._file

    def get(self, name: str) -> str | None:
        value = self.environ.get(env_name(name))
        return value if value is not None else self._read_file().get(name)

    def names(self) -> list[str]:
        return sorted(self._read_file())

    def set(self, name: str, value: str) -> None:
        check_name(name)
        self._write({**self._read_file(), name: value})

    def delete(self, name: str) -> bool:
        data = dict(self._read_file())
        found = data.pop(name, None) is not None
        if found:
            self._write(data)
        return found

    def _write(self, data: dict[str, str]) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), mode=0o700, exist_ok=True)
        tmp = f"{self.path}.tmp-{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
        os.replace(tmp, self.path)
        self._file = data


def check_name(name: str) -> None:
    if not NAME.match(name):
        raise UsageError(f"secret name {name!r}: use letters, digits, '_', '.' and '-'")


def secret_names(value: Any) -> list[str]:
    """The secrets ``value`` refers to."""
    return REFERENCE.findall(value) if isinstance(value, str) else []


def resolve(value: str, store: SecretStore, render: Callable[[str], str]) -> tuple[str, list[str]]:
    """``value`` with its secrets filled in and its other ``${...}`` rendered by ``render``.

    Secret values are put in after ``render`` ran, so they are never evaluated.
    Returns the text and the secret values used (for masking).
    """
    pieces = REFERENCE.split(value)
    used: list[str] = []
    out = []
    for i, piece in enumerate(pieces):
        if i % 2 == 0:
            out.append(render(piece))
            continue
        secret = store.get(piece)
        if secret is None:
            raise UsageError(missing_message(piece))
        used.append(secret)
        out.append(secret)
    return "".join(out), used


def missing_message(name: str) -> str:
    return f"${{secret:{name}}}: no secret named {name!r} (set it with `offload secrets set {name}` or the environment variable {env_name(name)})"


class Masker:
    """Replaces secret values with ``***`` in whatever offload is about to write."""

    def __init__(self) -> None:
        self.values: set[str] = set()

    def add(self, values: Iterable[str]) -> None:
        self.values.update(v for v in values if len(v) >= MIN_MASKED)

    def text(self, text: str) -> str:
        for value in sorted(self.values, key=len, reverse=True):
            if value in text:
                text = text.replace(value, MASK)
        return text

    def result(self, result: Result) -> Result:
        """``result`` with secrets masked in its error and output params (it is journaled)."""
        if not self.values:
            return result
        return attrs.evolve(
            result,
            error=None if result.error is None else self.text(result.error),
            store_params=self.data(result.store_params),
            export_params=self.data(result.export_params),
        )

    def data(self, value: Any) -> Any:
        if not self.values:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.data(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.data(v) for v in value]
        return value
