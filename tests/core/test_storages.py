"""Storages as a plugin kind: registered through ``offload_register_storages``, named by a
backend's config, parsed by their own plugin at config time, opened once per run, and
reached by a backend through the core only."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, ClassVar

import attrs
import pytest

import offload
from offload import Backend, BackendContext, Handle, Problem, Result, Status, Storage, StorageNotFound, StoredObject, TaskRequest, TaskState
from offload.executor.errors import ConfigError, PluginError
from offload.executor.plugins import make_plugin_manager
from offload.testing import make_request

WHERE = "offload.yml: command_executor.ship.temporal_storage"


@attrs.frozen
class DirConfig:
    root: str
    prefix: str = "offload/"


class DirStorage(Storage):
    """A storage in a local directory: enough to show the flow from config to backend."""

    name: ClassVar[str] = "dir"
    config_type: ClassVar[type] = DirConfig
    can_list = True
    opened = 0

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        DirStorage.opened += 1

    def _path(self, key: str) -> str:
        return os.path.join(self.config.root, self.config.prefix + key)

    def put(self, key: str, data: bytes | IO[bytes]) -> None:
        os.makedirs(os.path.dirname(self._path(key)), exist_ok=True)
        with open(self._path(key), "wb") as f:
            f.write(data if isinstance(data, bytes) else data.read())

    def get(self, key: str) -> bytes:
        try:
            with open(self._path(key), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise StorageNotFound(f"dir: {self.uri(key)}: not found") from None

    def exists(self, key: str) -> bool:
        return os.path.exists(self._path(key))

    def delete(self, key: str) -> None:
        if self.exists(key):
            os.remove(self._path(key))

    def presign_get(self, key: str, expires: int) -> str:
        return "file://" + self._path(key)

    def presign_put(self, key: str, expires: int) -> str:
        return "file://" + self._path(key)

    def uri(self, key: str) -> str:
        return "file://" + self._path(key)

    def list(self, prefix: str = "") -> list[StoredObject]:
        base = os.path.join(self.config.root, self.config.prefix)
        found = []
        for root, _, files in os.walk(base):
            for name in files:
                key = os.path.relpath(os.path.join(root, name), base)
                if key.startswith(prefix):
                    found.append(StoredObject(key, os.path.getsize(os.path.join(root, name)), os.path.getmtime(os.path.join(root, name))))
        return found


@attrs.frozen
class ShipConfig:
    storage: offload.StorageConfig | None = None


class ShipBackend(Backend):
    """A third party's remote backend: it ships the task's command line to its storage."""

    name: ClassVar[str] = "ship"
    config_type: ClassVar[type] = ShipConfig

    @classmethod
    def parse_config(cls, data: Mapping[str, Any], where: str, context: BackendContext | None = None) -> tuple[Any, list[Problem]]:
        context = context or BackendContext()
        if "temporal_storage" not in data:
            return ShipConfig(), []
        storage, problems = context.storages.parse(data["temporal_storage"], f"{where}.temporal_storage", {"dir": {"prefix": "shipped/"}})
        return (ShipConfig(storage) if storage else None), problems

    def submit(self, request: TaskRequest) -> Handle:
        assert self.config.storage is not None
        storage = self.context.storages.open(self.config.storage)
        storage.put(f"{request.task_id}/argv", " ".join(request.argv).encode())
        return Handle(self.name, request.task_id, request.io_path, {"key": f"{request.task_id}/argv"})

    def poll(self, handles: Sequence[Handle]) -> list[Status]:
        return [Status(TaskState.SUCCEEDED, exit_code=0) for _ in handles]

    def collect(self, handle: Handle) -> Result:
        return Result(TaskState.SUCCEEDED, exit_code=0)

    def cancel(self, handle: Handle, grace: float = 10.0) -> None:
        pass


class ShipPlugin:
    @offload.hookimpl
    def offload_register_backends(self, register: Callable[[type[Backend]], None]) -> None:
        register(ShipBackend)

    @offload.hookimpl
    def offload_register_storages(self, register: Callable[[type[Storage]], None]) -> None:
        register(DirStorage)


def executor(config: dict[str, Any]) -> offload.Executor:
    pm = make_plugin_manager([("ship", ShipPlugin())], load_entry_points=False)
    return offload.Executor(config, pm)


def storages(**kwargs: Any) -> offload.Storages:
    pm = make_plugin_manager([("ship", ShipPlugin())], **kwargs)
    return offload.Storages(pm.storages, frozenset(pm.disabled))


def test_a_backend_reaches_the_storage_its_config_names_through_the_core(tmp_path: Path) -> None:
    config = {"command_executor": {"type": "ship", "ship": {"temporal_storage": {"type": "dir", "dir": {"root": str(tmp_path)}}}}}
    DirStorage.opened = 0
    with executor(config) as ex:
        assert [(c.type, c.where) for c in ex.storages()] == [("dir", "(config): command_executor.ship.temporal_storage")]
        for _ in range(3):
            request = make_request(tmp_path, "echo shipped", {})
            ex.run(request)
            assert (tmp_path / "shipped" / request.task_id / "argv").read_text() == "/bin/sh -c echo shipped"
        assert DirStorage.opened == 1, "one instance per run"
        health = ex.check_storage(ex.storages()[0])
    assert health.ok and health.summary == "dir: ready"


def test_the_section_may_leave_out_type_when_it_holds_one_storage(tmp_path: Path) -> None:
    parsed, problems = storages(load_entry_points=False).parse({"dir": {"root": str(tmp_path)}}, WHERE)
    assert problems == [] and parsed is not None and parsed.type == "dir" and parsed.config == DirConfig(str(tmp_path))


def test_defaults_fill_in_what_the_section_leaves_out() -> None:
    parsed, _ = storages(load_entry_points=False).parse({"type": "dir", "dir": {"root": "/r"}}, WHERE, {"dir": {"root": "/d", "prefix": "p/"}})
    assert parsed is not None and parsed.config == DirConfig("/r", "p/")


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("dir", [f"{WHERE}: must be a mapping with type and that storage's keys"]),
        ({"type": "dir", "dir": {"root": "/x", "rot": "/x"}}, [f"{WHERE}.dir: unknown key 'rot'"]),
        ({"type": "dir", "dir": "/x"}, [f"{WHERE}.dir: must be a mapping"]),
        ({"type": "dir", "dir": {"root": "/x"}, "colour": "red"}, [f"{WHERE}.colour: unknown key (known keys: type, dir, gcs, s3)"]),
        ({"dir": {}, "s3": {}}, [f"{WHERE}.type: required: the storage to use (known: dir, gcs, s3)"]),
        ({"type": "s4"}, [f"{WHERE}.type: unknown storage type 's4' (known: dir, gcs, s3)"]),
        ({"type": "s3", "s3": {"bucket": "b"}}, [f"{WHERE}.type: the s3 storage is not installed (pip install offload-s3)"]),
        ({"type": 3}, [f"{WHERE}.type: must be a storage name, got 3"]),
    ],
)
def test_every_wrong_storage_key_is_one_fatal_problem_with_its_path(section: Any, expected: list[str]) -> None:
    parsed, problems = storages(load_entry_points=False).parse(section, WHERE)
    assert parsed is None and all(p.fatal for p in problems)
    found = [str(p) for p in problems]
    assert len(found) == len(expected) and all(f.startswith(e) for f, e in zip(found, expected, strict=True)), found


def test_a_disabled_storage_plugin_is_said_so() -> None:
    parsed, problems = storages(disabled={"s3"}).parse({"type": "s3", "s3": {"bucket": "b"}}, WHERE)
    assert parsed is None and [str(p) for p in problems] == [f"{WHERE}.type: the s3 storage is disabled by OFFLOAD_DISABLE_PLUGINS"]


def test_a_wrong_storage_section_stops_the_executor_before_anything_runs(tmp_path: Path) -> None:
    config = {"command_executor": {"type": "ship", "ship": {"temporal_storage": {"type": "dir", "dir": {"root": str(tmp_path), "prefx": "p"}}}}}
    with pytest.raises(ConfigError) as info:
        executor(config)
    assert str(info.value).startswith("(config): command_executor.ship.temporal_storage.dir: unknown key 'prefx'")


def test_two_plugins_registering_one_storage_name_is_an_error_naming_both() -> None:
    class Other(DirStorage):
        pass

    class OtherPlugin:
        @offload.hookimpl
        def offload_register_storages(self, register: Callable[[type[Storage]], None]) -> None:
            register(Other)

    with pytest.raises(PluginError) as info:
        make_plugin_manager([("ship", ShipPlugin()), ("other", OtherPlugin())], load_entry_points=False)
    assert "storage 'dir' is registered twice: by plugin 'ship'" in str(info.value) and "by plugin 'other'" in str(info.value)


def test_plugin_infos_list_the_storages_of_each_plugin() -> None:
    pm = make_plugin_manager([("ship", ShipPlugin())], load_entry_points=False)
    info = next(i for i in pm.plugin_infos() if i.name == "ship")
    assert (info.backends, info.storages) == (("ship",), ("dir",))


def test_url_lifetime_covers_the_timeout_within_the_storages_limit(tmp_path: Path) -> None:
    storage = DirStorage(DirConfig(str(tmp_path)))
    assert storage.url_lifetime(60) == 3660
    assert storage.url_lifetime(None) == storage.max_url_expiry == 7 * 24 * 3600
    assert storage.url_lifetime(30 * 24 * 3600) == storage.max_url_expiry


def test_the_readme_documents_every_member_of_the_storage_contract() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("### Writing a storage") : readme.index("### Hooks")]
    members = [name for name in vars(Storage) if not name.startswith("_") and name not in ("config",)]
    missing = [name for name in members if f"`{name}" not in section]
    assert members and not missing, f"README's 'Writing a storage' does not document: {missing}"
