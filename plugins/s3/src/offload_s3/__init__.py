"""offload-s3: S3 as the temporal storage that carries a remote task's files (Digdag's ``s3`` keys)."""

from offload_s3.config import S3Config
from offload_s3.storage import S3Storage

__all__ = ["S3Config", "S3Storage"]
