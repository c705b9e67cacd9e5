"""What runs a pod's container: a Docker container (host network, the offline test image in
place of whatever image the pod names) or a plain process (faster; volumes are bind-mounted
in a private mount namespace with ``unshare -m``, which needs root, and missing mount points
are created on the host).

Both keep Kubernetes' command semantics: ``command`` replaces the image's entrypoint and
``args`` replace its default arguments (the test image has no entrypoint and ``/bin/sh`` as
its default command, so a container with neither runs ``/bin/sh`` and ends at once).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from k8s_harness.logstore import ContainerLog, now_ns, parse_time
from k8s_harness.procs import _die_with_parent

LABEL = "fake-kubelet.offload.test"
#: In the environment of every process the process runtime starts (inherited by its children),
#: so that what a killed fake kubelet left behind can be found and killed by pid.
INSTANCE_ENV = "FAKE_KUBELET_INSTANCE"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class Mount:
    source: str
    target: str
    read_only: bool = False


@dataclass
class ContainerSpec:
    namespace: str
    pod: str
    pod_uid: str
    name: str
    attempt: int
    command: list[str] | None
    args: list[str] | None
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    mounts: list[Mount] = field(default_factory=list)
    user: str | None = None
    #: The pod's annotations (the simulated runtime reads its settings there).
    annotations: dict[str, str] = field(default_factory=dict)


class StartError(Exception):
    """The container was made but could not run (as Docker's ``ContainerCannotRun``)."""

    def __init__(self, message: str, exit_code: int = 128) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Handle(Protocol):
    container_id: str
    image_id: str
    started_ns: int
    finished_ns: int
    oom_killed: bool

    def signal(self, sig: int) -> None: ...
    def kill(self) -> None: ...
    def wait(self) -> int: ...
    def remove(self) -> None: ...


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


class ProcessHandle:
    def __init__(self, popen: subprocess.Popen[bytes], log: ContainerLog) -> None:
        self.popen = popen
        self.container_id = f"process://{popen.pid}"
        self.image_id = ""
        self.started_ns = now_ns()
        self.finished_ns = 0
        self.oom_killed = False
        self._reader = threading.Thread(target=self._read, args=(log,), daemon=True)
        self._reader.start()

    def _read(self, log: ContainerLog) -> None:
        assert self.popen.stdout is not None
        fd = self.popen.stdout.fileno()
        while chunk := os.read(fd, 65536):
            log.feed(chunk)

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.popen.pid, sig)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)

    def wait(self) -> int:
        code = self.popen.wait()
        self.finished_ns = now_ns()
        # When a container's main process ends, everything else in it is killed too.
        self.kill()
        self._reader.join(10)
        return _exit_code(code)

    def remove(self) -> None:
        self.kill()
        if self.popen.stdout is not None:
            self.popen.stdout.close()


class ProcessRuntime:
    name = "process"

    def __init__(self, scratch: Path, instance: str) -> None:
        self.scratch = scratch
        self.instance = instance

    def start(self, spec: ContainerSpec, log: ContainerLog) -> ProcessHandle:
        argv = (spec.command or []) + (spec.args or []) if spec.command else list(spec.args or ["/bin/sh"])
        env = {"PATH": DEFAULT_PATH, "HOSTNAME": spec.pod, "HOME": "/root", **spec.env, INSTANCE_ENV: self.instance}
        cwd = spec.working_dir or str(self.scratch / spec.pod_uid / spec.name)
        Path(cwd).mkdir(parents=True, exist_ok=True)
        if spec.mounts:
            if os.geteuid() != 0:
                raise StartError("the process runtime mounts volumes only as root (unshare -m); use the docker runtime")
            argv = ["unshare", "-m", "--propagation", "private", "/bin/sh", "-c", _mount_script(spec.mounts, cwd), "sh", *argv]
        try:
            popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=env, cwd=cwd, start_new_session=True, preexec_fn=_die_with_parent)
        except FileNotFoundError:
            raise StartError(f'exec: "{argv[0]}": executable file not found in $PATH', 127) from None
        except PermissionError:
            raise StartError(f'exec: "{argv[0]}": permission denied', 126) from None
        return ProcessHandle(popen, log)

    def cleanup(self) -> None:
        kill_leftovers(self.instance)


def kill_leftovers(instance: str) -> None:
    """SIGKILL every process that the process runtime of fake kubelet ``instance`` started."""
    marker = f"{INSTANCE_ENV}={instance}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    os.kill(int(entry.name), signal.SIGKILL)


def _mount_script(mounts: list[Mount], cwd: str) -> str:
    lines = ["set -e"]
    for m in mounts:
        src, dst = shlex.quote(m.source), shlex.quote(m.target)
        if os.path.isdir(m.source):
            lines.append(f"mkdir -p {dst}")
        else:
            lines.append(f'mkdir -p "$(dirname {dst})"; [ -e {dst} ] || : > {dst}')
        lines.append(f"mount --bind {src} {dst}")
        if m.read_only:
            lines.append(f"mount -o remount,bind,ro {dst}")
    lines += [f"cd {shlex.quote(cwd)}", 'exec "$@"']
    return "\n".join(lines)


class DockerHandle:
    def __init__(self, container: Any, log: ContainerLog) -> None:
        self.container = container
        self.container_id = f"docker://{container.id}"
        self.image_id = f"docker://{container.attrs.get('Image', '')}"
        self.started_ns = now_ns()
        self.finished_ns = 0
        self.oom_killed = False
        self._log = log
        self._frames = 0
        self._reader = threading.Thread(target=self._read, args=(log,), daemon=True)
        self._reader.start()

    def _read(self, log: ContainerLog) -> None:
        for frame in self.container.logs(stream=True, follow=True, timestamps=True):
            self._append(log, frame)

    def _append(self, log: ContainerLog, frame: bytes) -> None:
        # One frame per log message, "<RFC3339Nano> <line>" (a last line has no newline).
        self._frames += 1
        stamp, _, data = frame.partition(b" ")
        try:
            log.append(data, parse_time(stamp.decode()))
        except ValueError:
            log.append(frame)

    def _catch_up(self, log: ContainerLog) -> None:
        """Docker's follow stream sometimes ends before the last message (often a last line
        without a newline): read the whole log once more and take what the stream missed."""
        with contextlib.suppress(Exception):
            frames = list(self.container.logs(stream=True, follow=False, timestamps=True))
            for frame in frames[self._frames:]:
                self._append(log, frame)

    def signal(self, sig: int) -> None:
        with contextlib.suppress(Exception):
            self.container.kill(signal=int(sig))

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def wait(self) -> int:
        result = self.container.wait()
        self._reader.join(30)
        if not self._reader.is_alive():
            self._catch_up(self._log)
        with contextlib.suppress(Exception):
            self.container.reload()
        state = self.container.attrs.get("State", {})
        self.oom_killed = bool(state.get("OOMKilled"))
        try:
            self.finished_ns = parse_time(state.get("FinishedAt", ""))
        except (ValueError, AttributeError):
            self.finished_ns = now_ns()
        return int(result.get("StatusCode", 128))

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            self.container.remove(force=True)


class DockerRuntime:
    """Containers labelled ``fake-kubelet.offload.test/instance=<instance>``, so they can be found."""

    name = "docker"

    def __init__(self, image: str, instance: str) -> None:
        import docker  # only the docker runtime needs the SDK

        self.client = docker.from_env(max_pool_size=64)
        self.client.images.get(image)
        self.image = image
        self.instance = instance

    def start(self, spec: ContainerSpec, log: ContainerLog) -> DockerHandle:
        import docker.errors
        import docker.types

        labels = {
            f"{LABEL}/managed": "true", f"{LABEL}/instance": self.instance, f"{LABEL}/kubelet-pid": str(os.getpid()),
            "io.kubernetes.pod.namespace": spec.namespace, "io.kubernetes.pod.name": spec.pod,
            "io.kubernetes.pod.uid": spec.pod_uid, "io.kubernetes.container.name": spec.name,
        }
        mounts = [docker.types.Mount(m.target, m.source, type="bind", read_only=m.read_only) for m in spec.mounts]
        container = self.client.containers.create(
            self.image,
            entrypoint=spec.command or None,
            command=spec.args or None,
            environment={"HOSTNAME": spec.pod, **spec.env},
            working_dir=spec.working_dir or None,
            network_mode="host",
            labels=labels,
            mounts=mounts,
            user=spec.user or "",
            name=f"k8s_{spec.name}_{spec.pod}_{spec.namespace}_{spec.pod_uid}_{spec.attempt}",
            detach=True,
        )
        try:
            container.start()
        except docker.errors.APIError as e:
            container.reload()
            code = int(container.attrs.get("State", {}).get("ExitCode") or 128)
            container.remove(force=True)
            raise StartError(str(e.explanation or e), code) from None
        return DockerHandle(container, log)

    def remove_containers(self, stale_only: bool = False) -> None:
        """Remove this instance's containers, or (``stale_only``) those of fake kubelets that are gone."""
        from k8s_harness.procs import pid_runs

        if stale_only:
            for c in self.client.containers.list(all=True, filters={"label": f"{LABEL}/managed=true"}):
                pid = c.labels.get(f"{LABEL}/kubelet-pid", "")
                if not (pid.isdigit() and pid_runs(int(pid), "k8s_harness.kubelet")):
                    with contextlib.suppress(Exception):
                        c.remove(force=True)
            return
        for c in self.client.containers.list(all=True, filters={"label": f"{LABEL}/instance={self.instance}"}):
            with contextlib.suppress(Exception):
                c.remove(force=True)

    def cleanup(self) -> None:
        self.remove_containers()
        self.client.close()
