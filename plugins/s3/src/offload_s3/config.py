"""The keys under ``s3:`` in a storage section, as Digdag's S3 storage reads them::

    temporal_storage:
      type: s3
      s3:
        bucket: my-bucket            # required
        endpoint: s3.amazonaws.com   # a host (Digdag) or a URL; default: AWS's endpoint for the region
        region: us-east-1
        prefix: offload/             # keys go under it (default offload/)
        credentials:                 # else the default chain (environment, ~/.aws, instance role)
          access-key-id: ...
          secret-access-key: ...
          session-token: ...         # offload's addition, for temporary credentials
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from offload import Problem

KEYS = ("bucket", "endpoint", "region", "prefix", "credentials")
CREDENTIAL_KEYS = {"access-key-id": "access_key_id", "secret-access-key": "secret_access_key", "session-token": "session_token"}


@attrs.frozen
class S3Config:
    bucket: str
    endpoint: str | None = None
    region: str | None = None
    prefix: str = "offload/"
    access_key_id: str | None = attrs.field(default=None, repr=False)
    secret_access_key: str | None = attrs.field(default=None, repr=False)
    session_token: str | None = attrs.field(default=None, repr=False)

    @property
    def endpoint_url(self) -> str | None:
        """Digdag's ``endpoint`` is a host name (``s3.amazonaws.com``); boto3 wants a URL or nothing."""
        endpoint = self.endpoint
        if not endpoint or endpoint in ("s3.amazonaws.com", "https://s3.amazonaws.com"):
            return None
        return endpoint if "://" in endpoint else f"https://{endpoint}"


def _fatal(where: str, message: str) -> Problem:
    return Problem(where, message, fatal=True)


def _credentials(creds: Any, where: str, problems: list[Problem]) -> dict[str, str]:
    """The ``credentials`` mapping's values; a wrong value is never echoed (it may be a secret)."""
    if not isinstance(creds, Mapping):
        problems.append(_fatal(where, "must be a mapping"))
        return {}
    values: dict[str, str] = {}
    for key in sorted(str(k) for k in creds):
        if key not in CREDENTIAL_KEYS:
            problems.append(_fatal(f"{where}.{key}", f"unknown key (known keys: {', '.join(CREDENTIAL_KEYS)})"))
        elif not isinstance(creds[key], str) or not creds[key]:
            problems.append(_fatal(f"{where}.{key}", "must be a non-empty string"))
        else:
            values[CREDENTIAL_KEYS[key]] = creds[key]
    if bool(values.get("access_key_id")) != bool(values.get("secret_access_key")):
        problems.append(_fatal(where, "access-key-id and secret-access-key go together"))
    return values


def parse_s3_config(data: Mapping[str, Any], where: str) -> tuple[S3Config | None, list[Problem]]:
    """``data`` (the mapping under ``s3:``) as an :class:`S3Config`, with every problem."""
    problems: list[Problem] = []
    for key in sorted(str(k) for k in data if k not in KEYS):
        problems.append(_fatal(f"{where}.{key}", f"unknown key (known keys: {', '.join(sorted(KEYS))})"))
    values: dict[str, Any] = {}
    for key in ("bucket", "endpoint", "region", "prefix"):
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            problems.append(_fatal(f"{where}.{key}", f"must be a non-empty string, got {value!r}"))
            continue
        values[key] = value.strip()
    if "bucket" not in data:
        problems.append(_fatal(f"{where}.bucket", "required key missing: the bucket that carries the project to the task"))
    if "prefix" in values:
        values["prefix"] = values["prefix"].lstrip("/")
        if values["prefix"] and not values["prefix"].endswith("/"):
            values["prefix"] += "/"
    if data.get("credentials") is not None:
        values.update(_credentials(data["credentials"], f"{where}.credentials", problems))
    if problems or "bucket" not in values:
        return None, problems
    return S3Config(**values), []
