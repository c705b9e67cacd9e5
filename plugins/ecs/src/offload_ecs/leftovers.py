"""``offload gc`` for ECS: the archives in the temporal storage that no journal tracks.

A task's files are under ``<project>/<task>-<submission>/`` in the storage (see
:func:`.launch.initial_state`): the project archive is deleted when the result is
collected, the small output archive is kept so that collecting again works, and a driver
that died leaves both. Only this project's folder is listed, and a folder written to in
the last ``min_age`` seconds is left alone: it may belong to a task being submitted
right now, whose handle is not journaled yet.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Sequence

from offload import Handle, Storage, StoredObject

#: A folder written to more recently than this is kept (seconds).
MIN_AGE = 3600.0


def collect_garbage(
    storage: Storage, tracked: Sequence[Handle], dry_run: bool, project_dir: str | None, min_age: float = MIN_AGE, now: float | None = None
) -> list[str]:
    """Remove (or, with ``dry_run``, name) the task folders of ``project_dir`` no handle tracks."""
    from offload_ecs import identity, launch

    if not storage.can_list:
        return []
    now = time.time() if now is None else now
    project = identity.project_tag(os.path.abspath(project_dir or os.getcwd()))
    keep = {launch.prefix(h.state) for h in tracked if h.backend == "ecs" and h.state.get("input_key")}
    folders: dict[str, list[StoredObject]] = defaultdict(list)
    for item in storage.list(project + "/"):
        folders[item.key.rsplit("/", 1)[0] + "/"].append(item)
    lines = []
    for folder, items in sorted(folders.items()):
        if folder in keep or now - max(i.modified for i in items) < min_age:
            continue
        if not dry_run:
            for item in items:
                storage.delete(item.key)
        size = sum(i.size for i in items)
        lines.append(f"{storage.uri(folder)} ({len(items)} file{'s' if len(items) != 1 else ''}, {size} bytes)")
    return lines
