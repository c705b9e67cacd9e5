"""The fake kubelet: a separate process (``python -m k8s_harness.kubelet``) that plays node
``fake-node`` for a real control plane, and :class:`FakeKubelet`, the handle that starts and
stops it. See the package's docstring for what it does and the annotations it obeys.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from k8s_harness.logserver import LogServer
from k8s_harness.logstore import ContainerLog
from k8s_harness.node import NodeKeeper
from k8s_harness.pki import self_signed
from k8s_harness.pods import Node, PodWorker, Runtime
from k8s_harness.podspec import fetcher
from k8s_harness.podstatus import TERMINAL
from k8s_harness.procs import Proc, tail
from k8s_harness.rest import Rest
from k8s_harness.runtime import LABEL, DockerRuntime, ProcessRuntime, kill_leftovers
from k8s_harness.simulated import SimulatedRuntime

NODE_NAME = "fake-node"
IMAGE = os.environ.get("OFFLOAD_TEST_IMAGE", "offload-test-base:bookworm")
TOKEN_ENV = "FAKE_KUBELET_TOKEN"
MODULE = "k8s_harness.kubelet"

log = logging.getLogger("fake-kubelet")


class Kubelet:
    """The kubelet process's state: the node, the pod workers, the log server."""

    def __init__(self, server: str, token: str, ca_file: str, workdir: Path, node_name: str, runtime: str, image: str, instance: str) -> None:
        self.workdir, self.node_name = workdir, node_name
        self.rest = Rest(server, token, ca_file)
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        self.workers: dict[str, PodWorker] = {}
        runtimes: dict[str, Runtime] = {"process": ProcessRuntime(workdir / "scratch", instance), "simulated": SimulatedRuntime()}
        try:
            docker = DockerRuntime(image, instance)
            docker.remove_containers(stale_only=True)
            runtimes["docker"] = docker
        except Exception as e:  # without an engine, only the process runtime
            if runtime == "docker":
                raise RuntimeError(f"the docker runtime needs a Docker Engine and the image {image} ({e}); run: bash scripts/setup_docker.sh") from e
            log.warning("no docker runtime: %s", e)
        self.runtimes = runtimes
        self.node = Node(self.rest, fetcher(self.rest), runtimes, runtime, workdir / "pods", workdir / "claims")
        workdir.mkdir(parents=True, exist_ok=True)
        self_signed(workdir / "kubelet.crt", workdir / "kubelet.key", node_name)
        self.logs = LogServer(self.resolve, workdir / "kubelet.crt", workdir / "kubelet.key")
        self.keeper = NodeKeeper(self.rest, node_name, self.logs.port, runtime)

    def run(self) -> None:
        self.logs.start()
        self.keeper.register()
        ready = self.workdir / "ready.json"
        ready.with_suffix(".tmp").write_text(json.dumps({"pid": os.getpid(), "port": self.logs.port}))
        ready.with_suffix(".tmp").rename(ready)
        threading.Thread(target=self._watch, name="pod-watch", daemon=True).start()
        log.info("node %s ready, logs on port %d", self.node_name, self.logs.port)
        self.stopped.wait()
        self._shutdown()

    def _shutdown(self) -> None:
        self.keeper.stop()
        with self.lock:
            workers = list(self.workers.values())
        for w in workers:
            w.vanished()
        for w in workers:
            w.join(10)
        for runtime in self.runtimes.values():
            with contextlib.suppress(Exception):
                runtime.cleanup()
        self.logs.stop()

    # -- pods -----------------------------------------------------------------------
    def _watch(self) -> None:
        selector = f"spec.nodeName={self.node_name}"
        version: str | None = None
        while not self.stopped.is_set():
            try:
                if version is None:
                    listing = self.rest.get("/api/v1/pods", fieldSelector=selector)
                    version = listing["metadata"]["resourceVersion"]
                    self._sync(listing["items"])
                query = {"fieldSelector": selector, "resourceVersion": version, "allowWatchBookmarks": True, "timeoutSeconds": 50}
                for event in self.rest.watch("/api/v1/pods", query, timeout=80):
                    kind, obj = event["type"], event["object"]
                    if kind == "ERROR":
                        log.info("watch error %s: relisting", obj.get("message"))
                        version = None
                        break
                    version = obj["metadata"].get("resourceVersion", version)
                    if kind == "DELETED":
                        self._deleted(obj)
                    elif kind in ("ADDED", "MODIFIED"):
                        self._pod(obj)
            except ApiException as e:
                if e.status == 410:
                    version = None
                else:
                    log.warning("pod watch: %s %s", e.status, e.reason)
                    time.sleep(1)
            except Exception as e:  # noqa: BLE001 - a dropped stream: watch again
                log.warning("pod watch: %r", e)
                time.sleep(1)

    def _sync(self, pods: list[dict[str, Any]]) -> None:
        uids = {p["metadata"]["uid"] for p in pods}
        with self.lock:
            gone = [w for uid, w in self.workers.items() if uid not in uids]
        for w in gone:
            self._deleted(w.pod)
        for pod in pods:
            self._pod(pod)

    def _pod(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        with self.lock:
            worker = self.workers.get(meta["uid"])
            if worker is None:
                if (pod.get("status") or {}).get("phase") in TERMINAL and not meta.get("deletionTimestamp"):
                    return  # ended before this kubelet started
                worker = self.workers[meta["uid"]] = PodWorker(self.node, pod)
                new = True
            else:
                new = False
        if new:
            if meta.get("deletionTimestamp"):
                worker.done = True  # nothing runs yet: the deletion is finished at once
            else:
                worker.start()
        worker.update(pod)

    def _deleted(self, pod: dict[str, Any]) -> None:
        with self.lock:
            worker = self.workers.pop(pod["metadata"]["uid"], None)
        if worker is not None:
            worker.vanished()

    # -- logs -----------------------------------------------------------------------
    def resolve(self, namespace: str, name: str, container: str, previous: bool) -> ContainerLog | tuple[int, str]:
        """The kubelet's ``validateContainerLogStatus``: which run's log, or why there is none."""
        with self.lock:
            found = [w for w in self.workers.values() if w.namespace == namespace and w.name == name and not w.gone]
        if not found:
            return 404, f'pod "{name}" does not exist'
        worker = found[-1]
        c = worker.container(container)
        if c is None:
            return 404, f'container "{container}" not found in pod "{name}"'
        prefix = f'container "{container}" in pod "{name}"'
        with worker.lock:
            if previous:
                if not c.last_state.get("terminated") or c.previous_log is None:
                    return 400, f'previous terminated {prefix} not found'
                return c.previous_log
            if (c.running or c.terminated) and c.log is not None:
                return c.log
            if c.last_state.get("terminated") and c.previous_log is not None:
                return c.previous_log
            if c.terminated:
                return 400, f"{prefix} is terminated"
            reason = c.state.get("waiting", {}).get("reason", "")
            if reason == "ErrImagePull":
                return 400, f"{prefix} is waiting to start: image can't be pulled"
            if reason == "ImagePullBackOff":
                return 400, f"{prefix} is waiting to start: trying and failing to pull image"
            return 400, f"{prefix} is waiting to start: {reason}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__)
    parser.add_argument("--server", required=True)
    parser.add_argument("--ca-file", required=True)
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--node-name", default=NODE_NAME)
    parser.add_argument("--runtime", choices=("docker", "process"), default="docker")
    parser.add_argument("--image", default=IMAGE)
    parser.add_argument("--instance", default=uuid.uuid4().hex)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(threadName)s %(message)s", stream=sys.stderr)
    token = os.environ.pop(TOKEN_ENV, "")
    kubelet = Kubelet(args.server, token, args.ca_file, args.workdir, args.node_name, args.runtime, args.image, args.instance)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: kubelet.stopped.set())
    kubelet.run()
    log.info("stopped")


class FakeKubelet:
    """Starts and stops the fake kubelet process for a control plane.

    ``runtime`` is the default runtime ("docker" or "process"; a pod chooses with the
    annotation ``fake-kubelet.offload.test/runtime``). ``detach=True``: the process outlives
    this Python process (``k8s_harness up``).
    """

    def __init__(self, control_plane: Any = None, workdir: Path | str | None = None, *, server: str | None = None,
                 ca_file: str | None = None, token: str | None = None, node_name: str = NODE_NAME,
                 runtime: str = "docker", image: str = IMAGE, detach: bool = False) -> None:
        if control_plane is None and not (server and ca_file and token and workdir):
            raise ValueError("FakeKubelet needs a control plane, or server, ca_file, token and workdir")
        self.control_plane = control_plane
        self._server, self._ca_file, self._token = server, ca_file, token
        self.workdir = Path(workdir) if workdir else Path(control_plane.workdir) / "kubelet"
        self.node_name, self.runtime, self.image, self.detach = node_name, runtime, image, detach
        self.instance = uuid.uuid4().hex
        self.port = 0
        self.proc: Proc | None = None

    # The control plane's address is known once it has started.
    @property
    def server(self) -> str:
        return str(self._server or self.control_plane.server)

    @property
    def ca_file(self) -> str:
        return str(self._ca_file or self.control_plane.ca_file)

    @property
    def token(self) -> str:
        return str(self._token or self.control_plane.token("admin"))

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def log(self) -> Path:
        return self.workdir / "kubelet.log"

    def start(self, timeout: float = 60.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        ready = self.workdir / "ready.json"
        ready.unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH")]))
        env[TOKEN_ENV] = self.token
        argv = [sys.executable, "-m", MODULE, "--server", self.server, "--ca-file", self.ca_file, "--workdir", str(self.workdir),
                "--node-name", self.node_name, "--runtime", self.runtime, "--image", self.image, "--instance", self.instance]
        self.proc = Proc("fake-kubelet", argv, self.log, env=env, detach=self.detach)
        self.proc.start()
        deadline = time.monotonic() + timeout
        while not ready.exists():
            self.proc.check()
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the fake kubelet did not start in {timeout} s; its log is {self.log}:\n{tail(self.log)}")
            time.sleep(0.1)
        self.port = int(json.loads(ready.read_text())["port"])
        self._wait_schedulable(deadline)

    def _wait_schedulable(self, deadline: float) -> None:
        """Wait until the node is Ready and untainted (the node controller removes its start-up taint)."""
        rest = Rest(self.server, self.token, self.ca_file, user_agent="k8s-harness/admin")
        try:
            while True:
                node = rest.get(f"/api/v1/nodes/{self.node_name}")
                ready = any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions") or [])
                if ready and not node.get("spec", {}).get("taints"):
                    return
                assert self.proc is not None
                self.proc.check()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"node {self.node_name} is not Ready and untainted in time: {node.get('spec')}")
                time.sleep(0.2)
        finally:
            rest.close()

    def check(self) -> None:
        """Raise (naming the log) if the kubelet process has died."""
        if self.proc is not None:
            self.proc.check()

    def stop(self) -> None:
        """Stop the process (it kills its containers); remove any container it left behind."""
        if self.proc is not None:
            self.proc.stop(timeout=30)
        remove_containers(self.instance)


def remove_containers(instance: str) -> None:
    """Remove what one fake kubelet instance may have left: its processes and Docker containers."""
    kill_leftovers(instance)
    try:
        import docker
        client = docker.from_env()
    except Exception:  # noqa: BLE001 - no SDK or no engine: no containers either
        return
    try:
        for c in client.containers.list(all=True, filters={"label": f"{LABEL}/instance={instance}"}):
            with contextlib.suppress(Exception):
                c.remove(force=True)
    except Exception:  # noqa: BLE001
        pass
    finally:
        client.close()


if __name__ == "__main__":
    main()
