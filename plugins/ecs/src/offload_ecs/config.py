"""The ``command_executor.ecs`` section, in Digdag's shape, read strictly.

::

    command_executor:
      ecs:
        name: digdag-test                 # the cluster; its settings are under its name
        digdag-test:
          region: us-east-1
          launch_type: FARGATE
          subnets: [subnet-1]
        temporal_storage:                 # parsed by the storage plugin it names (offload-s3, offload-gcs)
          type: s3
          s3: {bucket: my-bucket}
        retry_task_scripts_downloads: 8   # Digdag's keys of the container script, beside name
        retry_task_output_uploads: 7
        enable_curl_fail_opt_on_uploads: false

An empty section means "ECS is not configured" (selection moves on to Docker).
Every wrong key is reported at once with its path; nothing is checked against AWS here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from offload import BackendContext, Problem, StorageConfig, named_section, structure_strict
from offload_ecs.kwargs import check_run_task_kwargs

LaunchType = Literal["FARGATE", "EC2"]
PlacementType = Literal["random", "spread", "binpack"]
SECRET_KEYS = ("access_key_id", "secret_access_key", "session_token")


@attrs.frozen
class ScriptSettings:
    """Digdag's keys beside ``name``: how the container script moves the archives (Digdag's defaults)."""

    #: tries again of the project's download after a network error or an HTTP 408, 429 or 5xx
    retry_task_scripts_downloads: int = 8
    #: likewise for the upload of the io directory
    retry_task_output_uploads: int = 7
    #: ``curl --fail`` on the upload: an HTTP error answer fails the upload, and then the
    #: container exits non-zero (else curl takes the answer, its text goes to the log, and
    #: the driver fails a task that exited 0 for its missing output)
    enable_curl_fail_opt_on_uploads: bool = False


SCRIPT_KEYS = tuple(f.name for f in attrs.fields(ScriptSettings))


@attrs.frozen
class ClusterSettings:
    """The keys under ``command_executor.ecs.<name>``: Digdag's, Airflow's and a few of offload's."""

    region: str | None = None
    access_key_id: str | None = attrs.field(default=None, repr=False)
    secret_access_key: str | None = attrs.field(default=None, repr=False)
    session_token: str | None = attrs.field(default=None, repr=False)
    endpoint_url: str | None = None
    launch_type: LaunchType | None = None
    capacity_provider_name: str | None = None
    capacity_provider_strategy: Any = None
    platform_version: str | None = None
    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    assign_public_ip: bool = False
    max_retries: int = 3
    use_environment_file: bool = False
    container_cpu: int | None = None
    container_memory: int | None = None
    task_cpu: str | None = None
    task_memory: str | None = None
    started_by: str = "offload"
    tags: dict[str, str] = attrs.field(factory=dict)
    placement_strategy_type: PlacementType | None = None
    placement_strategy_field: str | None = None
    run_task_kwargs: Any = None
    max_run_task_attempts: int = 3
    run_task_retry_delay: float = 2.0
    container_name: str | None = None
    stopped_log_wait: float = 30.0


@attrs.frozen
class EcsConfig:
    """The parsed section; ``cluster`` is ``None`` when ECS is not configured."""

    cluster: str | None = None
    settings: ClusterSettings = attrs.field(factory=ClusterSettings)
    #: ``temporal_storage``, parsed by the storage plugin it names (through the core)
    storage: StorageConfig | None = None
    script: ScriptSettings = attrs.field(factory=ScriptSettings)

    @property
    def configured(self) -> bool:
        return self.cluster is not None and self.storage is not None

    @property
    def capacity_provider_strategy(self) -> list[dict[str, Any]] | None:
        s = self.settings
        if s.capacity_provider_strategy:
            return [dict(item) for item in s.capacity_provider_strategy]
        if s.capacity_provider_name:
            return [{"capacityProvider": s.capacity_provider_name, "weight": 1}]
        return None

    @property
    def run_task_kwargs(self) -> dict[str, Any]:
        return dict(self.settings.run_task_kwargs or {})


def _fatal(where: str, message: str) -> Problem:
    return Problem(where, message, fatal=True)


def _json_or_value(value: Any, where: str, problems: list[Problem]) -> Any:
    """Properties give every value as a string: a JSON document is accepted for structured keys."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            problems.append(_fatal(where, "must be a mapping or list (or JSON text of one)"))
            return None
    return value


def _parse_strategy(value: Any, where: str, problems: list[Problem]) -> list[dict[str, Any]] | None:
    value = _json_or_value(value, where, problems)
    if value is None:
        return None
    if isinstance(value, Mapping):  # properties: strategy.0.capacityProvider = ...
        value = [value[k] for k in sorted(value, key=lambda k: int(k) if str(k).isdigit() else 0)]
    if not isinstance(value, list) or not value:
        problems.append(_fatal(where, "must be a list of {capacityProvider, weight, base}"))
        return None
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping) or not isinstance(item.get("capacityProvider"), str):
            problems.append(_fatal(f"{where}[{i}]", "must be a mapping with a capacityProvider name"))
            continue
        unknown = sorted(set(item) - {"capacityProvider", "weight", "base"})
        if unknown:
            problems.append(_fatal(f"{where}[{i}]", f"unknown key {', '.join(map(repr, unknown))} (known keys: capacityProvider, weight, base)"))
            continue
        entry: dict[str, Any] = {"capacityProvider": item["capacityProvider"]}
        for key in ("weight", "base"):
            if key in item:
                try:
                    entry[key] = int(item[key])
                except (TypeError, ValueError):
                    problems.append(_fatal(f"{where}[{i}].{key}", f"must be an integer, got {item[key]!r}"))
        out.append(entry)
    return out


def _check_settings(settings: ClusterSettings, where: str, problems: list[Problem]) -> ClusterSettings:
    changes: dict[str, Any] = {}
    if settings.capacity_provider_strategy is not None:
        changes["capacity_provider_strategy"] = _parse_strategy(settings.capacity_provider_strategy, f"{where}.capacity_provider_strategy", problems)
    if settings.capacity_provider_name and settings.capacity_provider_strategy is not None:
        problems.append(_fatal(f"{where}.capacity_provider_name", "give capacity_provider_name or capacity_provider_strategy, not both"))
    if settings.launch_type and (settings.capacity_provider_name or settings.capacity_provider_strategy is not None):
        problems.append(_fatal(f"{where}.launch_type", "ECS takes a launch type or a capacity provider, not both"))
    if bool(settings.access_key_id) != bool(settings.secret_access_key):
        problems.append(
            _fatal(f"{where}.secret_access_key" if settings.access_key_id else f"{where}.access_key_id", "access_key_id and secret_access_key go together")
        )
    if settings.placement_strategy_field and not settings.placement_strategy_type:
        problems.append(_fatal(f"{where}.placement_strategy_field", "needs placement_strategy_type"))
    if settings.placement_strategy_type in ("spread", "binpack") and not settings.placement_strategy_field:
        problems.append(_fatal(f"{where}.placement_strategy_field", f"required with placement_strategy_type {settings.placement_strategy_type}"))
    for key in ("max_retries", "max_run_task_attempts"):
        if getattr(settings, key) < (0 if key == "max_retries" else 1):
            problems.append(_fatal(f"{where}.{key}", f"must be at least {0 if key == 'max_retries' else 1}"))
    for key in ("run_task_retry_delay", "stopped_log_wait"):
        if getattr(settings, key) < 0:
            problems.append(_fatal(f"{where}.{key}", "must not be negative"))
    if len(settings.started_by) > 36:
        problems.append(_fatal(f"{where}.started_by", "must be at most 36 characters (ECS's limit)"))
    if settings.run_task_kwargs is not None:
        kwargs = _json_or_value(settings.run_task_kwargs, f"{where}.run_task_kwargs", problems)
        if kwargs is not None and not isinstance(kwargs, Mapping):
            problems.append(_fatal(f"{where}.run_task_kwargs", "must be a mapping of RunTask parameters"))
            kwargs = None
        if kwargs is not None:
            for message in check_run_task_kwargs(dict(kwargs)):
                problems.append(_fatal(f"{where}.run_task_kwargs", message))
        changes["run_task_kwargs"] = dict(kwargs) if kwargs is not None else None
    return attrs.evolve(settings, **changes) if changes else settings


def _storage_defaults(settings: ClusterSettings, section: Any) -> dict[str, Any]:
    """What an ``s3`` section leaves out is taken from the cluster: one set of AWS credentials
    (and the endpoint of an S3-compatible test server) is enough."""
    s3: dict[str, Any] = {}
    if settings.region:
        s3["region"] = settings.region
    if settings.endpoint_url:
        s3["endpoint"] = settings.endpoint_url
    own = section.get("s3") if isinstance(section, Mapping) else None
    if settings.access_key_id and settings.secret_access_key and not (isinstance(own, Mapping) and own.get("credentials")):
        creds = {"access-key-id": settings.access_key_id, "secret-access-key": settings.secret_access_key}
        if settings.session_token:
            creds["session-token"] = settings.session_token
        s3["credentials"] = creds
    return {"s3": s3}


def parse_ecs_config(data: Mapping[str, Any], where: str, context: BackendContext) -> tuple[EcsConfig | None, list[Problem]]:
    """``data`` (the ``command_executor.ecs`` section) as an :class:`EcsConfig`, with every problem.

    ``temporal_storage`` goes to the storage plugin it names, through ``context.storages``.
    """
    if not data:
        return EcsConfig(), []
    name, section, problems = named_section(data, where, "the ECS cluster name", ("temporal_storage", *SCRIPT_KEYS), SECRET_KEYS)
    if name is None:
        return None, problems
    if isinstance(section, dict):
        for key in [k for k in SCRIPT_KEYS if k in section]:
            problems.append(_fatal(f"{where}.{name}.{key}", f"goes beside name, as in Digdag: {where.split(': ', 1)[-1]}.{key}"))
            del section[key]
    settings, errors = structure_strict(ClusterSettings, section, f"{where}.{name}")
    problems.extend(errors)
    if settings is not None:
        settings = _check_settings(settings, f"{where}.{name}", problems)
    script = _parse_script(data, where, problems)
    storage_section = data.get("temporal_storage")
    storage = None
    if storage_section is None:
        why = "required: where the project travels to the task (temporal_storage.type: s3, temporal_storage.s3.bucket)"
        problems.append(_fatal(f"{where}.temporal_storage", why))
    else:
        defaults = _storage_defaults(settings or ClusterSettings(), storage_section)
        storage, found = context.storages.parse(storage_section, f"{where}.temporal_storage", defaults)
        problems.extend(found)
    if problems or settings is None or storage is None or script is None:
        return None, problems
    return EcsConfig(cluster=name, settings=settings, storage=storage, script=script), []


def _parse_script(data: Mapping[str, Any], where: str, problems: list[Problem]) -> ScriptSettings | None:
    """The script keys beside ``name``; retries are counts (0 or more)."""
    script, errors = structure_strict(ScriptSettings, {k: data[k] for k in SCRIPT_KEYS if k in data}, where)
    problems.extend(errors)
    if script is None:
        return None
    for key in ("retry_task_scripts_downloads", "retry_task_output_uploads"):
        if getattr(script, key) < 0:
            problems.append(_fatal(f"{where}.{key}", f"must be a count of retries (0 or more), got {getattr(script, key)}"))
    return script
