"""A real Kubernetes v1.20.2 control plane on 127.0.0.1: etcd, kube-apiserver,
kube-controller-manager (every controller, the TTL-after-finished one included) and
kube-scheduler, built by ``scripts/setup_kubernetes.sh``.

Identities (static tokens): ``admin`` (group ``system:masters``; the components and the
fake kubelet use it), ``offload`` (bound to ``cluster-admin``; the identity of a driver under
test, whose requests the audit log counts) and ``nobody`` (no RBAC binding: every request
beyond discovery is refused with 403).
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import shutil
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client.exceptions import ApiException

from k8s_harness.audit import POLICY, AuditLog
from k8s_harness.pki import Pki
from k8s_harness.procs import Proc, free_port, tail
from k8s_harness.rest import Rest

CACHE = Path(os.environ.get("OFFLOAD_K8S_CACHE", "/var/cache/offload/kubernetes-1.20.2"))
DEFAULT_BIN_DIR = CACHE / "bin"
SETUP_HINT = "run: bash scripts/setup_kubernetes.sh"
USERS = ("admin", "offload", "nobody")
FEATURE_GATES = "TTLAfterFinished=true"


class MissingBinary(RuntimeError):
    """A binary of the control plane is not there (``scripts/setup_kubernetes.sh`` makes them)."""


class ControlPlane:
    """Start with :meth:`start`, stop with :meth:`stop`; every file lives under ``workdir``.

    ``detach=True`` makes processes that outlive this Python process (``k8s_harness up``).
    """

    def __init__(self, workdir: Path | str, bin_dir: Path | str = DEFAULT_BIN_DIR, *, etcd: str | None = None, detach: bool = False) -> None:
        self.workdir = Path(workdir)
        self.bin_dir = Path(bin_dir)
        self.etcd_binary = etcd or shutil.which("etcd") or "/usr/bin/etcd"
        self.detach = detach
        self.log_dir = self.workdir / "logs"
        self.pki = Pki(self.workdir / "pki")
        self.port = 0
        self.etcd_url = ""
        self.procs: dict[str, Proc] = {}
        self._tokens = {user: secrets.token_hex(16) for user in USERS}
        self.audit = AuditLog(self.log_dir / "audit.log", self._audit_marker)
        self._admin: Rest | None = None

    # -- what clients need ------------------------------------------------------------
    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> str:
        return str(self.pki.ca_file)

    @property
    def ca_data(self) -> str:
        """The CA's PEM: what verifies the apiserver's certificate."""
        return self.pki.ca_file.read_text()

    def token(self, name: str = "offload") -> str:
        return self._tokens[name]

    def rest(self, user: str = "admin") -> Rest:
        """A plain-JSON client (:class:`k8s_harness.rest.Rest`) with ``user``'s token."""
        return Rest(self.server, self.token(user), self.ca_file, user_agent=f"k8s-harness/{user}")

    def kubeconfig(self, user: str = "offload", path: Path | str | None = None, namespace: str | None = None) -> Path:
        """Write a kubeconfig for ``user`` (CA data inline, bearer token); its path."""
        target = Path(path) if path else self.workdir / (f"kubeconfig-{user}" + (f"-{namespace}" if namespace else "") + ".yaml")
        context: dict[str, Any] = {"cluster": "offload-test", "user": user}
        if namespace:
            context["namespace"] = namespace
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "offload-test", "cluster": {
                "server": self.server,
                "certificate-authority-data": base64.b64encode(self.ca_data.encode()).decode(),
            }}],
            "users": [{"name": user, "user": {"token": self.token(user)}}],
            "contexts": [{"name": f"{user}@offload-test", "context": context}],
            "current-context": f"{user}@offload-test",
        }
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(config, sort_keys=False))
        target.chmod(0o600)
        return target

    # -- audit ----------------------------------------------------------------------
    def _audit_marker(self, token: str) -> None:
        rest = self._admin_rest()
        with contextlib.suppress(ApiException):
            rest.get(f"/api/v1/namespaces/default/configmaps/{token}")

    def audit_mark(self) -> int:
        """A position in the audit log, for ``requests(user, since=...)``."""
        return self.audit.mark()

    def requests(self, user: str, since: int = 0) -> list[dict[str, Any]]:
        """The requests ``user`` made (after ``since``), oldest first, each a dict with
        ``verb``, ``requestURI``, ``objectRef`` (resource, namespace, name, subresource...),
        ``code`` (the response status code), ``responseStatus``, ``userAgent``, ``stageTimestamp``."""
        return self.audit.requests(user, since)

    # -- lifecycle ------------------------------------------------------------------
    def check_binaries(self) -> None:
        missing = [str(self.bin_dir / b) for b in ("kube-apiserver", "kube-controller-manager", "kube-scheduler") if not os.access(self.bin_dir / b, os.X_OK)]
        if not os.access(self.etcd_binary, os.X_OK):
            missing.append(self.etcd_binary)
        if missing:
            raise MissingBinary(f"missing Kubernetes test binaries: {', '.join(missing)}; {SETUP_HINT}")

    def _admin_rest(self) -> Rest:
        if self._admin is None:
            self._admin = self.rest("admin")
        return self._admin

    def _write_files(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.pki.create()
        groups = {"admin": "system:masters"}
        lines = [f'{self._tokens[u]},{u},uid-{u}' + (f',"{groups[u]}"' if u in groups else "") for u in USERS]
        (self.workdir / "tokens.csv").write_text("\n".join(lines) + "\n")
        (self.workdir / "tokens.csv").chmod(0o600)
        (self.workdir / "audit-policy.yaml").write_text(POLICY)

    def _proc(self, name: str, argv: list[str]) -> Proc:
        proc = Proc(name, argv, self.log_dir / f"{name}.log", detach=self.detach)
        self.procs[name] = proc
        proc.start()
        return proc

    def start(self, timeout: float = 120.0) -> None:
        self.check_binaries()
        self._write_files()
        deadline = time.monotonic() + timeout
        try:
            self._start_etcd(deadline)
            self._start_apiserver(deadline)
            self._bind_offload()
            kubeconfig = str(self.workdir / "admin.kubeconfig")
            self._proc("kube-controller-manager", [
                str(self.bin_dir / "kube-controller-manager"), f"--kubeconfig={kubeconfig}", "--controllers=*",
                "--use-service-account-credentials=false", f"--feature-gates={FEATURE_GATES}", "--leader-elect=false",
                "--bind-address=127.0.0.1", "--port=0", "--secure-port=0",
                f"--service-account-private-key-file={self.pki.sa_key}", f"--root-ca-file={self.pki.ca_file}",
                "--kube-api-qps=100", "--kube-api-burst=200", "--pvclaimbinder-sync-period=2s", "-v=1",
            ])
            self._proc("kube-scheduler", [
                str(self.bin_dir / "kube-scheduler"), f"--kubeconfig={kubeconfig}", "--leader-elect=false",
                "--bind-address=127.0.0.1", "--port=0", "--secure-port=0",
                f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}", "-v=1",
            ])
            self.wait_ready(max(5.0, deadline - time.monotonic()))
        except BaseException:
            self.stop()
            raise

    def _start_etcd(self, deadline: float) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        self._proc("etcd", [
            self.etcd_binary, "--name=default", f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={self.etcd_url}", f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}", f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=default=http://127.0.0.1:{peer}", "--snapshot-count=10000", "--log-level=warn", "--logger=zap",
        ])
        self._wait(deadline, "etcd", lambda: self._http(self.etcd_url + "/health") == 200)

    def _start_apiserver(self, deadline: float) -> None:
        self.port = free_port()
        self.kubeconfig("admin", self.workdir / "admin.kubeconfig")
        audit_log = self.log_dir / "audit.log"
        self._proc("kube-apiserver", [
            str(self.bin_dir / "kube-apiserver"), f"--etcd-servers={self.etcd_url}",
            f"--secure-port={self.port}", "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--insecure-port=0",
            f"--cert-dir={self.workdir / 'certs'}", f"--tls-cert-file={self.pki.server_cert}", f"--tls-private-key-file={self.pki.server_key}",
            f"--token-auth-file={self.workdir / 'tokens.csv'}", "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc", f"--service-account-key-file={self.pki.sa_pub}",
            f"--service-account-signing-key-file={self.pki.sa_key}", "--service-cluster-ip-range=10.96.0.0/16",
            "--disable-admission-plugins=ServiceAccount", f"--feature-gates={FEATURE_GATES}",
            f"--audit-policy-file={self.workdir / 'audit-policy.yaml'}", f"--audit-log-path={audit_log}",
            "--audit-log-format=json", "--audit-log-mode=blocking",
            *(["--audit-log-maxsize=200", "--audit-log-maxbackup=1"] if self.detach else ["--audit-log-maxsize=0"]),
            "--kubelet-preferred-address-types=InternalIP,Hostname", "--kubelet-timeout=30s",
            "--allow-privileged=true", "--profiling=false", "--endpoint-reconciler-type=none", "-v=1",
        ])
        self._wait(deadline, "kube-apiserver", self._readyz)

    def _readyz(self) -> bool:
        return self._http(self.server + "/readyz", token=self.token("admin")) == 200

    def _http(self, url: str, token: str | None = None) -> int:
        """GET ``url`` (no proxy, CA verified); the status code, 0 when nothing answers."""
        handlers: list[Any] = [urllib.request.ProxyHandler({})]
        if url.startswith("https:"):
            handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=self.ca_file)))
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
        try:
            with urllib.request.build_opener(*handlers).open(request, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as e:
            return int(e.code)
        except OSError:
            return 0

    def _wait(self, deadline: float, what: str, ready: Any) -> None:
        while True:
            for proc in self.procs.values():
                proc.check()
            if ready():
                return
            if time.monotonic() > deadline:
                logs = ", ".join(str(p.log) for p in self.procs.values())
                raise TimeoutError(f"{what} is not ready in time; logs: {logs}\n{tail(self.procs[what].log) if what in self.procs else ''}")
            time.sleep(0.2)

    def _bind_offload(self) -> None:
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "offload-cluster-admin"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "offload"}],
        }
        try:
            self._admin_rest().post("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding)
        except ApiException as e:
            if e.status != 409:
                raise

    def _controllers_work(self) -> bool:
        """The controller manager runs: it made the ``default`` ServiceAccount of ``default``."""
        try:
            self._admin_rest().get("/api/v1/namespaces/default/serviceaccounts/default")
        except ApiException:
            return False
        return True

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the apiserver answers and the controller manager works; raise if a component died."""
        deadline = time.monotonic() + timeout
        self._wait(deadline, "kube-apiserver", self._readyz)
        self._wait(deadline, "kube-controller-manager", self._controllers_work)

    def check(self) -> None:
        """Raise (naming the log) if any component has died."""
        for proc in self.procs.values():
            proc.check()

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.procs.items()}

    def stop(self) -> None:
        """Stop every process this control plane started (by pid), the apiserver's clients first."""
        for name in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
            if name in self.procs:
                self.procs[name].stop()
        if self._admin is not None:
            self._admin.close()
            self._admin = None
