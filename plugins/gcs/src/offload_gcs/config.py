"""The keys under ``gcs:`` in a storage section, as Digdag's GCS storage reads them::

    temporal_storage:
      type: gcs
      gcs:
        bucket: my-bucket                    # required
        prefix: offload/                     # keys go under it (default offload/)
        project: my-project                  # optional: the service account's project_id otherwise
        credentials:                         # else Application Default Credentials
          json:
            path: /secrets/offload-sa.json   # a service-account key file, or
            content: '{"type": "service_account", ...}'   # the key itself (JSON text or a mapping)
        endpoint: http://127.0.0.1:9023      # offload's addition: an emulator (or STORAGE_EMULATOR_HOST)

Digdag writes these keys as properties (``gcs.credentials.json.path``): a dotted key such
as ``credentials.json.path`` is accepted as well as the nested mappings above.

Nothing here talks to Google or imports its libraries: a key file is read and checked to
be a service-account key, so that a wrong path is reported with the other config problems.
No value that may be a secret (the key, its content) is ever put in a message or a repr.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

from offload import Problem

KEYS = ("bucket", "credentials", "endpoint", "prefix", "project")
#: The keys a service-account key file must have to sign URLs and get tokens.
SERVICE_ACCOUNT_KEYS = ("client_email", "private_key")
#: Digdag's key for credentials, for messages.
CREDENTIALS_HINT = "gcs.credentials.json.path"


@attrs.frozen
class GcsConfig:
    """The parsed ``gcs:`` section.

    ``credentials_json`` is the service-account key as JSON text (read from
    ``credentials.json.path`` or given as ``credentials.json.content``); ``None`` means
    Application Default Credentials. ``credentials_source`` says where it came from, for
    messages; ``client_email`` names the account (not a secret).
    """

    bucket: str
    prefix: str = "offload/"
    project: str | None = None
    endpoint: str | None = None
    credentials_json: str | None = attrs.field(default=None, repr=False)
    credentials_source: str | None = None
    client_email: str | None = None


def _fatal(where: str, message: str) -> Problem:
    return Problem(where, message, fatal=True)


def _plain(value: Any) -> Any:
    """``value`` with every mapping in it copied into a ``dict`` (the caller's data is never changed)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _merge_into(node: dict[str, Any], key: str, value: Any, where: str, problems: list[Problem]) -> None:
    if key not in node:
        node[key] = value
    elif isinstance(node[key], dict) and isinstance(value, dict):
        for k, v in value.items():
            _merge_into(node[key], k, v, f"{where}.{k}", problems)
    else:
        problems.append(_fatal(where, "given twice (as a dotted key and in a mapping)"))


def _nest_dotted(data: Mapping[Any, Any], where: str, problems: list[Problem]) -> dict[str, Any]:
    """``data`` with dotted keys (``credentials.json.path``, as Digdag's properties write them) nested."""
    out: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = str(raw_key)
        parts = key.split(".")
        if not all(parts):
            problems.append(_fatal(f"{where}.{key}", "empty key segment"))
            continue
        tree = _plain(value)
        for part in reversed(parts[1:]):
            tree = {part: tree}
        _merge_into(out, parts[0], tree, f"{where}.{parts[0]}", problems)
    return out


def _string(data: Mapping[str, Any], key: str, where: str, problems: list[Problem]) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        problems.append(_fatal(f"{where}.{key}", f"must be a non-empty string, got {value!r}"))
        return None
    return value.strip()


def _endpoint(value: str, where: str, problems: list[Problem]) -> str | None:
    parts = urlsplit(value)
    if "@" in parts.netloc:  # user:password@host: not echoed
        problems.append(_fatal(where, "must be a URL without credentials in it, such as http://127.0.0.1:9023"))
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        problems.append(_fatal(where, f"must be a URL such as http://127.0.0.1:9023, got {value!r}"))
        return None
    return value.rstrip("/")


def check_service_account(text: str) -> tuple[str | None, str | None]:
    """``(client_email, None)`` when ``text`` is a service-account key, else ``(None, why)``.

    ``why`` never quotes the text: it is a private key.
    """
    try:
        info = json.loads(text)
    except ValueError:
        return None, "is not valid JSON (expected a service-account key, as `gcloud iam service-accounts keys create` writes it)"
    if not isinstance(info, Mapping):
        return None, "must be a JSON object: a service-account key"
    kind = info.get("type")
    if kind != "service_account":
        shown = "missing" if kind is None else repr(kind) if isinstance(kind, str) and len(kind) < 40 else "not a type name"
        return None, f"is not a service-account key (its type is {shown}, expected 'service_account'); for user credentials use Application Default Credentials"
    missing = [key for key in SERVICE_ACCOUNT_KEYS if not isinstance(info.get(key), str) or not info.get(key)]
    if missing:
        return None, f"is a service-account key without {' and '.join(missing)}"
    if "PRIVATE KEY-----" not in str(info["private_key"]):
        return None, "has a private_key that is not a PEM key"
    if "token_uri" in info and not isinstance(info["token_uri"], str):
        return None, "has a token_uri that is not a string"
    return str(info["client_email"]), None


def _credentials(creds: Any, where: str, problems: list[Problem]) -> dict[str, Any]:
    """The key under ``credentials.json``: read from ``path`` or taken from ``content``."""
    if not isinstance(creds, Mapping):
        problems.append(_fatal(where, "must be a mapping with json.path or json.content"))
        return {}
    for key in sorted(str(k) for k in creds if k != "json"):
        problems.append(_fatal(f"{where}.{key}", "unknown key (known keys: json)"))
    spec = creds.get("json")
    where = f"{where}.json"
    if not isinstance(spec, Mapping):
        problems.append(_fatal(where, "must be a mapping with path or content"))
        return {}
    for key in sorted(str(k) for k in spec if k not in ("path", "content")):
        problems.append(_fatal(f"{where}.{key}", "unknown key (known keys: path, content)"))
    has_path, has_content = spec.get("path") is not None, spec.get("content") is not None
    if has_path and has_content:
        problems.append(_fatal(where, "give path or content, not both"))
        return {}
    if not has_path and not has_content:
        problems.append(_fatal(where, "needs path (a service-account key file) or content (the key itself)"))
        return {}
    if has_path:
        path = spec["path"]
        where = f"{where}.path"
        if not isinstance(path, str) or not path.strip():
            problems.append(_fatal(where, f"must be a file path, got {path!r}"))
            return {}
        full = os.path.abspath(os.path.expanduser(path.strip()))
        try:
            with open(full, encoding="utf-8") as f:
                text = f.read()
        except UnicodeDecodeError:
            problems.append(_fatal(where, f"{full} is not a JSON service-account key (P12 keys are not supported)"))
            return {}
        except OSError as e:
            problems.append(_fatal(where, f"cannot read the service-account key {full}: {e.strerror or type(e).__name__}"))
            return {}
        source = f"{full} ({CREDENTIALS_HINT})"
    else:
        content = spec["content"]
        where = f"{where}.content"
        if isinstance(content, Mapping):
            try:
                text = json.dumps(dict(content))
            except (TypeError, ValueError):
                problems.append(_fatal(where, "must be a service-account key (a mapping of strings, or its JSON text)"))
                return {}
        elif isinstance(content, str) and content.strip():
            text = content
        else:
            problems.append(_fatal(where, "must be a service-account key (its JSON text, or a mapping)"))  # never echo it
            return {}
        source = "gcs.credentials.json.content"
    email, why = check_service_account(text)
    if why is not None:
        problems.append(_fatal(where, why))
        return {}
    return {"credentials_json": text, "credentials_source": source, "client_email": email}


def parse_gcs_config(data: Mapping[str, Any], where: str) -> tuple[GcsConfig | None, list[Problem]]:
    """``data`` (the mapping under ``gcs:``) as a :class:`GcsConfig`, with every problem."""
    problems: list[Problem] = []
    data = _nest_dotted(data, where, problems)
    for key in sorted(k for k in data if k not in KEYS):
        problems.append(_fatal(f"{where}.{key}", f"unknown key (known keys: {', '.join(KEYS)})"))
    values: dict[str, Any] = {}
    for key in ("bucket", "prefix", "project", "endpoint"):
        value = _string(data, key, where, problems)
        if value is not None:
            values[key] = value
    if "bucket" not in data:
        problems.append(_fatal(f"{where}.bucket", "required key missing: the bucket that carries the project to the task"))
    elif "bucket" in values and ("/" in values["bucket"] or values["bucket"].startswith("gs:")):
        problems.append(_fatal(f"{where}.bucket", f"must be a bucket name (without gs:// or a path; put a path in prefix), got {values['bucket']!r}"))
    if "prefix" in values:
        prefix = values["prefix"].lstrip("/")
        values["prefix"] = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    if "endpoint" in values:
        endpoint = _endpoint(values["endpoint"], f"{where}.endpoint", problems)
        if endpoint is None:
            del values["endpoint"]
        else:
            values["endpoint"] = endpoint
    if data.get("credentials") is not None:
        values.update(_credentials(data["credentials"], f"{where}.credentials", problems))
    if problems or "bucket" not in values:
        return None, problems
    return GcsConfig(**values), []
