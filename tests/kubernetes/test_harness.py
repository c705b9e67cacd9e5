"""The harness itself: a real control plane whose controllers and scheduler do their part,
and a fake kubelet that runs pods, reports their status and serves their logs through the
apiserver as a real node would."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from typing import Any

import kubernetes.client
import kubernetes.config
import pytest
from k8s_harness import EVICT_AFTER, OOM_AFTER, RUNTIME, SIMULATED_EVERY, SIMULATED_LINES
from k8s_harness.cluster import Cluster, KubeApis
from k8s_harness.logstore import parse_time
from k8s_harness.testing import job_manifest, pod_manifest, wait_for
from kubernetes.client.exceptions import ApiException

PROCESS = {RUNTIME: "process"}
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (.*)$")


def _job_condition(kube_admin: KubeApis, namespace: str, name: str, kind: str) -> Any:
    job = kube_admin.batch.read_namespaced_job(name, namespace)
    return next((c for c in job.status.conditions or [] if c.type == kind and c.status == "True"), None)


def _job_pod(kube_admin: KubeApis, namespace: str, job: str) -> Any:
    pods = kube_admin.core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
    return pods[0] if pods else None


def _pod(kube_admin: KubeApis, namespace: str, name: str) -> Any:
    return kube_admin.core.read_namespaced_pod(name, namespace)


def _phase(kube_admin: KubeApis, namespace: str, name: str, *phases: str) -> Any:
    pod = _pod(kube_admin, namespace, name)
    return pod if pod.status.phase in phases else None


def _state(pod: Any) -> Any:
    return pod.status.container_statuses[0].state


def _log(kube_admin: KubeApis, namespace: str, name: str, **params: Any) -> str:
    return str(kube_admin.core.read_namespaced_pod_log(name, namespace, **params))


def _follow(kube_admin: KubeApis, namespace: str, name: str, into: list[bytes]) -> threading.Thread:
    """Read the log with follow=true in a thread; the stream must end by itself."""
    def read() -> None:
        response = kube_admin.core.read_namespaced_pod_log(name, namespace, follow=True, _preload_content=False, _request_timeout=90)
        into.append(response.read())
    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def test_job_runs_to_completion_and_its_log_is_read_through_the_apiserver(kube_cluster: Cluster, kube_admin: KubeApis, kube_namespace: str) -> None:
    # (Docker copies stdout and stderr separately: their relative order is not guaranteed, so one stream here.)
    script = "echo one; echo two; sleep 2; echo three; printf last"
    kube_admin.batch.create_namespaced_job(kube_namespace, job_manifest("job", script))
    pod = wait_for(lambda: _job_pod(kube_admin, kube_namespace, "job"), "the job's pod")
    name = pod.metadata.name
    wait_for(lambda: _phase(kube_admin, kube_namespace, name, "Running", "Succeeded"), "the pod to run")
    followed: list[bytes] = []
    follower = _follow(kube_admin, kube_namespace, name, followed)
    wait_for(lambda: _job_condition(kube_admin, kube_namespace, "job", "Complete"), "the Job's Complete condition")
    follower.join(60)
    assert followed == [b"one\ntwo\nthree\nlast"]

    pod = _pod(kube_admin, kube_namespace, name)
    assert pod.status.phase == "Succeeded"
    terminated = _state(pod).terminated
    assert (terminated.exit_code, terminated.reason) == (0, "Completed")
    assert pod.status.container_statuses[0].container_id.startswith("docker://")
    assert {c.type: c.reason for c in pod.status.conditions}["Ready"] == "PodCompleted"

    assert _log(kube_admin, kube_namespace, name) == "one\ntwo\nthree\nlast"
    assert _log(kube_admin, kube_namespace, name, tail_lines=2) == "three\nlast"
    stamped = _log(kube_admin, kube_namespace, name, timestamps=True).split("\n")
    assert [STAMP.match(line).group(1) for line in stamped] == ["one", "two", "three", "last"]  # type: ignore[union-attr]
    # sinceTime has whole seconds; "three" came 2 s after "two". (The client's API has no since_time.)
    since = stamped[2].split(".")[0] + "Z"
    rest = kube_cluster.control_plane.rest("admin")
    assert rest.text(f"/api/v1/namespaces/{kube_namespace}/pods/{name}/log", sinceTime=since) == "three\nlast"
    rest.close()
    assert _log(kube_admin, kube_namespace, name, limit_bytes=6) == "one\ntw"


def test_exit_code_fails_the_pod_and_the_job(kube_admin: KubeApis, kube_namespace: str) -> None:
    kube_admin.batch.create_namespaced_job(kube_namespace, job_manifest("fails", "echo bad; echo worse >&2; exit 3", annotations=PROCESS))
    wait_for(lambda: _job_condition(kube_admin, kube_namespace, "fails", "Failed"), "the Job's Failed condition")
    pod = _job_pod(kube_admin, kube_namespace, "fails")
    assert pod.status.phase == "Failed"
    terminated = _state(pod).terminated
    assert (terminated.exit_code, terminated.reason) == (3, "Error")
    assert _log(kube_admin, kube_namespace, pod.metadata.name) == "bad\nworse\n"


def test_a_simulated_pod_runs_no_process_writes_its_timed_lines_and_succeeds(kube_admin: KubeApis, kube_namespace: str) -> None:
    simulated = {RUNTIME: "simulated", SIMULATED_LINES: "3", SIMULATED_EVERY: "0.1"}
    kube_admin.core.create_namespaced_pod(kube_namespace, pod_manifest("sim", "exit 7", annotations=simulated))  # the command is ignored
    pod = wait_for(lambda: _phase(kube_admin, kube_namespace, "sim", "Succeeded", "Failed"), "the simulated pod to end")
    assert pod.status.phase == "Succeeded" and pod.status.container_statuses[0].container_id.startswith("simulated://")
    stamped = _log(kube_admin, kube_namespace, "sim", timestamps=True).strip().split("\n")
    lines = [STAMP.match(line).group(1).split() for line in stamped]  # type: ignore[union-attr]
    assert [index for index, _ in lines] == ["tick-0", "tick-1", "tick-2"]
    # each line carries the time it was written, which is its log entry's time
    assert [int(at) for _, at in lines] == [parse_time(line.split()[0]) for line in stamped]


def test_graceful_deletion_sends_sigterm_and_the_pod_vanishes(kube_admin: KubeApis, kube_namespace: str) -> None:
    script = "trap 'echo got TERM; exit 0' TERM; echo started; while true; do sleep 0.1; done"
    kube_admin.core.create_namespaced_pod(kube_namespace, pod_manifest("victim", script, terminationGracePeriodSeconds=30))
    wait_for(lambda: "started" in _log(kube_admin, kube_namespace, "victim") if _phase(kube_admin, kube_namespace, "victim", "Running") else None,
             "the pod to run")
    followed: list[bytes] = []
    follower = _follow(kube_admin, kube_namespace, "victim", followed)
    kube_admin.core.delete_namespaced_pod("victim", kube_namespace, grace_period_seconds=20)

    def vanished() -> bool:
        try:
            _pod(kube_admin, kube_namespace, "victim")
        except ApiException as e:
            return e.status == 404
        return False
    wait_for(vanished, "the pod to be deleted")
    follower.join(60)
    assert followed and b"got TERM" in followed[0]


def test_unschedulable_pod_stays_pending(kube_admin: KubeApis, kube_namespace: str) -> None:
    kube_admin.core.create_namespaced_pod(kube_namespace, pod_manifest("nowhere", "true", nodeSelector={"offload.test/none": "x"}))

    def unschedulable() -> Any:
        pod = _pod(kube_admin, kube_namespace, "nowhere")
        return next((c for c in pod.status.conditions or [] if c.type == "PodScheduled" and c.reason == "Unschedulable"), None)
    condition = wait_for(unschedulable, "PodScheduled=False, Unschedulable")
    assert condition.status == "False"
    assert _pod(kube_admin, kube_namespace, "nowhere").status.phase == "Pending"


def test_unpullable_image_alternates_err_image_pull_and_back_off(kube_admin: KubeApis, kube_namespace: str) -> None:
    kube_admin.core.create_namespaced_pod(kube_namespace, pod_manifest("nopull", "true", image="unpullable/nothing:1"))
    seen: set[str] = set()

    def both() -> bool:
        pod = _pod(kube_admin, kube_namespace, "nopull")
        for status in pod.status.container_statuses or []:
            if status.state.waiting is not None:
                seen.add(status.state.waiting.reason)
        return {"ErrImagePull", "ImagePullBackOff"} <= seen
    wait_for(both, "ErrImagePull and ImagePullBackOff", interval=0.1)
    assert _pod(kube_admin, kube_namespace, "nopull").status.phase == "Pending"
    with pytest.raises(ApiException) as error:
        _log(kube_admin, kube_namespace, "nopull")
    assert error.value.status == 400
    message = json.loads(error.value.body)["message"]
    assert message == 'container "main" in pod "nopull" is waiting to start: ' + (
        "image can't be pulled" if "can't" in message else "trying and failing to pull image")


@pytest.mark.parametrize("knob", ["oom", "evict"])
def test_oom_and_eviction_knobs(kube_admin: KubeApis, kube_namespace: str, knob: str) -> None:
    annotations = {**PROCESS, (OOM_AFTER if knob == "oom" else EVICT_AFTER): "1"}
    kube_admin.core.create_namespaced_pod(kube_namespace, pod_manifest("hog", "echo up; sleep 60", annotations=annotations))
    pod = wait_for(lambda: _phase(kube_admin, kube_namespace, "hog", "Failed"), "the pod to fail")
    terminated = _state(pod).terminated
    if knob == "oom":
        assert (terminated.exit_code, terminated.reason) == (137, "OOMKilled")
    else:
        assert pod.status.reason == "Evicted"
        assert pod.status.message.startswith("The node was low on resource: memory.")
        assert terminated is not None


def test_active_deadline_fails_the_pod(kube_admin: KubeApis, kube_namespace: str) -> None:
    manifest = pod_manifest("late", "sleep 60", annotations=PROCESS, activeDeadlineSeconds=1, terminationGracePeriodSeconds=1)
    kube_admin.core.create_namespaced_pod(kube_namespace, manifest)
    pod = wait_for(lambda: _phase(kube_admin, kube_namespace, "late", "Failed"), "the pod to fail")
    assert pod.status.reason == "DeadlineExceeded"


def test_config_map_volume_with_binary_data(kube_admin: KubeApis, kube_namespace: str) -> None:
    blob = bytes(range(256)) * 4
    kube_admin.core.create_namespaced_config_map(kube_namespace, {
        "metadata": {"name": "files"}, "data": {"a.txt": "hello\n"}, "binaryData": {"b.bin": base64.b64encode(blob).decode()},
    })
    volume = {"name": "cfg", "configMap": {"name": "files", "defaultMode": 0o640}}
    script = "cat /etc/cfg/a.txt; sha256sum /etc/cfg/b.bin; stat -c %a /etc/cfg/a.txt"
    manifest = pod_manifest("reader", script, volumes=[volume], container={"volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}]})
    kube_admin.core.create_namespaced_pod(kube_namespace, manifest)
    wait_for(lambda: _phase(kube_admin, kube_namespace, "reader", "Succeeded", "Failed"), "the pod to end")
    assert _log(kube_admin, kube_namespace, "reader") == f"hello\n{hashlib.sha256(blob).hexdigest()}  /etc/cfg/b.bin\n640\n"


def test_secret_env_and_a_missing_secret(kube_admin: KubeApis, kube_namespace: str) -> None:
    env = [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}}, {"name": "SAY", "value": "pw=$(PASSWORD)"}]
    manifest = pod_manifest("waits", 'echo "$SAY"', annotations=PROCESS, container={"env": env})
    kube_admin.core.create_namespaced_pod(kube_namespace, manifest)

    def config_error() -> Any:
        waiting = (_pod(kube_admin, kube_namespace, "waits").status.container_statuses or [None])[0]
        return waiting and waiting.state.waiting and waiting.state.waiting.reason == "CreateContainerConfigError" and waiting.state.waiting
    waiting = wait_for(config_error, "CreateContainerConfigError")
    assert waiting.message == 'secret "creds" not found'
    # The kubelet retries: once the secret exists, the container starts.
    kube_admin.core.create_namespaced_secret(kube_namespace, {"metadata": {"name": "creds"}, "stringData": {"password": "s3cret"}})
    wait_for(lambda: _phase(kube_admin, kube_namespace, "waits", "Succeeded", "Failed"), "the pod to end")
    assert _log(kube_admin, kube_namespace, "waits") == "pw=s3cret\n"


def test_ttl_controller_deletes_a_finished_job(kube_admin: KubeApis, kube_namespace: str) -> None:
    kube_admin.batch.create_namespaced_job(kube_namespace, job_manifest("brief", "true", ttl=1, annotations=PROCESS))

    def deleted() -> bool:
        try:
            kube_admin.batch.read_namespaced_job("brief", kube_namespace)
        except ApiException as e:
            return e.status == 404
        return False
    wait_for(deleted, "the TTL controller to delete the Job")


def test_audit_log_counts_the_offload_users_requests(kube_cluster: Cluster, kube_namespace: str) -> None:
    mark = kube_cluster.audit_mark()
    client = kubernetes.config.new_client_from_config(str(kube_cluster.kubeconfig("offload", namespace=kube_namespace)))
    try:
        core = kubernetes.client.CoreV1Api(client)
        core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "counted"}})
        core.read_namespaced_config_map("counted", kube_namespace)
        core.list_namespaced_pod(kube_namespace)
        core.delete_namespaced_config_map("counted", kube_namespace)
    finally:
        client.close()
    seen = [(r["verb"], (r["objectRef"] or {}).get("resource"), r["code"]) for r in kube_cluster.requests("offload", since=mark)]
    assert seen == [("create", "configmaps", 201), ("get", "configmaps", 200), ("list", "pods", 200), ("delete", "configmaps", 200)]


def test_nobody_is_forbidden(kube_cluster: Cluster, kube_namespace: str) -> None:
    client = kube_cluster.api_client("nobody")
    try:
        with pytest.raises(ApiException) as error:
            kubernetes.client.CoreV1Api(client).list_namespaced_pod(kube_namespace)
    finally:
        client.close()
    assert error.value.status == 403
    assert kube_cluster.requests("nobody")[-1]["code"] == 403
