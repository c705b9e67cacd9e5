"""Run options that give a container the host: flagged, and refused when the operator says so.

They stay possible (a task may really need ``--privileged``), but never silently:
``offload explain`` shows each one as a warning next to the choice of backend, and with
``command_executor.docker.allow_host_access: false`` they are a configuration error,
reported before anything is launched.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from offload_docker.options import RunOptions

#: Host paths that hand over the host when bind-mounted (the root, the engine's socket
#: and the directories holding it, the kernel's and the system's own trees).
SENSITIVE_PATHS = frozenset(
    {"/", "/var/run/docker.sock", "/run/docker.sock", "/var/run", "/run", "/var", "/var/lib/docker",
     "/etc", "/proc", "/sys", "/dev", "/boot", "/root", "/usr", "/lib", "/bin", "/sbin"}
)  # fmt: skip
#: Capabilities that let a process leave its container.
ESCAPING_CAPABILITIES = frozenset({"ALL", "SYS_ADMIN", "SYS_MODULE", "SYS_RAWIO", "SYS_PTRACE", "DAC_READ_SEARCH", "SYS_BOOT"})
_NAMESPACES = (("network_mode", "--network"), ("pid_mode", "--pid"), ("ipc_mode", "--ipc"), ("userns_mode", "--userns"), ("uts_mode", "--uts"))


def _bind_source(bind: str) -> str | None:
    source = bind.split(":", 1)[0]
    return os.path.normpath(source) if source.startswith("/") else None  # else a named volume


def host_access(run: RunOptions, engine_socket: str | None = None) -> list[str]:
    """One phrase per run option that lets the container reach the host, in option order."""
    found = []
    if run.privileged:
        found.append("--privileged gives the container every device and capability of the host")
    for field, flag in _NAMESPACES:
        if getattr(run, field) == "host":
            found.append(f"{flag}=host shares the host's namespace with the container")
    for cap in run.cap_add:
        name = cap.upper().removeprefix("CAP_")
        if name in ESCAPING_CAPABILITIES:
            found.append(f"--cap-add={cap} lets the container act on the host")
    for device in run.devices:
        found.append(f"--device={device} gives the container a device of the host")
    sensitive = SENSITIVE_PATHS | ({os.path.normpath(engine_socket)} if engine_socket else set())
    for bind in run.binds:
        source = _bind_source(bind)
        if source is not None and source in sensitive:
            what = "the Docker Engine's socket" if source.endswith(".sock") else f"the host's {source}"
            found.append(f"-v {bind} mounts {what} into the container")
    return found
