"""The ``offload.backends`` entry point of offload-gcs: registers the ``gcs`` storage.

Importing it loads no Google library (they are imported when the storage is first used).
"""

from __future__ import annotations

from collections.abc import Callable

import offload
from offload_gcs.storage import GcsStorage


@offload.hookimpl
def offload_register_storages(register: Callable[[type[offload.Storage]], None]) -> None:
    register(GcsStorage)
