"""offload-kubernetes: run a task's command as a Kubernetes Job (batch/v1)."""

__version__ = "0.1.0"
