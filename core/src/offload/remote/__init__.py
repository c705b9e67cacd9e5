"""For backends that run a task where the project is not: a container in a cloud or cluster.

:mod:`offload.remote.archive` packs the project for the task and unpacks the io directory
it sends back; :mod:`offload.remote.script` is the ``/bin/sh`` script the container runs
to get the project, run the command and send the io directory back. A backend chooses
how the archive travels (a presigned URL of a :class:`~offload.Storage`, or a file the
engine mounts) and how the io directory returns (a presigned PUT, or in the log).
"""

from offload.remote.archive import build_archive, extract_archive
from offload.remote.script import INLINE_BEGIN, INLINE_END, SETUP_FAILED, env_file, env_script, find_marker, loader, quote_word, task_body

__all__ = [
    "INLINE_BEGIN",
    "INLINE_END",
    "SETUP_FAILED",
    "build_archive",
    "env_file",
    "env_script",
    "extract_archive",
    "find_marker",
    "loader",
    "quote_word",
    "task_body",
]
