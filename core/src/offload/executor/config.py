"""System config: ``offload.yml`` or a Digdag ``.properties`` file, read strictly.

Every problem is reported at once with the file and key path, e.g.
``offload.yml: command_executor.ecs.digdag-test.launch_type: must be FARGATE or EC2, got 'FARGTE'``.
"""

from __future__ import annotations

import math
import os
import re
import typing
from collections.abc import Mapping
from typing import Any, TypeVar, cast

import attrs
import cattrs
import yaml
from cattrs.cols import homogenous_tuple_structure_factory, list_structure_factory

from offload.executor.errors import ConfigError
from offload.executor.models import Problem
from offload.executor.properties import parse_properties, properties_to_tree

CONFIG_ENV = "OFFLOAD_CONFIG"
EXECUTOR_ENV = "OFFLOAD_EXECUTOR"
DEFAULT_FILE = "offload.yml"
DEFAULT_ORDER = ("ecs", "docker", "local")
#: Digdag's names for offload's backends: ``simple`` is Digdag's local executor.
TYPE_ALIASES = {"simple": DEFAULT_ORDER[-1]}

#: Data, not logic: the distributions of the backends offload's authors publish, named in
#: "pip install ..." hints, and whose task keys are reserved even where not installed (so
#: that ``docker:`` never becomes an environment variable on a machine without offload-docker).
INSTALL_HINTS = {
    "local": "offload-local",
    "docker": "offload-docker",
    "ecs": "offload-ecs",
    "kubernetes": "offload-kubernetes",
}
#: Likewise for the storages (``temporal_storage.type``) offload's authors publish.
STORAGE_INSTALL_HINTS = {
    "s3": "offload-s3",
    "gcs": "offload-gcs",
}

T = TypeVar("T")

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _structure_bool(value: Any, _: type) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"must be true or false, got {value!r}")


def _structure_int(value: Any, _: type) -> int:
    if isinstance(value, bool):
        raise ValueError(f"must be an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    raise ValueError(f"must be an integer, got {value!r}")


def _structure_float(value: Any, _: type) -> float:
    if isinstance(value, bool):
        raise ValueError(f"must be a number, got {value!r}")
    number: float | None = None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
    # nan and infinity are no setting anyone means (a cpu count, a timeout)
    if number is None or not math.isfinite(number):
        raise ValueError(f"must be a number, got {value!r}")
    return number


def _structure_str(value: Any, _: type) -> str:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"must be a string, got {value!r}")


def _is_homogeneous_sequence(cls: Any) -> bool:
    """``list[X]`` or ``tuple[X, ...]``."""
    origin = typing.get_origin(cls)
    args = typing.get_args(cls)
    return (origin is list and len(args) == 1) or (origin is tuple and len(args) == 2 and args[1] is Ellipsis)


def _make_sequence_hook(cls: Any, conv: cattrs.Converter) -> Any:
    """Lists from YAML lists or from comma-separated strings (properties hold only strings).

    A string is never iterated character by character, and a mapping is never taken
    for the list of its keys.
    """
    if typing.get_origin(cls) is list:
        items_hook = list_structure_factory(cls, conv)
    else:
        items_hook = homogenous_tuple_structure_factory(cls, conv)

    def structure(value: Any, type_: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        elif not isinstance(value, (list, tuple)):
            raise ValueError(f"must be a list, got {value!r}")
        return items_hook(value, type_)

    return structure


def _is_literal(cls: Any) -> bool:
    return typing.get_origin(cls) is typing.Literal


def _structure_literal(value: Any, cls: Any) -> Any:
    choices = typing.get_args(cls)
    for choice in choices:
        if value == choice and type(value) is type(choice):
            return choice
    for choice in choices:
        # properties hold only strings: "3" stands for the choice 3
        if isinstance(value, str) and not isinstance(choice, str) and str(choice) == value.strip():
            return choice
    names = [str(c) for c in choices]
    expected = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    raise ValueError(f"must be {expected}, got {value!r}")


def _make_config_converter() -> cattrs.Converter:
    """Strict about keys and shapes; lenient about strings, since properties are all strings."""
    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(float, _structure_float)
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook_func(_is_literal, _structure_literal)
    conv.register_structure_hook_factory(_is_homogeneous_sequence, lambda cls: _make_sequence_hook(cls, conv))
    return conv


config_converter = _make_config_converter()


def _format_exception(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        names = ", ".join(repr(k) for k in sorted(exc.extra_fields))
        allowed = ", ".join(f.name for f in attrs.fields(exc.cl)) if attrs.has(exc.cl) else ""
        return f"unknown key {names}" + (f" (known keys: {allowed})" if allowed else "")
    if isinstance(exc, KeyError):
        return "required key missing"
    if isinstance(exc, (ValueError, TypeError)) and str(exc):
        text = str(exc)
        if text.startswith(("must ", "invalid ", "cannot ", "only ", "unknown ")):
            return text
    if type_ is dict or typing.get_origin(type_) in (dict, Mapping) or attrs.has(type_):
        return "must be a mapping"
    if isinstance(exc, (ValueError, TypeError)) and str(exc):
        return str(exc)
    return cattrs.v.format_exception(exc, type_)


#: cattrs writes mapping keys as ``['key']`` (or ``["it's"]``); offload writes ``.key``.
_KEY_IN_BRACKETS = re.compile(r"""\[(?P<q>['"])(?P<key>.*?)(?P=q)\]""")


def problems_from(exc: Exception, where: str) -> list[Problem]:
    """Every problem in a cattrs structuring error, each with its key path."""
    problems = []
    for line in cattrs.transform_error(exc, path=where, format_exception=_format_exception):
        # cattrs writes "<message> @ <path>", and the path starts with ``where``
        cut = line.rfind(f" @ {where}")
        message, path = (line[:cut], line[cut + 3 :]) if cut >= 0 else (line, where)
        path = _KEY_IN_BRACKETS.sub(lambda m: "." + m["key"], path)
        problems.append(Problem(path, message, fatal=True))
    return problems


def structure_strict(cls: type[T], data: Any, where: str) -> tuple[T | None, list[Problem]]:
    """``data`` structured into ``cls``, or ``None`` and every problem found."""
    if data is None:
        data = {}
    if attrs.has(cls) and not isinstance(data, Mapping):
        return None, [Problem(where, f"must be a mapping, got {type(data).__name__}", fatal=True)]
    if not data and attrs.has(cls) and all(f.default is not attrs.NOTHING for f in attrs.fields(cls)):
        # An empty section (every backend's, when it is not configured) is the class's
        # defaults: no need to generate the converter's structuring code for it.
        return cast(T, cls()), []
    try:
        return config_converter.structure(data, cls), []
    except Exception as e:  # noqa: BLE001 - cattrs raises groups of anything a hook raised
        return None, problems_from(e, where)


def named_section(
    data: Mapping[str, Any], where: str, what: str, siblings: tuple[str, ...] = (), secret_keys: tuple[str, ...] = ()
) -> tuple[str | None, Any, list[Problem]]:
    """Digdag's shape of a backend's section: ``name: X``, and X's settings under ``X``.

    :param what: what ``name`` names, for messages ("the ECS cluster").
    :param siblings: the other keys the section may hold beside ``name`` and ``X``.
    :param secret_keys: keys of X whose values are never echoed: a value that is not a
        string is reported without it and left out.
    :return: the name (``None`` when it is missing or wrong), X's settings (as written, for
        :func:`structure_strict` to report when they are not a mapping), and the problems.
    """
    problems: list[Problem] = []
    name = data.get("name")
    if name is None:
        problems.append(Problem(f"{where}.name", f"required key missing: {what}, whose settings go under its name", fatal=True))
        return None, {}, problems
    if not isinstance(name, str) or not name.strip():
        problems.append(Problem(f"{where}.name", f"must be the name of {what}, got {name!r}", fatal=True))
        return None, {}, problems
    known = ", ".join(["name", name, *siblings])
    for key in sorted(str(k) for k in data if k not in ("name", name, *siblings)):
        problems.append(Problem(f"{where}.{key}", f"unknown key (known keys: {known})", fatal=True))
    section = data.get(name) or {}
    if isinstance(section, Mapping):
        section = dict(section)
        for key in secret_keys:
            if key in section and not isinstance(section[key], str):
                problems.append(Problem(f"{where}.{name}.{key}", "must be a string", fatal=True))
                del section[key]
    return name, section, problems


@attrs.frozen
class SystemConfig:
    """The parsed system config: backend choice and the raw section of each backend.

    Sections are parsed later by each backend's own ``config_type`` (see
    :meth:`offload.Backend.parse_config`), because the core does not know them.
    """

    source: str = "(defaults)"
    type: str = "auto"
    order: tuple[str, ...] = DEFAULT_ORDER
    sections: dict[str, Any] = attrs.field(factory=dict)
    #: the name ``type`` was written as when it is an alias (``simple``), else ``None``
    type_alias: str | None = None

    def where(self, *keys: str) -> str:
        return f"{self.source}: " + ".".join(("command_executor", *keys))


def fallbacks(name: str) -> tuple[str, ...]:
    """Where a task goes, with ``type: name``, when backend ``name`` is not configured for it.

    As Digdag's executors hand such a task on: the ECS executor to the Docker one, and
    that one to the simple (local) one, i.e. the backends after ``name`` in Digdag's
    order; a backend outside that order hands it to the last one (local).
    """
    if name in DEFAULT_ORDER:
        return DEFAULT_ORDER[DEFAULT_ORDER.index(name) + 1 :]
    return DEFAULT_ORDER[-1:]


def find_config_file(explicit: str | None, workflow_path: str | None) -> str | None:
    """``-c FILE``, else ``$OFFLOAD_CONFIG``, else ``offload.yml`` beside the workflow file."""
    if explicit:
        return explicit
    env = os.environ.get(CONFIG_ENV)
    if env:
        return env
    base = os.path.dirname(os.path.abspath(workflow_path)) if workflow_path else os.getcwd()
    candidate = os.path.join(base, DEFAULT_FILE)
    return candidate if os.path.exists(candidate) else None


def _yaml_error_message(error: yaml.YAMLError, text: str) -> str:
    """``not valid YAML (line L, column C): what``, without PyYAML's ``<unicode string>`` noise."""
    if isinstance(error, yaml.reader.ReaderError):
        line = text.count("\n", 0, error.position) + 1
        column = error.position - (text.rfind("\n", 0, error.position) + 1) + 1
        return f"not valid YAML (line {line}, column {column}): unacceptable character #x{error.character:04x}"
    mark = getattr(error, "problem_mark", None)
    at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return f"not valid YAML{at}: {getattr(error, 'problem', None) or error}"


def read_config_document(path: str) -> dict[str, Any]:
    """The file's content as a tree rooted at ``command_executor``'s parent."""
    name = os.path.basename(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError([Problem(name, f"cannot read config file: {e.strerror or e}", fatal=True)]) from None
    except UnicodeDecodeError as e:
        raise ConfigError([Problem(name, f"not UTF-8 text (byte {e.start + 1})", fatal=True)]) from None
    if path.endswith(".properties"):
        pairs = parse_properties(text, name)
        tree, problems = properties_to_tree(pairs, name)
        if problems:
            raise ConfigError(problems)
        return tree
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError([Problem(name, _yaml_error_message(e, text), fatal=True)]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([Problem(name, f"must be a mapping, got {type(data).__name__}", fatal=True)])
    return data


def build_system_config(data: Mapping[str, Any], source: str, environ: Mapping[str, str] | None = None) -> SystemConfig:
    """Check the top level of a config document; backend sections stay raw here."""
    environ = os.environ if environ is None else environ
    problems: list[Problem] = []
    unknown = sorted(str(k) for k in data if k != "command_executor")
    for key in unknown:
        problems.append(Problem(f"{source}: {key}", "unknown key (known keys: command_executor)", fatal=True))
    section = data.get("command_executor")
    if section is None:
        section = {}
    elif not isinstance(section, Mapping):
        problems.append(Problem(f"{source}: command_executor", "must be a mapping", fatal=True))
        section = {}
    type_ = section.get("type", "auto")
    if not isinstance(type_, str):
        problems.append(Problem(f"{source}: command_executor.type", f"must be a string, got {type_!r}", fatal=True))
        type_ = "auto"
    order: Any = section.get("order", DEFAULT_ORDER)
    if isinstance(order, str):
        order = [part.strip() for part in order.split(",") if part.strip()]
    if not isinstance(order, (list, tuple)) or not all(isinstance(o, str) for o in order) or not order:
        problems.append(Problem(f"{source}: command_executor.order", "must be a list of backend names", fatal=True))
        order = DEFAULT_ORDER
    override = environ.get(EXECUTOR_ENV, "").strip()
    if override:
        type_ = override
    alias = type_ if type_ in TYPE_ALIASES else None
    sections = {str(k): v for k, v in section.items() if k not in ("type", "order")}
    if problems:
        raise ConfigError(problems)
    order = tuple(dict.fromkeys(TYPE_ALIASES.get(name, name) for name in order))
    return SystemConfig(source=source, type=TYPE_ALIASES.get(type_, type_), order=order, sections=sections, type_alias=alias)


def load_system_config(explicit: str | None = None, workflow_path: str | None = None) -> SystemConfig:
    """Find, read and check the system config; no file means defaults."""
    path = find_config_file(explicit, workflow_path)
    if path is None:
        return build_system_config({}, "(defaults)")
    return build_system_config(read_config_document(path), os.path.basename(path))
