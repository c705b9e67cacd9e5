"""offload-nice: an example backend that runs tasks on this machine at a lower priority."""

from offload_nice.backend import NiceBackend, NiceConfig, NiceTaskConfig

__all__ = ["NiceBackend", "NiceConfig", "NiceTaskConfig"]
