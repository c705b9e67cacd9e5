"""The plugin manager: entry points, disabled plugins, broken plugins, backend conflicts."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import pytest

import offload
from offload import Backend, Handle, Result, Status, TaskRequest, TaskState, hookimpl
from offload.executor.errors import PluginError, UsageError
from offload.executor.plugins import OffloadPluginManager, PluginLoadError, disabled_from_env, make_plugin_manager
from offload_local.backend import LocalBackend

MakeDist = Callable[..., str]


def errors_of(pm: OffloadPluginManager, *names: str) -> list[PluginLoadError]:
    """Load errors of the named plugins only: other backends may be installed beside these tests."""
    return [e for e in pm.load_errors if e.name in names]


@pytest.fixture(autouse=True)
def _no_disabled_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OFFLOAD_DISABLE_PLUGINS", raising=False)


@pytest.fixture
def make_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeDist]:
    """Install a real distribution into a directory on ``sys.path``: module + dist-info with entry points.

    Returns the module name, unique per call so that ``sys.modules`` never mixes tests.
    """
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    modules: list[str] = []

    def make(entry_name: str, source: str, dist_name: str = "", version: str = "1.0") -> str:
        module = f"{entry_name.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
        dist_name = dist_name or f"offload-{entry_name}"
        (site / f"{module}.py").write_text(textwrap.dedent(source))
        info = site / f"{dist_name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[offload.backends]\n{entry_name} = {module}\n")
        modules.append(module)
        return module

    yield make
    for module in modules:
        sys.modules.pop(module, None)


GOOD_PLUGIN = """
    from typing import ClassVar
    import offload
    from offload_local.backend import LocalBackend

    class ShellBackend(LocalBackend):
        name: ClassVar[str] = "shell"

    @offload.hookimpl
    def offload_register_backends(register):
        register(ShellBackend)

    @offload.hookimpl
    def offload_prepare_request(backend, request):
        return {"labels": {"site": "yes"}}
"""


def test_the_local_backend_is_found_through_its_entry_point() -> None:
    pm = make_plugin_manager()
    assert pm.backends.get("local") is LocalBackend
    assert pm.backends.origin("local") == "local"
    assert pm.distributions["local"][0] == "offload-local"
    assert errors_of(pm, "local") == []


def test_without_entry_points_only_the_builtin_plugin_is_there() -> None:
    pm = make_plugin_manager(load_entry_points=False)
    assert pm.backends.names() == []
    assert [name for name, _ in pm.list_name_plugin()] == ["offload.builtin"]


@pytest.mark.parametrize("value", ["local", "docker,local", " ecs  local ", "local,"])
def test_offload_disable_plugins_disables_the_local_backend(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("OFFLOAD_DISABLE_PLUGINS", value)
    pm = make_plugin_manager()
    assert "local" not in pm.backends
    assert pm.get_plugin("local") is None
    assert "local" in pm.disabled


def test_disabled_from_env_parses_commas_and_spaces() -> None:
    assert disabled_from_env({"OFFLOAD_DISABLE_PLUGINS": "a, b  c,,d"}) == {"a", "b", "c", "d"}
    assert disabled_from_env({}) == set()


def test_the_disabled_argument_beats_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFLOAD_DISABLE_PLUGINS", "local")
    assert "local" in make_plugin_manager(disabled=[]).backends
    assert "local" not in make_plugin_manager(disabled=["local"]).backends


def test_a_plugin_from_a_distribution_is_loaded_with_its_name_and_version(make_dist: MakeDist) -> None:
    make_dist("shell", GOOD_PLUGIN, dist_name="offload-shell", version="2.3.4")
    pm = make_plugin_manager()
    assert errors_of(pm, "shell", "local") == []
    assert {"local", "shell"} <= set(pm.backends.names())
    info = {i.name: i for i in pm.plugin_infos()}["shell"]
    assert (info.distribution, info.version) == ("offload-shell", "2.3.4")
    assert info.hooks == ("offload_prepare_request", "offload_register_backends")
    assert info.backends == ("shell",)


def test_a_plugin_that_fails_to_import_is_reported_and_the_others_load(make_dist: MakeDist) -> None:
    make_dist("broken", "raise RuntimeError('no luck today')\n", dist_name="offload-broken", version="0.0.1")
    make_dist("shell", GOOD_PLUGIN)
    pm = make_plugin_manager()
    assert errors_of(pm, "broken", "shell", "local") == [PluginLoadError("broken", "offload-broken", "RuntimeError: no luck today")]
    assert str(errors_of(pm, "broken")[0]) == "plugin 'broken' (offload-broken) failed to load: RuntimeError: no luck today"
    assert pm.get_plugin("broken") is None
    assert {"local", "shell"} <= set(pm.backends.names())
    assert "broken" not in {i.name for i in pm.plugin_infos()}


def test_a_plugin_with_a_missing_dependency_is_reported(make_dist: MakeDist) -> None:
    make_dist("needy", "import offload_module_that_is_not_installed\n", dist_name="offload-needy")
    pm = make_plugin_manager()
    (error,) = errors_of(pm, "needy", "local")
    assert (error.name, error.distribution) == ("needy", "offload-needy")
    assert "ModuleNotFoundError" in error.error and "offload_module_that_is_not_installed" in error.error
    assert "local" in pm.backends


def test_a_disabled_broken_plugin_is_not_even_imported(make_dist: MakeDist, monkeypatch: pytest.MonkeyPatch) -> None:
    module = make_dist("broken", "raise RuntimeError('imported')\n")
    monkeypatch.setenv("OFFLOAD_DISABLE_PLUGINS", "broken")
    pm = make_plugin_manager()
    assert errors_of(pm, "broken") == []
    assert module not in sys.modules


def test_a_plugin_implementing_an_unknown_hook_is_reported_and_the_others_load(make_dist: MakeDist) -> None:
    make_dist(
        "typo",
        """
        import offload

        @offload.hookimpl
        def offload_register_backend(register):  # the spec is offload_register_backends
            pass
        """,
        dist_name="offload-typo",
    )
    pm = make_plugin_manager()
    (error,) = errors_of(pm, "typo", "local")
    assert (error.name, error.distribution) == ("typo", "offload-typo")
    assert error.error == "implements unknown hook(s): offload_register_backend"
    assert pm.get_plugin("typo") is None
    assert "local" in pm.backends


def test_a_plugin_whose_hook_has_wrong_arguments_is_reported(make_dist: MakeDist) -> None:
    make_dist(
        "badargs",
        """
        import offload

        @offload.hookimpl
        def offload_dockerfile(spec, extra):
            return ""
        """,
    )
    pm = make_plugin_manager()
    (error,) = errors_of(pm, "badargs", "local")
    assert error.name == "badargs"
    assert "PluginValidationError" in error.error
    assert "local" in pm.backends


def test_a_plugin_whose_registration_raises_is_reported(make_dist: MakeDist) -> None:
    make_dist(
        "explodes",
        """
        import offload

        @offload.hookimpl
        def offload_register_backends(register):
            raise KeyError("boom")

        @offload.hookimpl
        def offload_dockerfile(spec):
            return "FROM scratch\\n"
        """,
        dist_name="offload-explodes",
    )
    pm = make_plugin_manager()
    (error,) = errors_of(pm, "explodes", "local")
    assert (error.name, error.distribution) == ("explodes", "offload-explodes")
    assert error.error == "offload_register_backends failed: KeyError: 'boom'"
    # it is gone entirely, not half-registered
    assert pm.get_plugin("explodes") is None
    assert pm.hook.offload_dockerfile(spec=offload.ImageSpec("debian:12")) == "FROM debian:12\n"


class _Minimal(Backend):
    name: ClassVar[str] = "twin"

    def submit(self, request: TaskRequest) -> Handle:
        return Handle(self.name, request.task_id, request.io_path)

    def poll(self, handles: Sequence[Handle]) -> list[Status]:
        return [Status(TaskState.SUCCEEDED, exit_code=0) for _ in handles]

    def collect(self, handle: Handle) -> Result:
        return Result(TaskState.SUCCEEDED, exit_code=0)

    def cancel(self, handle: Handle, grace: float = 10.0) -> None:
        pass


class FirstTwin(_Minimal):
    pass


class SecondTwin(_Minimal):
    pass


class RegistersFirst:
    @hookimpl
    def offload_register_backends(self, register: Callable[[type[Backend]], None]) -> None:
        register(FirstTwin)


class RegistersSecond:
    @hookimpl
    def offload_register_backends(self, register: Callable[[type[Backend]], None]) -> None:
        register(SecondTwin)


def test_two_classes_registering_one_backend_name_is_an_error_naming_both() -> None:
    with pytest.raises(PluginError) as e:
        make_plugin_manager([("first-plugin", RegistersFirst()), ("second-plugin", RegistersSecond())], load_entry_points=False)
    message = str(e.value)
    assert "backend 'twin' is registered twice" in message
    assert "'first-plugin'" in message and "'second-plugin'" in message
    assert "FirstTwin" in message and "SecondTwin" in message
    assert isinstance(e.value, UsageError) and e.value.exit_status == 2


def test_two_plugins_registering_the_same_class_is_fine() -> None:
    class AlsoFirst:
        @hookimpl
        def offload_register_backends(self, register: Callable[[type[Backend]], None]) -> None:
            register(FirstTwin)

    pm = make_plugin_manager([RegistersFirst(), AlsoFirst()], load_entry_points=False)
    assert pm.backends.get("twin") is FirstTwin


def test_an_installed_plugin_clashing_with_the_local_backend_is_an_error(make_dist: MakeDist) -> None:
    make_dist(
        "impostor",
        """
        from typing import ClassVar
        import offload
        from offload_local.backend import LocalBackend

        class Impostor(LocalBackend):
            name: ClassVar[str] = "local"

        @offload.hookimpl
        def offload_register_backends(register):
            register(Impostor)
        """,
    )
    with pytest.raises(PluginError, match=r"backend 'local' is registered twice: by plugin '(local|impostor)'"):
        make_plugin_manager()


def test_a_class_without_a_name_cannot_be_registered() -> None:
    class Nameless:
        @hookimpl
        def offload_register_backends(self, register: Callable[[type[Backend]], None]) -> None:
            register(Backend)  # type: ignore[type-abstract]

    with pytest.raises(TypeError, match="has no name"):
        make_plugin_manager([Nameless()], load_entry_points=False)


def test_plugin_infos_lists_names_distributions_versions_hooks_and_backends() -> None:
    class SitePolicy:
        @hookimpl
        def offload_validate_config(self, backend: Backend, config: object, task: TaskRequest) -> None:
            return None

    pm = make_plugin_manager([("site-policy", SitePolicy()), ("twins", RegistersFirst())])
    infos = {i.name: i for i in pm.plugin_infos()}
    assert list(infos) == sorted(infos)

    local = infos["local"]
    assert (local.distribution, local.hooks, local.backends) == ("offload-local", ("offload_register_backends",), ("local",))
    import importlib.metadata

    assert local.version == importlib.metadata.version("offload-local")

    builtin = infos["offload.builtin"]
    assert (builtin.distribution, builtin.version) == ("offload", offload.__version__)
    assert builtin.hooks == ("offload_collect_result", "offload_dockerfile", "offload_submit_task", "offload_validate_config")
    assert builtin.backends == ()

    policy = infos["site-policy"]
    assert (policy.distribution, policy.version, policy.hooks, policy.backends) == (None, None, ("offload_validate_config",), ())
    assert infos["twins"].backends == ("twin",)


def test_each_manager_is_independent() -> None:
    a = make_plugin_manager([RegistersFirst()], load_entry_points=False)
    b = make_plugin_manager(load_entry_points=False)
    assert "twin" in a.backends and "twin" not in b.backends
    assert isinstance(a, OffloadPluginManager)


def test_importing_offload_builds_no_plugin_manager_and_loads_no_plugin() -> None:
    import subprocess

    code = "import sys, offload; offload.Handle; print(sorted(m for m in sys.modules if m.startswith(('offload_', 'pluggy'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
