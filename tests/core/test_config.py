"""The system config: where it is found, and how strictly it is read."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import attrs
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offload.executor.config import (
    DEFAULT_ORDER,
    SystemConfig,
    build_system_config,
    find_config_file,
    load_system_config,
    read_config_document,
    structure_strict,
)
from offload.executor.errors import ConfigError
from offload.executor.models import Problem


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OFFLOAD_CONFIG", raising=False)
    monkeypatch.delenv("OFFLOAD_EXECUTOR", raising=False)
    monkeypatch.chdir(tmp_path)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    return write(tmp_path / "project" / "flow.dig", "+t:\n  sh>: echo hi\n")


# --- where the config comes from ---------------------------------------------------------


def test_no_file_anywhere_gives_the_defaults(flow: Path) -> None:
    config = load_system_config(None, str(flow))
    assert config == SystemConfig(source="(defaults)", type="auto", order=DEFAULT_ORDER, sections={})
    assert config.order == ("ecs", "docker", "local")


def test_offload_yml_beside_the_workflow(flow: Path) -> None:
    write(flow.parent / "offload.yml", "command_executor:\n  type: docker\n")
    config = load_system_config(None, str(flow))
    assert config.type == "docker"
    assert config.source == "offload.yml"


def test_offload_yml_is_looked_for_beside_the_workflow_not_in_the_current_directory(tmp_path: Path, flow: Path) -> None:
    write(tmp_path / "offload.yml", "command_executor:\n  type: docker\n")  # the cwd
    assert load_system_config(None, str(flow)).type == "auto"


def test_without_a_workflow_the_current_directory_is_used(tmp_path: Path) -> None:
    write(tmp_path / "offload.yml", "command_executor:\n  type: local\n")
    assert load_system_config().type == "local"


def test_env_variable_beats_the_file_beside_the_workflow(tmp_path: Path, flow: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(flow.parent / "offload.yml", "command_executor:\n  type: docker\n")
    env_file = write(tmp_path / "elsewhere" / "site.yml", "command_executor:\n  type: ecs\n")
    monkeypatch.setenv("OFFLOAD_CONFIG", str(env_file))
    config = load_system_config(None, str(flow))
    assert config.type == "ecs"
    assert config.source == "site.yml"


def test_explicit_file_beats_the_env_variable_and_the_file_beside_the_workflow(tmp_path: Path, flow: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(flow.parent / "offload.yml", "command_executor:\n  type: docker\n")
    monkeypatch.setenv("OFFLOAD_CONFIG", str(write(tmp_path / "env.yml", "command_executor:\n  type: ecs\n")))
    explicit = write(tmp_path / "cli.yml", "command_executor:\n  type: local\n")
    assert load_system_config(str(explicit), str(flow)).type == "local"
    assert find_config_file(str(explicit), str(flow)) == str(explicit)


def test_an_empty_env_variable_is_ignored(flow: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFLOAD_CONFIG", "")
    assert find_config_file(None, str(flow)) is None


@pytest.mark.parametrize("how", ["explicit", "env"])
def test_a_named_file_that_does_not_exist_is_an_error_not_the_defaults(tmp_path: Path, flow: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    missing = str(tmp_path / "nope.yml")
    if how == "env":
        monkeypatch.setenv("OFFLOAD_CONFIG", missing)
    with pytest.raises(ConfigError) as e:
        load_system_config(missing if how == "explicit" else None, str(flow))
    assert str(e.value).startswith("nope.yml: cannot read config file")


def test_a_properties_file_is_read_as_properties(tmp_path: Path) -> None:
    path = write(tmp_path / "digdag.properties", "agent.command_executor.type = local\nagent.command_executor.order = docker,local\n")
    config = load_system_config(str(path))
    assert (config.type, config.order, config.source) == ("local", ("docker", "local"), "digdag.properties")


# --- OFFLOAD_EXECUTOR --------------------------------------------------------------------


def test_offload_executor_overrides_the_type(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "offload.yml", "command_executor:\n  type: ecs\n  docker:\n    image: x\n")
    monkeypatch.setenv("OFFLOAD_EXECUTOR", " local ")
    config = load_system_config(str(path))
    assert config.type == "local"
    assert config.sections == {"docker": {"image": "x"}}


def test_offload_executor_applies_to_the_defaults_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFLOAD_EXECUTOR", "docker")
    assert load_system_config().type == "docker"


@pytest.mark.parametrize("value", ["", "   "])
def test_a_blank_offload_executor_changes_nothing(value: str) -> None:
    assert build_system_config({"command_executor": {"type": "docker"}}, "f", environ={"OFFLOAD_EXECUTOR": value}).type == "docker"


# --- reading the document ----------------------------------------------------------------


def test_yaml_syntax_error_names_the_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "offload.yml", "command_executor:\n  type: local\n  docker: [a, b\n")
    with pytest.raises(ConfigError) as e:
        load_system_config(str(path))
    (problem,) = e.value.problems
    assert problem.fatal
    assert problem.where == "offload.yml"
    assert problem.message.startswith("not valid YAML (line 4, column 1): expected ',' or ']'")
    assert "<unicode string>" not in str(e.value)


def test_a_tab_indentation_error_is_located(tmp_path: Path) -> None:
    path = write(tmp_path / "offload.yml", "command_executor:\n\ttype: local\n")
    with pytest.raises(ConfigError, match=r"^offload\.yml: not valid YAML \(line 2, column 1\)"):
        read_config_document(str(path))


def test_a_control_character_is_located(tmp_path: Path) -> None:
    path = write(tmp_path / "offload.yml", "command_executor:\n  type: lo\x01cal\n")
    with pytest.raises(ConfigError) as e:
        read_config_document(str(path))
    assert str(e.value) == "offload.yml: not valid YAML (line 2, column 11): unacceptable character #x0001"


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "offload.yml"
    path.write_bytes(b"command_executor:\n  type: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"^offload\.yml: not UTF-8 text"):
        read_config_document(str(path))


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("just text\n", "str"), ("42\n", "int")])
def test_a_document_that_is_not_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    path = write(tmp_path / "offload.yml", text)
    with pytest.raises(ConfigError) as e:
        load_system_config(str(path))
    assert str(e.value) == f"offload.yml: must be a mapping, got {kind}"


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_an_empty_document_gives_the_defaults(tmp_path: Path, text: str) -> None:
    config = load_system_config(str(write(tmp_path / "offload.yml", text)))
    assert (config.type, config.order, config.sections) == ("auto", DEFAULT_ORDER, {})


def test_unknown_top_level_keys_are_all_reported(tmp_path: Path) -> None:
    path = write(tmp_path / "offload.yml", "command_executr:\n  type: local\nextra: 1\ncommand_executor: {}\n")
    with pytest.raises(ConfigError) as e:
        load_system_config(str(path))
    assert [str(p) for p in e.value.problems] == [
        "offload.yml: command_executr: unknown key (known keys: command_executor)",
        "offload.yml: extra: unknown key (known keys: command_executor)",
    ]


@pytest.mark.parametrize("section", [[], "local", 0, False, ["type", "local"]])
def test_command_executor_must_be_a_mapping(section: Any) -> None:
    with pytest.raises(ConfigError) as e:
        build_system_config({"command_executor": section}, "offload.yml", environ={})
    assert str(e.value) == "offload.yml: command_executor: must be a mapping"


def test_a_null_command_executor_is_empty() -> None:
    assert build_system_config({"command_executor": None}, "offload.yml", environ={}).type == "auto"


@pytest.mark.parametrize(
    ("order", "expected"),
    [(["local"], ("local",)), ("docker, local", ("docker", "local")), (("ecs", "local"), ("ecs", "local")), (" local ,", ("local",))],
)
def test_order_from_a_list_or_a_comma_separated_string(order: Any, expected: tuple[str, ...]) -> None:
    assert build_system_config({"command_executor": {"order": order}}, "f", environ={}).order == expected


@pytest.mark.parametrize("order", [[], "", " , ", 5, ["local", 3], {"a": 1}, [None]])
def test_bad_order(order: Any) -> None:
    with pytest.raises(ConfigError) as e:
        build_system_config({"command_executor": {"order": order}}, "offload.yml", environ={})
    assert str(e.value) == "offload.yml: command_executor.order: must be a list of backend names"


def test_every_top_level_problem_is_reported_at_once() -> None:
    data = {"zz": 1, "command_executor": {"type": 3, "order": 5}}
    with pytest.raises(ConfigError) as e:
        build_system_config(data, "offload.yml", environ={})
    assert [p.where for p in e.value.problems] == ["offload.yml: zz", "offload.yml: command_executor.type", "offload.yml: command_executor.order"]
    assert e.value.problems[1].message == "must be a string, got 3"
    assert e.value.exit_status == 2


def test_backend_sections_are_kept_raw_for_their_backends() -> None:
    config = build_system_config({"command_executor": {"type": "auto", "order": ["docker"], "docker": {"image": "x"}, "ecs": None}}, "f", environ={})
    assert config.sections == {"docker": {"image": "x"}, "ecs": None}
    assert config.where("docker", "image") == "f: command_executor.docker.image"


# --- structure_strict --------------------------------------------------------------------


@attrs.frozen
class Cluster:
    launch_type: Literal["FARGATE", "EC2"] = "FARGATE"
    region: str = "us-east-1"
    max_retries: int = 3
    subnets: tuple[str, ...] = ()
    use_environment_file: bool = False


@attrs.frozen
class Storage:
    bucket: str
    endpoint: str | None = None


@attrs.frozen
class Section:
    name: str = ""
    storage: Storage | None = None
    clusters: dict[str, Cluster] = attrs.field(factory=dict)
    cluster: Cluster = attrs.field(factory=Cluster)
    cpu: float | None = None
    ports: list[int] = attrs.field(factory=list)
    mode: Literal["fast", "safe"] | None = None
    level: Literal[1, 2, 3] = 1


WHERE = "offload.yml: command_executor.x"


def problems_of(data: Any, cls: type = Section) -> list[str]:
    value, problems = structure_strict(cls, data, WHERE)
    assert value is None
    assert problems
    assert all(isinstance(p, Problem) and p.fatal for p in problems)
    return [str(p) for p in problems]


def test_a_valid_section_is_structured() -> None:
    data = {
        "name": "digdag-test",
        "storage": {"bucket": "b"},
        "clusters": {"c1": {"launch_type": "EC2", "subnets": ["s-1", "s-2"]}},
        "cluster": {"max_retries": 5},
        "cpu": 0.5,
        "ports": [80, 443],
        "mode": "safe",
        "level": 2,
    }
    value, problems = structure_strict(Section, data, WHERE)
    assert problems == []
    assert value == Section(
        name="digdag-test",
        storage=Storage("b"),
        clusters={"c1": Cluster(launch_type="EC2", subnets=("s-1", "s-2"))},
        cluster=Cluster(max_retries=5),
        cpu=0.5,
        ports=[80, 443],
        mode="safe",
        level=2,
    )


def test_none_and_an_empty_mapping_are_the_defaults() -> None:
    assert structure_strict(Section, None, WHERE) == (Section(), [])
    assert structure_strict(Section, {}, WHERE) == (Section(), [])


def test_strings_are_coerced_as_properties_need() -> None:
    data = {
        "cluster": {"max_retries": " 7 ", "use_environment_file": "yes", "subnets": "subnet-1, subnet-2,"},
        "cpu": "1.5",
        "ports": "80,443",
        "level": "3",
        "name": 12,
    }
    value, problems = structure_strict(Section, data, WHERE)
    assert problems == []
    assert value is not None
    assert value.cluster == Cluster(max_retries=7, use_environment_file=True, subnets=("subnet-1", "subnet-2"))
    assert (value.cpu, value.ports, value.level, value.name) == (1.5, [80, 443], 3, "12")


@pytest.mark.parametrize(("text", "expected"), [("true", True), ("False", False), ("on", True), ("OFF", False), ("1", True), ("0", False)])
def test_bool_from_string(text: str, expected: bool) -> None:
    value, _ = structure_strict(Cluster, {"use_environment_file": text}, WHERE)
    assert value is not None and value.use_environment_file is expected


def test_the_example_from_the_design() -> None:
    assert problems_of({"cluster": {"launch_type": "FARGTE"}}) == [f"{WHERE}.cluster.launch_type: must be FARGATE or EC2, got 'FARGTE'"]


def test_an_unknown_key_lists_the_known_keys() -> None:
    assert problems_of({"cluster": {"zz": 1}}) == [
        f"{WHERE}.cluster: unknown key 'zz' (known keys: launch_type, region, max_retries, subnets, use_environment_file)"
    ]


def test_every_problem_is_reported_at_once_with_its_full_path() -> None:
    data = {
        "nmae": "typo",
        "storage": {},
        "clusters": {"c1": {"launch_type": "ec2", "max_retries": "three"}, "c2": "not a mapping", "it's": {"region": ["a"]}},
        "cluster": {"use_environment_file": "maybe", "subnets": [1, ["x"]]},
        "cpu": "lots",
        "ports": ["80", "http"],
        "mode": "quick",
        "level": 4,
    }
    assert sorted(problems_of(data)) == sorted(
        [
            f"{WHERE}: unknown key 'nmae' (known keys: name, storage, clusters, cluster, cpu, ports, mode, level)",
            f"{WHERE}.storage.bucket: required key missing",
            f"{WHERE}.clusters.c1.launch_type: must be FARGATE or EC2, got 'ec2'",
            f"{WHERE}.clusters.c1.max_retries: must be an integer, got 'three'",
            f"{WHERE}.clusters.c2: must be a mapping",
            f"{WHERE}.clusters.it's.region: must be a string, got ['a']",
            f"{WHERE}.cluster.use_environment_file: must be true or false, got 'maybe'",
            f"{WHERE}.cluster.subnets[1]: must be a string, got ['x']",
            f"{WHERE}.cpu: must be a number, got 'lots'",
            f"{WHERE}.ports[1]: must be an integer, got 'http'",
            f"{WHERE}.mode: must be fast or safe, got 'quick'",
            f"{WHERE}.level: must be 1, 2 or 3, got 4",
        ]
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"cluster": "EC2"}, f"{WHERE}.cluster: must be a mapping"),
        ({"cluster": ["EC2"]}, f"{WHERE}.cluster: must be a mapping"),
        ({"clusters": ["c1"]}, f"{WHERE}.clusters: must be a mapping"),
        ({"ports": {"http": 80}}, f"{WHERE}.ports: must be a list, got {{'http': 80}}"),
        ({"ports": 80}, f"{WHERE}.ports: must be a list, got 80"),
        ({"name": None}, f"{WHERE}.name: must be a string, got None"),
        ({"name": True}, f"{WHERE}.name: must be a string, got True"),
        ({"cluster": {"max_retries": True}}, f"{WHERE}.cluster.max_retries: must be an integer, got True"),
        ({"cluster": {"max_retries": 2.5}}, f"{WHERE}.cluster.max_retries: must be an integer, got 2.5"),
        ({"cluster": {"launch_type": None}}, f"{WHERE}.cluster.launch_type: must be FARGATE or EC2, got None"),
        ({"cluster": {"launch_type": ["EC2"]}}, f"{WHERE}.cluster.launch_type: must be FARGATE or EC2, got ['EC2']"),
        ({"cpu": "nan"}, f"{WHERE}.cpu: must be a number, got 'nan'"),
        ({"cpu": math.inf}, f"{WHERE}.cpu: must be a number, got inf"),
        ({"cpu": True}, f"{WHERE}.cpu: must be a number, got True"),
        ({"level": True}, f"{WHERE}.level: must be 1, 2 or 3, got True"),
    ],
)
def test_readable_messages(data: dict[str, Any], expected: str) -> None:
    assert problems_of(data) == [expected]


@pytest.mark.parametrize("text", ["ab", "a"])
def test_a_string_is_never_split_into_characters(text: str) -> None:
    @attrs.frozen
    class Chars:
        items: tuple[str, ...] = ()

    value, problems = structure_strict(Chars, {"items": text}, WHERE)
    assert problems == []
    assert value == Chars(items=(text,))


@pytest.mark.parametrize("data", [[1, 2], "text", 3, True])
def test_a_section_that_is_not_a_mapping(data: Any) -> None:
    assert problems_of(data) == [f"{WHERE}: must be a mapping, got {type(data).__name__}"]


# --- property: never a traceback ---------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
KNOWN_KEYS = ["command_executor", "type", "order", "local", "docker", "ecs", "zz"]
KNOWN_KEYS += [a.name for cls in (Section, Cluster, Storage) for a in attrs.fields(cls)]
keys = st.sampled_from(KNOWN_KEYS) | st.text(max_size=6)
documents = st.recursive(scalars, lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=5), max_leaves=25)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(document=st.dictionaries(keys, documents, max_size=4), executor=st.none() | st.text(max_size=5))
def test_random_documents_give_a_config_or_problems_never_a_traceback(document: dict[str, Any], executor: str | None) -> None:
    environ = {} if executor is None else {"OFFLOAD_EXECUTOR": executor}
    try:
        config = build_system_config(document, "offload.yml", environ=environ)
    except ConfigError as e:
        assert e.problems and all(p.fatal and p.where.startswith("offload.yml") for p in e.problems)
        return
    assert isinstance(config.type, str) and config.order
    for name, section in config.sections.items():
        value, problems = structure_strict(Section, section, config.where(name))
        assert (value is None) == bool(problems)
        for problem in problems:
            assert problem.where.startswith(f"offload.yml: command_executor.{name}")
            assert "Traceback" not in problem.message and "unknown error" not in problem.message


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(document=documents)
def test_random_yaml_files_give_a_config_or_a_config_error(tmp_path: Path, document: Any) -> None:
    path = tmp_path / "offload.yml"
    path.write_text(yaml.safe_dump(document))
    try:
        config = load_system_config(str(path))
    except ConfigError as e:
        assert all(str(p).startswith("offload.yml") for p in e.problems)
    else:
        assert config.source == "offload.yml"


@settings(max_examples=200)
@given(text=st.text(max_size=200))
def test_random_text_as_yaml_gives_a_config_or_a_config_error(text: str) -> None:
    # YAML parser errors of every kind are reported as problems, not raised
    path = Path("offload.yml")
    path.write_text(text, encoding="utf-8")
    try:
        load_system_config(str(path))
    except ConfigError as e:
        assert str(e).startswith("offload.yml: ")
