"""Hook specifications: one per concern the core owns.

The core's built-in plugin (:mod:`offload.executor.builtin`) implements the default of each;
any plugin can add to it, replace it (``tryfirst`` with a result) or wrap it
(``wrapper=True``, as pytest's ``pytest_runtest_call`` is wrapped).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from offload.executor.backend import Backend
    from offload.executor.models import Handle, ImageSpec, Problem, Result, TaskRequest
    from offload.executor.storage import Storage

PROJECT = "offload"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def offload_register_backends(register: Callable[[type[Backend]], None]) -> None:
    """Register backend classes.

    :param register: call it once per backend class, ``register(MyBackend)``.

    Called once when the plugin manager is built. A name registered twice by different
    classes is an error that names both plugins.
    """


@hookspec
def offload_register_storages(register: Callable[[type[Storage]], None]) -> None:
    """Register storage classes: where remote tasks' files travel (S3, GCS).

    :param register: call it once per storage class, ``register(MyStorage)``.

    Called once when the plugin manager is built. A backend's config names a storage by
    its ``name`` (``temporal_storage.type: s3``) and gets it from the core, never by
    importing the plugin. A name registered twice by different classes is an error that
    names both plugins.
    """


@hookspec
def offload_validate_config(backend: Backend, config: Any, task: TaskRequest) -> list[Problem] | None:
    """Problems that keep ``backend`` from running ``task`` with ``config``.

    :param backend: the backend instance being considered for the task.
    :param config: the backend's parsed system config (its ``config_type``).
    :param task: the request: the task's raw sections in ``executor_config``, and the
        backend's parse of its own in ``settings``.
    :return: a list of :class:`offload.Problem`, empty or ``None`` when there is nothing to say.

    Every implementation is called and all problems are added up. A non-fatal problem
    means "not configured for this task" and selection moves on; a fatal one stops the
    run (a site policy plugin can forbid ``--privileged`` this way). A problem with
    ``warning=True`` keeps the backend usable and is shown with the choice in
    ``offload explain``.
    """


@hookspec(firstresult=True)
def offload_dockerfile(spec: ImageSpec) -> str | None:
    """Render the Dockerfile for an image spec.

    :param spec: the base image with its ``build`` lines and ``build_options``.
    :return: the Dockerfile text.

    Stops at the first non-``None`` result. The core's default is ``FROM <image>`` plus
    one ``RUN`` per build line, with nothing copied in, so the build cache stays valid
    when the project changes.
    """


@hookspec(firstresult=True)
def offload_build_image(spec: ImageSpec, dockerfile: str, tag: str, log: Callable[[str], None], engine: Any, options: Any) -> str | None:
    """Build the image for ``spec`` and return its reference.

    :param spec: what to build; ``spec.build_options`` holds the task's options as written.
    :param dockerfile: the text :func:`offload_dockerfile` rendered for it.
    :param tag: the content-addressed tag to give the image (see ``offload.image_tag``).
    :param log: call it with each line of build output; it reaches the task's log live.
    :param engine: where to build, as the backend that asks has it: offload-docker passes
        its ``docker.DockerClient`` for the task's engine.
    :param options: the asking backend's parse of ``spec.build_options`` (offload-docker
        passes its ``BuildOptions``), so that an implementation need not parse them again.
    :return: the image reference to run, or ``None`` to let the next plugin build it.

    Stops at the first non-``None`` result. The Docker plugin implements it; a plugin
    that builds elsewhere (a remote builder) returns ``None`` for engines it does not serve.
    """


@hookspec
def offload_prepare_request(backend: Backend, request: TaskRequest) -> Mapping[str, Any] | None:
    """Changes to make to a request before it is submitted.

    :param backend: the backend the task will run on.
    :param request: the request as built from the workflow.
    :return: a mapping of :class:`offload.TaskRequest` fields to new values, or ``None``.
        ``env`` and ``labels`` are merged into the request's; other fields replace.

    Every implementation is called; later plugins see the request before earlier
    plugins' changes are applied, so changes should not depend on each other.
    """


@hookspec(firstresult=True)
def offload_submit_task(backend: Backend, request: TaskRequest) -> Handle | None:
    """Submit ``request`` to ``backend`` and return its handle.

    :param backend: the backend chosen for the task.
    :param request: the prepared request.
    :return: the :class:`offload.Handle` of the started task.

    The core's default calls ``backend.submit(request)``. Wrap it to time submissions,
    add to them or refuse them (raise :class:`offload.UsageError`).
    """


@hookspec(firstresult=True)
def offload_collect_result(backend: Backend, handle: Handle) -> Result | None:
    """The result of a finished task.

    :param backend: the backend the task ran on.
    :param handle: the task's handle.
    :return: the :class:`offload.Result`, with output params read from ``output.json``.

    The core's default calls ``backend.collect(handle)`` and adds what the task wrote to
    ``output.json`` in its io directory. Wrap it to see or post-process every result.
    """


@hookspec
def offload_task_finished(task_name: str, backend_name: str, result: Result) -> None:
    """Called once for each task that finished, after its result was journaled.

    :param task_name: the task's full name in its workflow (``+flow+step``) or its id.
    :param backend_name: the backend it ran on.
    :param result: its result.

    For notifications and metrics; the return value is ignored.
    """
