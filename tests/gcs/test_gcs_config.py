"""The ``gcs:`` section of a storage, parsed through the core as a backend parses it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from gcs_harness import secret_of

import offload
from offload import Problem, StorageConfig
from offload_gcs import GcsConfig, GcsStorage

WHERE = "offload.yml: command_executor.ecs.temporal_storage"


@pytest.fixture(scope="module")
def storages() -> offload.Storages:
    pm = offload.make_plugin_manager()
    return offload.Storages(pm.storages)


def parse(storages: offload.Storages, gcs: Any) -> tuple[StorageConfig | None, list[Problem]]:
    return storages.parse({"type": "gcs", "gcs": gcs}, WHERE)


def messages(problems: list[Problem]) -> list[str]:
    assert all(p.fatal for p in problems)
    return [str(p) for p in problems]


def test_the_plugin_registers_the_storage() -> None:
    pm = offload.make_plugin_manager()
    assert pm.storages.get("gcs") is GcsStorage
    info = next(i for i in pm.plugin_infos() if i.storages == ("gcs",))
    assert (info.name, info.distribution) == ("gcs", "offload-gcs")


def test_a_bucket_is_enough(storages: offload.Storages) -> None:
    parsed, problems = parse(storages, {"bucket": "my-bucket"})
    assert problems == [] and parsed is not None
    assert parsed.type == "gcs" and parsed.where == WHERE
    assert parsed.config == GcsConfig(bucket="my-bucket")
    assert parsed.config.prefix == "offload/" and parsed.config.credentials_json is None
    assert isinstance(storages.open(parsed), GcsStorage)


@pytest.mark.parametrize(("given", "prefix"), [("runs", "runs/"), ("/a/b/", "a/b/"), ("team/x/", "team/x/"), ("/", "")])
def test_the_prefix_ends_in_a_slash(storages: offload.Storages, given: str, prefix: str) -> None:
    parsed, _ = parse(storages, {"bucket": "b", "prefix": given})
    assert parsed is not None and parsed.config.prefix == prefix


def test_every_key_digdag_knows(storages: offload.Storages, tmp_path: Path, account: dict[str, str]) -> None:
    key = tmp_path / "sa.json"
    key.write_text(json.dumps(account))
    gcs = {"bucket": "b", "prefix": "p", "project": "proj", "endpoint": "http://127.0.0.1:9023/", "credentials": {"json": {"path": str(key)}}}
    parsed, problems = parse(storages, gcs)
    assert problems == [] and parsed is not None
    config = parsed.config
    assert (config.bucket, config.prefix, config.project, config.endpoint) == ("b", "p/", "proj", "http://127.0.0.1:9023")
    assert config.client_email == account["client_email"] and config.credentials_source == f"{key} (gcs.credentials.json.path)"
    assert json.loads(config.credentials_json) == account


def test_dotted_keys_as_digdag_writes_them(storages: offload.Storages, tmp_path: Path, account: dict[str, str]) -> None:
    key = tmp_path / "sa.json"
    key.write_text(json.dumps(account))
    parsed, problems = parse(storages, {"bucket": "b", "credentials.json.path": str(key)})
    assert problems == [] and parsed is not None and parsed.config.client_email == account["client_email"]
    _, problems = parse(storages, {"bucket": "b", "credentials.json.path": str(key), "credentials": {"json": {"path": str(key)}}})
    assert messages(problems) == [f"{WHERE}.gcs.credentials.json.path: given twice (as a dotted key and in a mapping)"]


@pytest.mark.parametrize("as_text", [True, False])
def test_content_is_json_text_or_a_mapping(storages: offload.Storages, account: dict[str, str], as_text: bool) -> None:
    content = json.dumps(account) if as_text else account
    parsed, problems = parse(storages, {"bucket": "b", "credentials": {"json": {"content": content}}})
    assert problems == [] and parsed is not None
    assert parsed.config.credentials_source == "gcs.credentials.json.content"
    assert json.loads(parsed.config.credentials_json) == account


def test_every_wrong_key_is_reported_with_its_path(storages: offload.Storages) -> None:
    gcs = {
        "buckett": "b",
        "prefix": 3,
        "endpoint": "127.0.0.1:9023",
        "credentials": {"json": {"paht": "/x"}, "p12": {}},
        "region": "us",
    }
    _, problems = parse(storages, gcs)
    g = f"{WHERE}.gcs"
    assert messages(problems) == [
        f"{g}.buckett: unknown key (known keys: bucket, credentials, endpoint, prefix, project)",
        f"{g}.region: unknown key (known keys: bucket, credentials, endpoint, prefix, project)",
        f"{g}.prefix: must be a non-empty string, got 3",
        f"{g}.bucket: required key missing: the bucket that carries the project to the task",
        f"{g}.endpoint: must be a URL such as http://127.0.0.1:9023, got '127.0.0.1:9023'",
        f"{g}.credentials.p12: unknown key (known keys: json)",
        f"{g}.credentials.json.paht: unknown key (known keys: path, content)",
        f"{g}.credentials.json: needs path (a service-account key file) or content (the key itself)",
    ]


@pytest.mark.parametrize(
    ("gcs", "where", "message"),
    [
        ({"bucket": "gs://b/dir"}, "bucket", "must be a bucket name (without gs:// or a path; put a path in prefix), got 'gs://b/dir'"),
        ({"bucket": ""}, "bucket", "must be a non-empty string, got ''"),
        ({"bucket": "b", "credentials": "sa.json"}, "credentials", "must be a mapping with json.path or json.content"),
        ({"bucket": "b", "credentials": {"json": "sa.json"}}, "credentials.json", "must be a mapping with path or content"),
        ({"bucket": "b", "credentials": {"json": {"path": 7}}}, "credentials.json.path", "must be a file path, got 7"),
        ({"bucket": "b", "endpoint": "ftp://h"}, "endpoint", "must be a URL such as http://127.0.0.1:9023, got 'ftp://h'"),
        ({"bucket": "b", "credentials..json": 1}, "credentials..json", "empty key segment"),
        ({"bucket": "b", "endpoint": "http://user:hunter2@h"}, "endpoint", "must be a URL without credentials in it, such as http://127.0.0.1:9023"),
        (
            {"bucket": "b", "credentials": {"json": {"content": '{"type": 3}'}}},
            "credentials.json.content",
            "is not a service-account key (its type is not a type name, expected 'service_account'); for user credentials use Application Default Credentials",
        ),
    ],
)
def test_wrong_values(storages: offload.Storages, gcs: dict[str, Any], where: str, message: str) -> None:
    _, problems = parse(storages, gcs)
    assert messages(problems) == [f"{WHERE}.gcs.{where}: {message}"]


def test_path_and_content_are_one_or_the_other(storages: offload.Storages, account: dict[str, str], tmp_path: Path) -> None:
    key = tmp_path / "sa.json"
    key.write_text(json.dumps(account))
    _, problems = parse(storages, {"bucket": "b", "credentials": {"json": {"path": str(key), "content": account}}})
    assert messages(problems) == [f"{WHERE}.gcs.credentials.json: give path or content, not both"]
    assert secret_of(account) not in repr(problems)


def test_a_key_file_that_cannot_be_read(storages: offload.Storages, tmp_path: Path) -> None:
    where = f"{WHERE}.gcs.credentials.json.path"
    _, problems = parse(storages, {"bucket": "b", "credentials": {"json": {"path": str(tmp_path / "missing.json")}}})
    assert messages(problems) == [f"{where}: cannot read the service-account key {tmp_path / 'missing.json'}: No such file or directory"]
    _, problems = parse(storages, {"bucket": "b", "credentials": {"json": {"path": str(tmp_path)}}})
    assert messages(problems) == [f"{where}: cannot read the service-account key {tmp_path}: Is a directory"]
    p12 = tmp_path / "sa.p12"
    p12.write_bytes(b"\x30\x82\xff\xfe binary")
    _, problems = parse(storages, {"bucket": "b", "credentials": {"json": {"path": str(p12)}}})
    assert messages(problems) == [f"{where}: {p12} is not a JSON service-account key (P12 keys are not supported)"]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("not json {", "is not valid JSON (expected a service-account key, as `gcloud iam service-accounts keys create` writes it)"),
        ("[1, 2]", "must be a JSON object: a service-account key"),
        (
            {"type": "authorized_user", "client_id": "x", "refresh_token": "SECRET-REFRESH"},
            "is not a service-account key (its type is 'authorized_user', expected 'service_account'); "
            "for user credentials use Application Default Credentials",
        ),
        (
            {"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\nSECRET\n-----END PRIVATE KEY-----\n"},
            "is a service-account key without client_email",
        ),
        ({"type": "service_account", "client_email": "a@b", "private_key": "SECRET-NOT-PEM"}, "has a private_key that is not a PEM key"),
    ],
)
def test_a_document_that_is_not_a_service_account_key(storages: offload.Storages, tmp_path: Path, document: Any, message: str) -> None:
    text = document if isinstance(document, str) else json.dumps(document)
    key = tmp_path / "sa.json"
    key.write_text(text)
    for where, spec in (("path", str(key)), ("content", text)):
        _, problems = parse(storages, {"bucket": "b", "credentials": {"json": {where: spec}}})
        assert messages(problems) == [f"{WHERE}.gcs.credentials.json.{where}: {message}"]
        assert "SECRET" not in repr(problems)


def test_secrets_appear_in_no_message_and_no_repr(storages: offload.Storages, account: dict[str, str]) -> None:
    secret = secret_of(account)
    bad = {"bucket": "b", "credentials": {"json": {"content": json.dumps(account), "extra": account["private_key"]}}}
    _, problems = parse(storages, bad)
    assert [p.where for p in problems] == [f"{WHERE}.gcs.credentials.json.extra"]
    assert secret not in repr(problems)
    _, problems = parse(storages, {"bucket": "b", "credentials": {"json": {"content": 12345}}})
    assert messages(problems) == [f"{WHERE}.gcs.credentials.json.content: must be a service-account key (its JSON text, or a mapping)"]
    parsed, _ = parse(storages, {"bucket": "b", "credentials": {"json": {"content": account}}})
    assert parsed is not None
    storage = storages.open(parsed)
    for shown in (repr(parsed), repr(parsed.config), str(parsed.config), repr(storage)):
        assert secret not in shown and "PRIVATE KEY" not in shown


def test_a_disabled_or_missing_plugin_says_how_to_get_it() -> None:
    pm = offload.make_plugin_manager(disabled={"gcs"})
    assert pm.storages.get("gcs") is None
    _, problems = offload.Storages(pm.storages, disabled=frozenset(pm.disabled)).parse({"type": "gcs", "gcs": {"bucket": "b"}}, WHERE)
    assert messages(problems) == [f"{WHERE}.type: the gcs storage is disabled by OFFLOAD_DISABLE_PLUGINS"]
    _, problems = offload.Storages(pm.storages).parse({"type": "gcs", "gcs": {"bucket": "b"}}, WHERE)
    assert messages(problems) == [f"{WHERE}.type: the gcs storage is not installed (pip install offload-gcs)"]


def test_the_type_may_be_left_out(storages: offload.Storages) -> None:
    parsed, problems = storages.parse({"gcs": {"bucket": "b"}}, WHERE)
    assert problems == [] and parsed is not None and parsed.type == "gcs"
