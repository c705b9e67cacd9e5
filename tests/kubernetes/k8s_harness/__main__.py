"""``python -m k8s_harness up|down|status``: the test cluster in the background, for people.

``up`` starts the control plane and the fake kubelet detached (they outlive this command),
records their pids in the state directory (``--state``, default ``$OFFLOAD_KUBE_STATE`` or
``/tmp/offload-kubernetes``), writes a kubeconfig there and prints the offload system config
that reaches the cluster. ``down`` stops every recorded process by pid (and the containers
of the fake kubelet). ``status`` says what runs. ``scripts/kubernetes_local.sh`` wraps this.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client.exceptions import ApiException

from k8s_harness.cluster import Cluster
from k8s_harness.kubelet import MODULE, remove_containers
from k8s_harness.procs import pid_runs, stop_pid

DEFAULT_STATE = "/tmp/offload-kubernetes"


def _state_dir(args: argparse.Namespace) -> Path:
    return Path(args.state or os.environ.get("OFFLOAD_KUBE_STATE") or DEFAULT_STATE)


def _load(state: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((state / "state.json").read_text()))
    except (OSError, ValueError):
        return None


def _running(record: dict[str, Any]) -> dict[str, bool]:
    return {name: pid_runs(pid, program) for name, (pid, program) in record["pids"].items()}


def _config(record: dict[str, Any]) -> str:
    token, namespace = record["token"], record["namespace"]
    direct = {"command_executor": {"type": "kubernetes", "kubernetes": {"name": "local", "local": {
        "master": record["server"], "certs_ca_data": record["certs_ca_data"], "oauth_token": token, "namespace": namespace,
    }}}}
    by_file = {"command_executor": {"type": "kubernetes", "kubernetes": {"name": "local", "local": {
        "kube_config_path": record["kubeconfig"], "namespace": namespace,
    }}}}
    return (
        "# offload system config (offload.yml) for this cluster, as user 'offload' (cluster-admin):\n"
        + yaml.safe_dump(direct, sort_keys=False)
        + "# or, with the kubeconfig file:\n"
        + "".join(f"# {line}\n" for line in yaml.safe_dump(by_file, sort_keys=False).splitlines())
        + f"# kubectl-style clients: KUBECONFIG={record['kubeconfig']}\n"
    )


def up(args: argparse.Namespace) -> int:
    state = _state_dir(args)
    record = _load(state)
    if record and any(_running(record).values()):
        print(f"already running (state in {state}); 'down' stops it", file=sys.stderr)
        print(_config(record), end="")
        return 0
    workdir = state / "cluster"
    shutil.rmtree(workdir, ignore_errors=True)
    state.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(workdir, runtime=args.runtime, detach=True)
    try:
        cluster.start()
    except Exception as e:  # noqa: BLE001 - reported, not raised: this is a command
        print(f"k8s_harness up: {e}", file=sys.stderr)
        return 1
    cp = cluster.control_plane
    if args.namespace != "default":
        rest = cp.rest("admin")
        with contextlib.suppress(ApiException):  # it exists already
            rest.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": args.namespace}})
        rest.close()
    pids = {name: [proc.pid, Path(proc.argv[0]).name] for name, proc in cp.procs.items()}
    pids["fake-kubelet"] = [cluster.kubelet.pid, MODULE]
    kubeconfig = cluster.kubeconfig("offload", state / "kubeconfig", namespace=args.namespace)
    record = {
        "server": cp.server, "namespace": args.namespace, "token": cp.token("offload"), "admin_token": cp.token("admin"),
        "certs_ca_data": base64.b64encode(cp.ca_data.encode()).decode(), "ca_file": cp.ca_file, "kubeconfig": str(kubeconfig),
        "logs": str(cp.log_dir), "kubelet_log": str(cluster.kubelet.log), "kubelet_instance": cluster.kubelet.instance, "pids": pids,
    }
    (state / "state.json").write_text(json.dumps(record, indent=2))
    (state / "state.json").chmod(0o600)
    print(f"up in {cluster.startup_seconds:.1f} s: {cp.server}; logs in {cp.log_dir} and {cluster.kubelet.log}; state in {state}", file=sys.stderr)
    print(_config(record), end="")
    return 0


def down(args: argparse.Namespace) -> int:
    state = _state_dir(args)
    record = _load(state)
    if record is None:
        print(f"nothing recorded in {state}", file=sys.stderr)
        return 0
    # The kubelet first (it stops its containers), the apiserver's clients before the apiserver.
    for name in ("fake-kubelet", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
        if name in record["pids"]:
            pid, program = record["pids"][name]
            stopped = stop_pid(pid, program, timeout=30 if name == "fake-kubelet" else 10)
            print(f"{name} (pid {pid}): {'stopped' if stopped else 'not running'}", file=sys.stderr)
    remove_containers(record["kubelet_instance"])
    (state / "state.json").unlink(missing_ok=True)
    return 0


def status(args: argparse.Namespace) -> int:
    state = _state_dir(args)
    record = _load(state)
    if record is None:
        print(f"not running (nothing recorded in {state})")
        return 1
    running = _running(record)
    for name, alive in running.items():
        print(f"{name} (pid {record['pids'][name][0]}): {'running' if alive else 'NOT RUNNING'}")
    print(f"server: {record['server']}; kubeconfig: {record['kubeconfig']}; logs: {record['logs']}")
    return 0 if all(running.values()) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m k8s_harness", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--state", help="state directory (default: $OFFLOAD_KUBE_STATE or /tmp/offload-kubernetes)")
    parser.add_argument("--runtime", choices=("docker", "process"), default="docker", help="the fake kubelet's default runtime")
    parser.add_argument("--namespace", default="default", help="the namespace of the printed config (made if missing)")
    args = parser.parse_args(argv)
    return {"up": up, "down": down, "status": status}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
