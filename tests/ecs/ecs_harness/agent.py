"""A test-only ECS agent: it runs the tasks that moto records, as AWS would.

moto records ``run_task`` but runs nothing and never sets an exit code. This agent
watches moto's in-process ECS backend for new tasks and, for each one, runs the
container's command (the ``command`` override, with the task definition's and the
override's environment and environment files) as a local process, or in a real
container (docker SDK, host network) when ``mode == "container"``. It writes every
output line to the CloudWatch Logs stream named by the task definition's ``awslogs``
options, then marks the task STOPPED with the real exit code.

``stop_task`` is made realistic too: moto marks a task STOPPED at once; here the task
goes to DEACTIVATING, its command gets SIGTERM (SIGKILL after ``stop_timeout``), and it
is STOPPED when the process has exited. An image whose name starts with ``unpullable``
never starts (``TaskFailedToStart``, as a missing image does on ECS).
"""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
from moto.backends import get_backend
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.moto_api import state_manager

REGION = "us-east-1"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class LogWriter:
    """Writes lines to one CloudWatch Logs stream through the moto server's API."""

    def __init__(self, logs: Any, group: str, stream: str) -> None:
        self.logs, self.group, self.stream = logs, group, stream
        self._last = 0
        try:
            logs.create_log_group(logGroupName=group)
        except logs.exceptions.ResourceAlreadyExistsException:
            pass
        logs.create_log_stream(logGroupName=group, logStreamName=stream)

    def write(self, lines: list[str]) -> None:
        if not lines:
            return
        stamp = max(self._last + 1, int(time.time() * 1000))
        events = []
        for line in lines:
            events.append({"timestamp": stamp, "message": line})
            stamp += 1
        self._last = stamp
        self.logs.put_log_events(logGroupName=self.group, logStreamName=self.stream, logEvents=events)


class LaggingWriter:
    """Passes lines on ``lag`` seconds late, as CloudWatch's ingestion sometimes does."""

    def __init__(self, writer: LogWriter, lag: float) -> None:
        self.writer, self.lag = writer, lag
        self._lock = threading.Lock()
        self._chain: threading.Thread | None = None

    def write(self, lines: list[str]) -> None:
        previous = self._chain

        def later() -> None:
            time.sleep(self.lag)
            if previous is not None:
                previous.join()
            self.writer.write(lines)

        with self._lock:
            self._chain = threading.Thread(target=later, daemon=True)
            self._chain.start()


class Agent:
    """Plays ECS for every task moto records, until :meth:`stop`."""

    def __init__(self, endpoint: str, mode: str = "process", image: str | None = None) -> None:
        self.endpoint = endpoint
        self.mode = mode
        self.image = image
        self.stop_timeout = 10.0
        #: Seconds by which log lines reach CloudWatch late (after the task has stopped).
        self.log_lag = 0.0
        #: PATH of the processes the agent runs (``None``: the test process's own).
        self.path: str | None = None
        self.backend = get_backend("ecs")[DEFAULT_ACCOUNT_ID][REGION]
        kw = {"endpoint_url": endpoint, "region_name": REGION, "aws_access_key_id": "agent", "aws_secret_access_key": "agent"}
        self.logs = boto3.client("logs", **kw)
        self.s3 = boto3.client("s3", **kw)
        self._seen: set[str] = set()
        self._procs: dict[str, Callable[[int], None]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ecs-agent", daemon=True)
        self._lock = threading.Lock()
        self.started: list[str] = []

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        # moto moves a task one state further on each describe; here the agent decides.
        state_manager.set_transition(model_name="ecs::task", transition={"progression": "manual", "times": 10**12})
        original = self.backend.stop_task

        def stop_task(cluster_str: str, task_str: str, reason: str) -> Any:
            task = self._find(task_str)
            if task is None or task.task_arn not in self._procs:
                return original(cluster_str, task_str, reason)
            if task.desired_status != "STOPPED":
                task.desired_status = "STOPPED"
                task.stopped_reason = reason
                task.stop_code = "UserInitiated"
                task.last_status = "DEACTIVATING"
                self._procs[task.task_arn](signal.SIGTERM)
            return task

        self.backend.stop_task = stop_task  # type: ignore[method-assign]
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for kill in list(self._procs.values()):
            kill(signal.SIGKILL)

    def _find(self, task_str: str) -> Any:
        task_id = task_str.rsplit("/", 1)[-1]
        for tasks in self.backend.tasks.values():
            for arn, task in tasks.items():
                if arn.endswith(task_id):
                    return task
        return None

    def tasks(self) -> list[Any]:
        while True:
            try:
                return [task for tasks in list(self.backend.tasks.values()) for task in list(tasks.values())]
            except RuntimeError:  # moto's server thread added a task meanwhile
                continue

    def _loop(self) -> None:
        while not self._stop.is_set():
            for task in self.tasks():
                if task.task_arn in self._seen:
                    continue
                self._seen.add(task.task_arn)
                task.containers[0].exitCode = None
                threading.Thread(target=self._run_safely, args=(task,), daemon=True).start()
            self._stop.wait(0.02)

    # -- one task ------------------------------------------------------------------
    def _run_safely(self, task: Any) -> None:
        try:
            self._run(task)
        except Exception as e:  # noqa: BLE001 - the agent reports through the task, like ECS
            self._finish(task, None, "InternalError", f"test agent: {type(e).__name__}: {e}")

    def _container(self, task: Any) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        td = self.backend.describe_task_definition(task.task_definition_arn)
        overrides = {o["name"]: o for o in (task.overrides or {}).get("containerOverrides", [])}
        cdef = next((c for c in td.container_definitions if c["name"] in overrides), td.container_definitions[0])
        return td, cdef, overrides.get(cdef["name"], {})

    def _environment(self, cdef: dict[str, Any], override: dict[str, Any]) -> dict[str, str]:
        env: dict[str, str] = {}
        for item in cdef.get("environmentFiles", []) + override.get("environmentFiles", []):
            bucket, key = item["value"].split(":::", 1)[1].split("/", 1)
            text = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
            for line in text.splitlines():
                if line and not line.startswith("#") and "=" in line:
                    name, value = line.split("=", 1)
                    env[name] = value
        for item in cdef.get("environment", []) + override.get("environment", []):
            env[item["name"]] = item["value"]
        return env

    def _run(self, task: Any) -> None:
        _td, cdef, override = self._container(task)
        if task.desired_status == "STOPPED":
            self._finish(task, None, task.stop_code or "UserInitiated", task.stopped_reason or "stopped before it started", started=False)
            return
        image = cdef.get("image", "")
        if image.startswith("unpullable"):
            time.sleep(0.1)
            reason = f"CannotPullContainerError: pull image manifest has been retried 5 time(s): {image}: not found"
            self._finish(task, None, "TaskFailedToStart", reason, started=False)
            return
        command = override.get("command") or cdef.get("command") or []
        env = self._environment(cdef, override)
        writer = self._log_writer(task, cdef)
        task.last_status = "RUNNING"
        task.started_at = _now()
        task.containers[0].last_status = "RUNNING"
        self.started.append(task.task_arn)
        if self.mode == "container":
            code = self._run_container(task, self.image or image, command, env, writer)
        else:
            code = self._run_process(task, command, env, writer)
        self._finish(task, code, "EssentialContainerExited", "Essential container in task exited")

    def _log_writer(self, task: Any, cdef: dict[str, Any]) -> LogWriter | LaggingWriter | None:
        log = cdef.get("logConfiguration") or {}
        options = log.get("options") or {}
        if log.get("logDriver") != "awslogs" or "awslogs-stream-prefix" not in options:
            return None
        stream = f"{options['awslogs-stream-prefix']}/{cdef['name']}/{task.task_arn.rsplit('/', 1)[-1]}"
        writer = LogWriter(self.logs, options["awslogs-group"], stream)
        return LaggingWriter(writer, self.log_lag) if self.log_lag else writer

    def _pump(self, chunks: Iterator[bytes], writer: LogWriter | LaggingWriter | None) -> None:
        buffer = b""
        for chunk in chunks:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            if writer is not None and lines:
                writer.write([line.decode("utf-8", "replace") for line in lines])
        if buffer and writer is not None:
            writer.write([buffer.decode("utf-8", "replace")])

    def _run_process(self, task: Any, command: list[str], env: dict[str, str], writer: LogWriter | LaggingWriter | None) -> int:
        workdir = tempfile.mkdtemp(prefix="ecs-agent-")
        full_env = {"PATH": self.path or os.environ.get("PATH", "/usr/bin:/bin"), "HOME": workdir, "TMPDIR": workdir, **env}
        proc = subprocess.Popen(command, cwd=workdir, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)

        def kill(sig: int) -> None:
            try:
                if sig == signal.SIGKILL:
                    os.killpg(proc.pid, sig)
                else:
                    os.kill(proc.pid, sig)
                    threading.Timer(self.stop_timeout, kill, args=(signal.SIGKILL,)).start()
            except ProcessLookupError:
                pass

        self._procs[task.task_arn] = kill
        assert proc.stdout is not None
        pump = threading.Thread(target=self._pump, args=(iter(lambda: proc.stdout.read1(65536), b""), writer), daemon=True)  # type: ignore[union-attr,attr-defined]
        pump.start()
        code = proc.wait()
        try:  # the container ends with its first process: what it left running goes too
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        pump.join()
        self._procs.pop(task.task_arn, None)
        subprocess.run(["rm", "-rf", workdir], check=False)
        return code if code >= 0 else 128 - code

    def _run_container(self, task: Any, image: str, command: list[str], env: dict[str, str], writer: LogWriter | LaggingWriter | None) -> int:
        import docker

        client = docker.from_env()
        container = client.containers.run(image, command=command, environment=env, network_mode="host", detach=True, labels={"offload.test": "ecs-agent"})

        def kill(sig: int) -> None:
            try:
                if sig == signal.SIGKILL:
                    container.kill()
                else:
                    threading.Thread(target=container.stop, kwargs={"timeout": int(self.stop_timeout)}, daemon=True).start()
            except Exception:  # noqa: BLE001 - already gone
                pass

        self._procs[task.task_arn] = kill
        try:
            self._pump(container.logs(stream=True, follow=True, stdout=True, stderr=True), writer)
            code = int(container.wait()["StatusCode"])
        finally:
            self._procs.pop(task.task_arn, None)
            container.remove(force=True)
            client.close()
        return code

    def _finish(self, task: Any, code: int | None, stop_code: str, reason: str, started: bool = True) -> None:
        container = task.containers[0]
        container.exitCode = code
        container.last_status = "STOPPED"
        if code is None and not started:
            container.reason = reason
        if not getattr(task, "stop_code", None):
            task.stop_code = stop_code
            task.stopped_reason = reason
        task.stopped_at = _now()
        task.desired_status = "STOPPED"
        task.last_status = "STOPPED"
