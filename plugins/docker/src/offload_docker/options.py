"""Digdag's ``run_options`` and ``build_options`` (``docker run`` / ``docker build`` flags)
parsed into Docker SDK arguments (run) and Engine API build parameters (build).

Only the flags listed in :data:`RUN_FLAGS` and :data:`BUILD_FLAGS` are understood; any
other flag is a config problem naming it and the supported ones, because silently
ignoring a flag (``--memory`` misspelt) would run the task without the limit asked for.
A ``docker build`` flag that offload cannot pass (BuildKit's, ``--tag``...) is a problem
saying why (:data:`REFUSED_BUILD_FLAGS`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import attrs

_BYTES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp])?i?b?\s*$", re.I)
_MULTIPLIER = {None: 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def parse_bytes(text: str) -> int:
    """``512m``, ``1G``, ``1.5gb``, ``1024`` -> bytes (binary units, as the docker CLI)."""
    match = _BYTES.match(text)
    if not match:
        raise ValueError(f"invalid size {text!r} (use a number with an optional unit b, k, m or g)")
    unit = match[2].lower() if match[2] else None
    return int(float(match[1]) * _MULTIPLIER[unit])


def _parse_bool(text: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise ValueError(f"must be true or false, got {text!r}")


def _key_value(text: str, what: str) -> tuple[str, str | None]:
    key, sep, value = text.partition("=")
    if not key:
        raise ValueError(f"invalid {what} {text!r} (use NAME=VALUE)")
    return key, (value if sep else None)


@attrs.frozen
class GpuRequest:
    """``--gpus``: a count (``-1`` for all) or explicit device ids."""

    count: int = 0
    device_ids: tuple[str, ...] = ()


@attrs.frozen
class RunOptions:
    """The SDK arguments that ``run_options`` asked for; ``None`` and empty mean not given.

    ``environment`` values that are ``None`` (``-e NAME``) take the driver's value of
    ``NAME`` at submit, as ``docker run -e NAME`` does.
    """

    mem_limit: int | None = None
    nano_cpus: int | None = None
    cpu_shares: int | None = None
    environment: tuple[tuple[str, str | None], ...] = ()
    binds: tuple[str, ...] = ()
    network_mode: str | None = None
    user: str | None = None
    shm_size: int | None = None
    ulimits: tuple[tuple[str, int, int], ...] = ()
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    extra_hosts: tuple[tuple[str, str], ...] = ()
    dns: tuple[str, ...] = ()
    gpus: GpuRequest | None = None
    privileged: bool = False
    working_dir: str | None = None
    tmpfs: tuple[tuple[str, str], ...] = ()
    init: bool | None = None
    pid_mode: str | None = None
    ipc_mode: str | None = None
    userns_mode: str | None = None
    uts_mode: str | None = None
    devices: tuple[str, ...] = ()


@attrs.frozen
class BuildOptions:
    """What ``build_options`` asked of the engine's classic builder (``POST /build``).

    ``None`` and empty mean not given. ``buildargs`` values that are ``None``
    (``--build-arg NAME``) take the driver's value of ``NAME``; ``memory_swap`` ``-1``
    is unlimited swap; ``ulimits`` are ``(name, soft, hard)``.
    """

    buildargs: tuple[tuple[str, str | None], ...] = ()
    nocache: bool = False
    pull: bool = False
    quiet: bool = False
    squash: bool = False
    network_mode: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    target: str | None = None
    platform: str | None = None
    isolation: str | None = None
    extra_hosts: tuple[tuple[str, str], ...] = ()
    cache_from: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()
    shm_size: int | None = None
    memory: int | None = None
    memory_swap: int | None = None
    cpu_shares: int | None = None
    cpu_period: int | None = None
    cpu_quota: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    cgroup_parent: str | None = None
    ulimits: tuple[tuple[str, int, int], ...] = ()


Apply = Callable[[dict[str, Any], str], None]


@attrs.frozen
class Flag:
    """One flag: its spellings, whether it takes a value, and how it is applied.

    A flag with ``refused`` set is known but cannot be passed: using it is a problem
    giving that reason (its value is skipped, so it is reported once).
    """

    names: tuple[str, ...]
    apply: Apply
    boolean: bool = False
    refused: str = ""

    @property
    def label(self) -> str:
        return "/".join(self.names)


def _set(field: str, convert: Callable[[str], Any] = str) -> Apply:
    def apply(out: dict[str, Any], value: str) -> None:
        out[field] = convert(value)

    return apply


def _append(field: str, convert: Callable[[str], Any] = str) -> Apply:
    def apply(out: dict[str, Any], value: str) -> None:
        out[field] = (*out.get(field, ()), convert(value))

    return apply


def _cpus(value: str) -> int:
    try:
        cpus = float(value)
    except ValueError:
        raise ValueError(f"invalid number of CPUs {value!r}") from None
    if cpus <= 0:
        raise ValueError(f"the number of CPUs must be positive, got {value!r}")
    return int(cpus * 1e9)


def _int(value: str) -> int:
    if not re.fullmatch(r"\d+", value.strip()):
        raise ValueError(f"must be a whole number, got {value!r}")
    return int(value)


def _ulimit(value: str) -> tuple[str, int, int]:
    match = re.fullmatch(r"([a-z]+)=(-?\d+)(?::(-?\d+))?", value.strip())
    if not match:
        raise ValueError(f"invalid ulimit {value!r} (use NAME=SOFT[:HARD], e.g. nofile=1024:2048)")
    soft = int(match[2])
    hard = int(match[3]) if match[3] is not None else soft
    if soft > hard >= 0:
        raise ValueError(f"invalid ulimit {value!r}: the soft limit {soft} is above the hard limit {hard}")
    return match[1], soft, hard


def _host(value: str) -> tuple[str, str]:
    host, sep, address = value.partition(":")
    if not sep:
        host, sep, address = value.partition("=")
    if not sep or not host or not address:
        raise ValueError(f"invalid host entry {value!r} (use HOST:IP)")
    return host, address


def _volume(value: str) -> str:
    parts = value.split(":")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ValueError(f"invalid volume {value!r} (use SOURCE:TARGET[:OPTIONS])")
    return value


def _device(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"invalid device {value!r} (use /dev/HOST[:/dev/CONTAINER[:PERMISSIONS]])")
    return value


def _tmpfs(value: str) -> tuple[str, str]:
    path, _, opts = value.partition(":")
    if not path.startswith("/"):
        raise ValueError(f"invalid tmpfs {value!r} (use /PATH[:OPTIONS])")
    return path, opts


def _gpus(value: str) -> GpuRequest:
    text = value.strip().strip("\"'")
    if text == "all":
        return GpuRequest(count=-1)
    if text.isdigit():
        return GpuRequest(count=int(text))
    fields = dict(_key_value(part, "--gpus field") for part in re.split(r",(?=[a-z]+=)", text))
    device, count = fields.get("device"), fields.get("count")
    if device:
        return GpuRequest(device_ids=tuple(device.split(",")))
    if count:
        return GpuRequest(count=-1 if count == "all" else _int(count))
    raise ValueError(f"invalid --gpus {value!r} (use all, a count, or device=ID[,ID])")


def _pairs(field: str, what: str) -> Apply:
    def apply(out: dict[str, Any], value: str) -> None:
        out[field] = (*out.get(field, ()), _key_value(value, what))

    return apply


def _accept_bool(out: dict[str, Any], value: str) -> None:
    _parse_bool(value)  # checked, then ignored


def _only_true(why_false: str) -> Apply:
    """A boolean flag offload always behaves as set: ``=false`` is refused with ``why_false``."""

    def apply(out: dict[str, Any], value: str) -> None:
        if not _parse_bool(value):
            raise ValueError(f"cannot be false: {why_false}")

    return apply


def _swap(value: str) -> int:
    return -1 if value.strip() == "-1" else parse_bytes(value)


def _extend(field: str) -> Apply:
    """Comma-separated values added to ``field``, as the docker CLI's string slices (``--cache-from a,b``)."""

    def apply(out: dict[str, Any], value: str) -> None:
        out[field] = (*out.get(field, ()), *(part.strip() for part in value.split(",") if part.strip()))

    return apply


def _refuse(names: tuple[str, ...], reason: str, boolean: bool = False) -> Flag:
    return Flag(names, _accept_bool, boolean=boolean, refused=reason)


def _label(field: str) -> Apply:
    def apply(out: dict[str, Any], value: str) -> None:
        key, val = _key_value(value, "label")
        out[field] = (*out.get(field, ()), (key, val or ""))

    return apply


RUN_FLAGS = (
    Flag(("-m", "--memory"), _set("mem_limit", parse_bytes)),
    Flag(("--cpus",), _set("nano_cpus", _cpus)),
    Flag(("--cpu-shares",), _set("cpu_shares", _int)),
    Flag(("-e", "--env"), _pairs("environment", "environment variable")),
    Flag(("-v", "--volume"), _append("binds", _volume)),
    Flag(("--network", "--net"), _set("network_mode")),
    Flag(("-u", "--user"), _set("user")),
    Flag(("--shm-size",), _set("shm_size", parse_bytes)),
    Flag(("--ulimit",), _append("ulimits", _ulimit)),
    Flag(("--cap-add",), _append("cap_add")),
    Flag(("--cap-drop",), _append("cap_drop")),
    Flag(("--add-host",), _append("extra_hosts", _host)),
    Flag(("--dns",), _append("dns")),
    Flag(("--gpus",), _set("gpus", _gpus)),
    Flag(("--privileged",), _set("privileged", _parse_bool), boolean=True),
    Flag(("-w", "--workdir"), _set("working_dir")),
    Flag(("--tmpfs",), _append("tmpfs", _tmpfs)),
    Flag(("--init",), _set("init", _parse_bool), boolean=True),
    Flag(("--pid",), _set("pid_mode")),
    Flag(("--ipc",), _set("ipc_mode")),
    Flag(("--userns",), _set("userns_mode")),
    Flag(("--uts",), _set("uts_mode")),
    Flag(("--device",), _append("devices", _device)),
)

_TRUST = "content trust (image signature verification) is done by the docker CLI, which offload does not use"
_KEPT = "offload always removes a build's intermediate containers (they carry no offload label, so nothing else would)"
BUILD_FLAGS = (
    Flag(("--build-arg",), _pairs("buildargs", "build argument")),
    Flag(("--no-cache",), _set("nocache", _parse_bool), boolean=True),
    Flag(("--pull",), _set("pull", _parse_bool), boolean=True),
    Flag(("-q", "--quiet"), _set("quiet", _parse_bool), boolean=True),
    Flag(("--squash",), _set("squash", _parse_bool), boolean=True),
    Flag(("--network",), _set("network_mode")),
    Flag(("--label",), _label("labels")),
    Flag(("--target",), _set("target")),
    Flag(("--platform",), _set("platform")),
    Flag(("--isolation",), _set("isolation")),
    Flag(("--add-host",), _append("extra_hosts", _host)),
    Flag(("--cache-from",), _extend("cache_from")),
    Flag(("--security-opt",), _append("security_opt")),
    Flag(("--shm-size",), _set("shm_size", parse_bytes)),
    Flag(("-m", "--memory"), _set("memory", parse_bytes)),
    Flag(("--memory-swap",), _set("memory_swap", _swap)),
    Flag(("-c", "--cpu-shares"), _set("cpu_shares", _int)),
    Flag(("--cpu-period",), _set("cpu_period", _int)),
    Flag(("--cpu-quota",), _set("cpu_quota", _int)),
    Flag(("--cpuset-cpus",), _set("cpuset_cpus")),
    Flag(("--cpuset-mems",), _set("cpuset_mems")),
    Flag(("--cgroup-parent",), _set("cgroup_parent")),
    Flag(("--ulimit",), _append("ulimits", _ulimit)),
    Flag(("--rm",), _only_true(_KEPT), boolean=True),
    Flag(("--force-rm",), _only_true(_KEPT), boolean=True),
    # The docker CLI's own (client-side) options; offload's build context is one small Dockerfile.
    Flag(("--compress",), _accept_bool, boolean=True),
    Flag(("--disable-content-trust",), _only_true(_TRUST), boolean=True),
)

_BUILDKIT = (
    "it is an option of BuildKit (docker buildx), and offload builds with the engine's classic builder (the Engine API's POST /build), which cannot take it"
)
REFUSED_BUILD_FLAGS = (
    _refuse(
        ("-t", "--tag"),
        "offload tags the image itself, as offload-image:<hash of image, build and build_options>, to build it once and find it again (use --label to mark it)",
    ),
    _refuse(
        ("-f", "--file"),
        "offload writes the Dockerfile itself from image and build (a plugin can render another through the offload_dockerfile hook)",
    ),
    _refuse(
        ("--iidfile",),
        "offload writes no file on the driver for a build, and a cached image is not built again; "
        "the image is offload-image:<hash> (docker image inspect gives its ID)",
    ),
    _refuse(("--stream",), "it streams the build context through a docker CLI session; offload sends its context itself", boolean=True),
    *(
        _refuse((name,), _BUILDKIT, boolean=name in ("--check", "--load", "--push"))
        for name in (
            *("--secret", "--ssh", "-o", "--output", "--cache-to", "--progress", "--allow", "--build-context", "--builder"),
            *("--attest", "--sbom", "--provenance", "--annotation", "--metadata-file", "--no-cache-filter", "--call"),
            *("--check", "--load", "--push"),
        )
    ),
)


def _tokens(items: Sequence[str]) -> list[str]:
    """Split ``"-m 1G"`` written as one list item into flag and value (Digdag users do both)."""
    out: list[str] = []
    for item in items:
        text = item.strip()
        head, _, rest = text.partition(" ")
        if text.startswith("-") and rest.strip() and "=" not in head:
            out.extend((head, rest.strip()))
        else:
            out.append(text)
    return out


def _parse(items: Sequence[str], flags: Sequence[Flag], what: str) -> tuple[dict[str, Any], list[str]]:
    by_name = {name: flag for flag in flags for name in flag.names}
    supported = ", ".join(flag.label for flag in flags if not flag.refused)
    out: dict[str, Any] = {}
    problems: list[str] = []
    tokens = _tokens(items)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        name, sep, inline = token.partition("=")
        if not sep and not name.startswith("--") and len(name) > 2 and name[:2] in by_name:
            name, inline, sep = name[:2], name[2:], "="  # -m1G, as the docker CLI takes it
        flag = by_name.get(name)
        if flag is None:
            if token.startswith("-"):
                problems.append(f"unknown {what} {name!r} (supported: {supported})")
            else:
                problems.append(f"unexpected argument {token!r}: {what}s are flags (supported: {supported})")
            continue
        if flag.refused:
            problems.append(f"{what} {name!r} cannot be used: {flag.refused}")
            if not (sep or flag.boolean) and i < len(tokens) and not tokens[i].startswith("-"):
                i += 1  # its value: one problem per flag
            continue
        if sep:
            value = inline
        elif flag.boolean:
            value = "true"
        elif i < len(tokens):
            value = tokens[i]
            i += 1
        else:
            problems.append(f"{name} needs a value")
            continue
        try:
            flag.apply(out, value)
        except ValueError as e:
            problems.append(f"{name}: {e}")
    return out, problems


def parse_run_options(items: Sequence[str]) -> tuple[RunOptions, list[str]]:
    """``run_options`` as SDK arguments, and one message per problem."""
    out, problems = _parse(items, RUN_FLAGS, "run option")
    return RunOptions(**out), problems


def parse_build_options(items: Sequence[str]) -> tuple[BuildOptions, list[str]]:
    """``build_options`` as what to ask of the engine's builder, and one message per problem."""
    out, problems = _parse(items, (*BUILD_FLAGS, *REFUSED_BUILD_FLAGS), "build option")
    return BuildOptions(**out), problems
