"""The entry point of ``offload-s3`` (group ``offload.backends``, which holds every offload plugin)."""

from __future__ import annotations

from collections.abc import Callable

import offload
from offload_s3.storage import S3Storage


@offload.hookimpl
def offload_register_storages(register: Callable[[type[offload.Storage]], None]) -> None:
    register(S3Storage)
