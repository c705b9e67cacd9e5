"""Getting a task's image onto the engine: present, pulled, or built once.

A spec with ``build`` lines is built under the content-addressed tag
``offload.image_tag(spec, dockerfile)``; an image with that tag is never rebuilt. Builds of one
tag are serialised by a lock per tag, within the process (threads) and across
processes on this machine (a file lock), and the tag is looked up again once the lock
is held, so two tasks needing the same new image build it once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import offload
from offload import BackendError
from offload_docker.config import TaskSettings
from offload_docker.engine import short_cause, shut_down
from offload_docker.options import BuildOptions

if TYPE_CHECKING:
    import docker

Log = Callable[[str], None]


class Abort:
    """Lets the thread that cancels a task stop the pull or build that prepares it.

    Watches the responses of the preparation's own client (a requests response hook,
    so nothing of the SDK's internals) and, when stopped, shuts down the connection of
    the one in progress: the engine then cancels the build, kills its ``RUN`` step and
    tags nothing (before, a cancelled task's build ran to its end and left an image).
    """

    def __init__(self) -> None:
        self.requested = False
        self._lock = threading.Lock()
        self._response: Any = None

    def watch(self, client: docker.DockerClient) -> None:
        client.api.hooks["response"].append(self._seen)

    def _seen(self, response: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self._response = response
            stop = self.requested
        if stop:
            shut_down(response)
        return response

    def stop(self) -> None:
        with self._lock:
            self.requested = True
            response = self._response
        if response is not None:
            shut_down(response)


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()
#: Lines of a failed step's output repeated in the task's error message.
ERROR_TAIL = 15


@contextlib.contextmanager
def tag_lock(engine: str, tag: str) -> Iterator[None]:
    """Held while one tag is checked and built on one engine.

    Across processes the lock is a ``flock`` on a file in the temp directory, removed
    when released (each new image used to leave one behind). A process that was waiting
    on a file its holder then removed finds the path gone or replaced once it gets the
    lock, and takes the lock again on the file now there.
    """
    key = hashlib.sha1(f"{engine}\0{tag}".encode()).hexdigest()[:20]
    with _locks_guard:
        lock = _locks.setdefault(key, threading.Lock())
    lock_dir = os.path.join(tempfile.gettempdir(), "offload-docker-locks")
    path = os.path.join(lock_dir, f"{key}.lock")
    with lock:
        while True:
            os.makedirs(lock_dir, exist_ok=True)
            f = open(path, "a")  # closed below, after the unlock
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                current = os.stat(path).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(f.fileno()).st_ino:
                break
            f.close()  # removed by its last holder meanwhile: lock the one there now
        try:
            yield
        finally:
            try:
                os.remove(path)  # still held: nobody can lock this file any more and keep it
            except FileNotFoundError:
                pass
            fcntl.flock(f, fcntl.LOCK_UN)
            f.close()


def present(api: Any, ref: str) -> bool:
    import docker.errors

    try:
        api.inspect_image(ref)
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.NotFound:
        return False
    return True


def build_tag(spec: offload.ImageSpec, hook: Any) -> tuple[str, str]:
    """The Dockerfile rendered for ``spec`` and the tag it is built as.

    ``hook`` is the plugins' hook relay; ``None`` (a backend made by hand, outside an
    Executor) renders the core's default Dockerfile.
    """
    dockerfile = str(hook.offload_dockerfile(spec=spec)) if hook is not None else offload.default_dockerfile(spec)
    return dockerfile, offload.image_tag(spec, dockerfile)


def ready_image(api: Any, settings: TaskSettings, hook: Any, is_present: Callable[[Any, str], bool] = present) -> str | None:
    """The image to run when nothing needs pulling or building (one cheap lookup), else ``None``."""
    spec = settings.spec
    if spec.needs_build:
        tag = build_tag(spec, hook)[1]
        return tag if is_present(api, tag) else None
    if settings.pull_always:
        return None
    return spec.image if is_present(api, spec.image) else None


_known: dict[tuple[str, str], str] = {}
_lookups: dict[tuple[str, str], threading.Lock] = {}
_known_guard = threading.Lock()


def known_stop_signal(api: Any, address: str, ref: str) -> str | None:
    """``ref``'s stop signal (``""`` when it sets none) if the image is on the engine at
    ``address``, else ``None``.

    An image found is remembered for the rest of the process, so the tasks after the
    first cost no lookup; a create that finds it gone (removed outside offload) calls
    :func:`forget_image`, and that task prepares it again.
    """
    import docker.errors

    key = (address, ref)
    with _known_guard:
        found = _known.get(key)
        lookup = _lookups.setdefault(key, threading.Lock())
    if found is not None:
        return found
    with lookup:  # the workers that start the first tasks together look it up once
        with _known_guard:
            found = _known.get(key)
        if found is not None:
            return found
        try:
            info = api.inspect_image(ref)
        except docker.errors.NotFound:
            return None
        signal = str((info.get("Config") or {}).get("StopSignal") or "")
        with _known_guard:
            _known[key] = signal
        return signal


def forget_image(address: str, ref: str) -> None:
    with _known_guard:
        _known.pop((address, ref), None)


def pull(api: Any, ref: str, log: Log) -> None:
    """Pull ``ref``, logging each layer's final status (not every progress tick)."""
    import docker.errors

    repository, tag = _split_ref(ref)
    try:
        for event in api.pull(repository, tag=tag, stream=True, decode=True):
            if "error" in event:
                raise BackendError(f"image {ref!r} could not be pulled: {event['error']}")
            status = event.get("status", "")
            if status and not event.get("progressDetail"):
                ident = event.get("id")
                log(f"{ident}: {status}" if ident else status)
    except docker.errors.APIError as e:
        raise BackendError(f"image {ref!r} is not on the engine and could not be pulled: {short_cause(e)}") from None


def _split_ref(ref: str) -> tuple[str, str | None]:
    if "@" in ref:
        return ref, None
    name, sep, tag = ref.rpartition(":")
    if sep and "/" not in tag:
        return name, tag
    return ref, "latest"


def prepare(client: docker.DockerClient, engine: str, settings: TaskSettings, hook: Any, log: Log) -> str:
    """Make the task's image available and return the reference to run.

    A build goes through the ``offload_build_image`` hook with ``client`` as its engine
    and the task's parsed build options; without a hook relay (``hook`` is ``None``),
    straight to :func:`build_image`.
    """
    api = client.api
    spec = settings.spec
    if not spec.needs_build:
        if settings.pull_always or not present(api, spec.image):
            log(f"pulling {spec.image}")
            pull(api, spec.image, log)
        return spec.image
    dockerfile, tag = build_tag(spec, hook)
    if present(api, tag):
        return tag
    with tag_lock(engine, tag):
        if present(api, tag):
            log(f"image {tag} was built by another task meanwhile")
            return tag
        log(f"building image {tag} from {spec.image} ({len(spec.build)} build steps)")
        if hook is None:
            return build_image(client, dockerfile, tag, settings.build, log)
        built = hook.offload_build_image(spec=spec, dockerfile=dockerfile, tag=tag, log=log, engine=client, options=settings.build)
        if built is None:
            raise BackendError(f"no plugin built image {tag} (is offload-docker's plugin disabled?)")
        return str(built)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _StepTracker:
    """Splits the build stream into lines, remembering the current step and its output."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.step = "the start of the build"
        self.output: list[str] = []
        self.pending = ""

    def feed(self, text: str) -> None:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self._line(line.rstrip("\r"))

    def flush(self) -> None:
        if self.pending:
            self._line(self.pending)
            self.pending = ""

    def _line(self, line: str) -> None:
        line = _ANSI.sub("", line)  # the engine colours RUN steps' stderr
        if line.startswith("Step "):
            self.step, self.output = line, []
        elif line.strip() and not line.startswith((" ---> ", "Removing intermediate container")):
            self.output.append(line)
        self.log(line)


def declare_build_args(dockerfile: str, names: list[str]) -> str:
    """``dockerfile`` with an ``ARG name`` after its first ``FROM`` for each build arg it
    does not declare: without one, ``--build-arg`` values never reach the ``RUN`` lines
    (Digdag's ``build_options: [--build-arg var1=test1]`` silently did nothing)."""
    declared = {m.split("=", 1)[0] for m in re.findall(r"(?im)^\s*ARG\s+(\S+)", dockerfile)}
    missing = [n for n in dict.fromkeys(names) if n not in declared]
    if not missing:
        return dockerfile
    lines = dockerfile.splitlines(keepends=True)
    at = next((i + 1 for i, line in enumerate(lines) if line.lstrip().upper().startswith("FROM ")), 0)
    lines[at:at] = [f"ARG {name}\n" for name in missing]
    return "".join(lines)


def build_query(options: BuildOptions, tag: str, buildargs: dict[str, str]) -> dict[str, Any]:
    """The query parameters of the Engine API's ``POST /build`` (the classic builder) for
    ``options``, named as the API names them; JSON-encoded where the API takes JSON.

    Intermediate containers are always removed (``rm``, ``forcerm``); the image is
    labelled ``offload.managed=true`` besides the labels asked for.
    """
    query: dict[str, Any] = {"t": tag, "rm": "1", "forcerm": "1", "labels": json.dumps({"offload.managed": "true", **dict(options.labels)})}
    switches = {"nocache": options.nocache, "pull": options.pull, "q": options.quiet, "squash": options.squash}
    query.update({name: "1" for name, on in switches.items() if on})
    values = {
        "networkmode": options.network_mode,
        "target": options.target,
        "platform": options.platform,
        "isolation": options.isolation,
        "shmsize": options.shm_size,
        "memory": options.memory,
        "memswap": options.memory_swap,
        "cpushares": options.cpu_shares,
        "cpuperiod": options.cpu_period,
        "cpuquota": options.cpu_quota,
        "cpusetcpus": options.cpuset_cpus,
        "cpusetmems": options.cpuset_mems,
        "cgroupparent": options.cgroup_parent,
    }
    query.update({name: str(value) for name, value in values.items() if value is not None})
    if buildargs:
        query["buildargs"] = json.dumps(buildargs)
    if options.cache_from:
        query["cachefrom"] = json.dumps(list(options.cache_from))
    if options.ulimits:
        query["ulimits"] = json.dumps([{"Name": name, "Soft": soft, "Hard": hard} for name, soft, hard in options.ulimits])
    if options.extra_hosts:
        query["extrahosts"] = [f"{host}:{address}" for host, address in options.extra_hosts]  # repeated
    if options.security_opt:
        query["securityopt"] = list(options.security_opt)  # repeated
    return query


def _post_build(api: Any, query: dict[str, Any], dockerfile: str) -> Iterator[dict[str, Any]]:
    """``POST /build`` of a context holding only ``dockerfile``, with ``query`` as given; the
    decoded stream of the engine's answer.

    ``APIClient.build`` has no argument for several of the API's parameters (``ulimits``,
    ``cpuperiod``, ``cpuquota``, ``cpusetmems``, ``cgroupparent``, ``securityopt``), so the
    request is made here with the SDK's own helpers, the way ``build`` makes it: the same
    registry credentials header, the proxy settings of the docker config file as build
    args, the client's API version, and the response hooks (:class:`Abort`) still apply.
    """
    import docker.utils

    proxies = api._proxy_configs.get_environment()
    if proxies:
        query = {**query, "buildargs": json.dumps({**proxies, **json.loads(query.get("buildargs", "{}"))})}
    headers = {"Content-Type": "application/tar"}
    api._set_auth_headers(headers)
    context = docker.utils.mkbuildcontext(io.BytesIO(dockerfile.encode()))
    try:
        response = api._post(api._url("/build"), data=context, params=query, headers=headers, stream=True, timeout=None)
    finally:
        context.close()
    return api._stream_helper(response, decode=True)  # type: ignore[no-any-return]


def build_image(client: docker.DockerClient, dockerfile: str, tag: str, options: BuildOptions, log: Log) -> str:
    """Build ``dockerfile`` (no context: nothing is copied in) as ``tag``, streaming its log.

    A failed build raises :class:`BackendError` with the failing step, the engine's error
    and the last lines that step printed; a parameter the engine refuses (``--squash``
    without experimental features, an ``--isolation`` it lacks) fails it with the
    engine's reason.
    """
    import docker.errors

    buildargs = {k: v if v is not None else os.environ.get(k, "") for k, v in options.buildargs}
    dockerfile = declare_build_args(dockerfile, list(buildargs))
    tracker = _StepTracker(log)
    try:
        for chunk in _post_build(client.api, build_query(options, tag, buildargs), dockerfile):
            if "stream" in chunk:
                tracker.feed(str(chunk["stream"]))
            elif "error" in chunk:
                tracker.flush()
                tail = "\n".join(tracker.output[-ERROR_TAIL:])
                message = str(chunk.get("error", "")).strip()
                raise BackendError(f"image build failed at {tracker.step}: {message}" + (f"\n{tail}" if tail else ""))
            elif chunk.get("status"):
                log(str(chunk["status"]))
    except docker.errors.APIError as e:
        raise BackendError(f"image build failed at {tracker.step}: {short_cause(e)}") from None
    tracker.flush()
    return tag
