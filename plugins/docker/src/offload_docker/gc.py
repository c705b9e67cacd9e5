"""``offload gc`` for Docker: containers offload made that no journal knows any more.

Containers are removed only once their result is collected, so a driver whose journal
was deleted (or a run abandoned for good) leaves containers behind. They carry the
label ``offload.managed=true``; those whose id no journal holds are orphans.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from offload_docker.container import MANAGED, PROJECT, RUN_ID, TASK_ID
from offload_docker.engine import Engines, engine_errors


@attrs.frozen
class Orphan:
    """A container left by offload: what ``offload gc`` lists before removing it."""

    id: str
    name: str
    task_id: str
    run_id: str
    project: str
    status: str

    def __str__(self) -> str:
        run = f" run {self.run_id}" if self.run_id else ""
        return f"{self.id[:12]} {self.name} (task {self.task_id}{run}, {self.status}, project {self.project})"


def _known(ids: Iterable[str]) -> set[str]:
    return {i for i in ids if i}


def _is_known(container_id: str, known: set[str]) -> bool:
    """Journals may hold full ids or the 12-character short form."""
    return container_id in known or any(container_id.startswith(k) for k in known if len(k) >= 12)


def find_orphans(
    known_container_ids: Iterable[str],
    *,
    project_dir: str | None = None,
    engine: str | None = None,
    include_running: bool = False,
) -> list[Orphan]:
    """Containers labelled ``offload.managed=true`` whose id is not in ``known_container_ids``.

    :param known_container_ids: container ids the journals still track (full or short).
    :param project_dir: only containers of this project (label ``offload.project``);
        ``None`` for every project on the engine.
    :param engine: engine address (``unix://``, ``tcp://``, ``ssh://``); default engine if ``None``.
    :param include_running: running containers too (a driver of another project may be
        following them); by default only stopped ones.
    """
    known = _known(known_container_ids)
    filters = {"label": [f"{MANAGED}=true"] + ([f"{PROJECT}={project_dir}"] if project_dir else [])}
    engines = Engines()
    address = engines.address(engine)
    try:
        with engine_errors(address, None, "listing containers"):
            found = engines.client(address).containers.list(all=True, filters=filters)
    finally:
        engines.close()
    orphans = []
    for container in found:
        if _is_known(container.id, known):
            continue
        if container.status in ("running", "restarting", "paused") and not include_running:
            continue
        labels = container.labels
        orphans.append(
            Orphan(
                id=container.id,
                name=container.name,
                task_id=labels.get(TASK_ID, ""),
                run_id=labels.get(RUN_ID, ""),
                project=labels.get(PROJECT, ""),
                status=container.status,
            )
        )
    return orphans


def remove_orphans(orphans: Iterable[Orphan], *, engine: str | None = None) -> list[str]:
    """Remove ``orphans`` (stopping running ones); returns the ids removed.

    A container already gone counts as removed.
    """
    import docker.errors

    engines = Engines()
    address = engines.address(engine)
    removed = []
    try:
        api = engines.client(address).api
        for orphan in orphans:
            with engine_errors(address, orphan.task_id or None, f"removing container {orphan.id[:12]}"):
                try:
                    api.remove_container(orphan.id, force=True, v=True)
                except docker.errors.NotFound:
                    pass
            removed.append(orphan.id)
    finally:
        engines.close()
    return removed
