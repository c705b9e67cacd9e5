"""offload-local: the backend that runs tasks as detached processes on this machine."""

from offload_local.backend import LocalBackend, LocalConfig

__all__ = ["LocalBackend", "LocalConfig"]
