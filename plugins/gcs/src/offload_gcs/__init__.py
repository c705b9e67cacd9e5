"""offload-gcs: Google Cloud Storage as the temporal storage of remote tasks (``temporal_storage.type: gcs``)."""

from __future__ import annotations

from offload_gcs.config import GcsConfig, parse_gcs_config
from offload_gcs.storage import GcsStorage

__all__ = ["GcsConfig", "GcsStorage", "parse_gcs_config"]
