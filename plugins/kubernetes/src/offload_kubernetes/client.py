"""One connection to the API server, from Digdag's keys, a kubeconfig or the pod's own account.

Calls go through the official client's ``ApiClient`` by path (``/apis/batch/v1/...``)
with raw JSON in and out: the client brings kubeconfig parsing, in-cluster config and
exec credential plugins (EKS, GKE token commands, refreshed when they expire), and the
paths keep this backend independent of the client's generated models. Every call has a
timeout and is counted (``calls``), so benchmarks can report calls per poll. Calls may be
made from several threads at once (a poll's log reads).

The ``kubernetes`` package is imported on first use, not when the plugin is loaded.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Mapping
from typing import Any

from offload import BackendError
from offload_kubernetes.config import KubernetesConfig, ca_pem

IN_CLUSTER_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class KubeError(BackendError):
    """An API call that failed; ``status`` is the HTTP status (0: the server was not reached)."""

    def __init__(self, message: str, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def _message(body: Any) -> tuple[str, str]:
    """The ``message`` and ``reason`` of a ``Status`` answer, else the body's start."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    try:
        status = json.loads(text)
    except ValueError:
        return text.strip()[:300], ""
    if isinstance(status, dict):
        return str(status.get("message") or text[:300]), str(status.get("reason") or "")
    return text[:300], ""


class Kube:
    """The API server one backend instance talks to."""

    def __init__(self, config: KubernetesConfig) -> None:
        self.config = config
        self.calls = 0
        #: Bytes of answers received, for benchmarks (log reads are most of them).
        self.bytes_read = 0
        self._client: Any = None
        self._namespace: str | None = config.settings.namespace
        self._ca_file: str | None = None
        self._lock = threading.Lock()
        #: Polls read logs from several threads at once (:mod:`.schedule`): the counts stay exact.
        self._count_lock = threading.Lock()

    # -- connection -----------------------------------------------------------------

    @property
    def where(self) -> str:
        """The server, for messages (never the token)."""
        s = self.config.settings
        if s.master:
            return s.master
        return self.api.configuration.host if self._client is not None else "(kubeconfig)"

    @property
    def namespace(self) -> str:
        if self._namespace is None:
            _ = self.api  # loading the kubeconfig may name one
        return self._namespace or "default"

    @property
    def api(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def _connect(self) -> Any:
        import kubernetes.client
        import kubernetes.config

        s = self.config.settings
        cfg = kubernetes.client.Configuration()
        if s.master:
            cfg.host = s.master.rstrip("/")
            if s.oauth_token:
                cfg.api_key = {"authorization": s.oauth_token}
                cfg.api_key_prefix = {"authorization": "Bearer"}
            if s.certs_ca_data:
                fd, self._ca_file = tempfile.mkstemp(prefix="offload-k8s-ca-", suffix=".pem")
                with os.fdopen(fd, "wb") as f:
                    f.write(ca_pem(s.certs_ca_data) or b"")
                cfg.ssl_ca_cert = self._ca_file
        else:
            path = os.path.expanduser(s.kube_config_path) if s.kube_config_path else None
            default = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or os.path.expanduser("~/.kube/config")
            try:
                if path or os.path.exists(default):
                    kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                        config_file=path, context=s.context, client_configuration=cfg, persist_config=False)
                    if self._namespace is None:
                        self._namespace = _context_namespace(path, s.context)
                else:
                    kubernetes.config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
                    if self._namespace is None and os.path.exists(IN_CLUSTER_NAMESPACE):
                        with open(IN_CLUSTER_NAMESPACE) as f:
                            self._namespace = f.read().strip() or None
            except Exception as e:  # noqa: BLE001 - the client raises several kinds; one message
                hint = f"kubeconfig {path or default}" if path or os.path.exists(default) else "in-cluster config (no kubeconfig found)"
                raise KubeError(f"kubernetes: cannot load the {hint}: {e}") from None
        return kubernetes.client.ApiClient(cfg)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                try:
                    self._client.close()
                except Exception:  # noqa: BLE001 - closing the pool at the end
                    pass
                self._client = None
        if self._ca_file:
            try:
                os.unlink(self._ca_file)
            except OSError:
                pass
            self._ca_file = None

    # -- calls ------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        timeout: float | None = None,
        content_type: str = "application/json",
        raw: bool = False,
    ) -> Any:
        """One call; the decoded JSON answer (``raw``: the undecoded bytes).

        :raises KubeError: with the API's own message, and the status (404, 409, ...).
        """
        import urllib3.exceptions
        from kubernetes.client.exceptions import ApiException

        with self._count_lock:
            self.calls += 1
        limit = timeout or self.config.settings.request_timeout
        headers = {"Accept": "*/*" if raw else "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        params = [(k, _query_value(v)) for k, v in (query or {}).items() if v is not None]
        try:
            status, data = _call(self.api, method, path, params, headers, body, (min(limit, 10.0), limit))
        except ApiException as e:
            status, data = int(e.status or 0), (e.body or "").encode() if isinstance(e.body, str) else bytes(e.body or b"")
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise KubeError(f"kubernetes: cannot reach the API server at {self.where}: {type(e).__name__}: {e}") from None
        with self._count_lock:
            self.bytes_read += len(data)
        if not 200 <= status <= 299:
            message, reason = _message(data)
            raise KubeError(f"kubernetes: {method} {path}: {status} {message or reason}", status, reason)
        if raw:
            return data
        return json.loads(data) if data else None


def _call(api: Any, method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str], body: Any, timeout: Any) -> tuple[int, bytes]:
    """One request through the client, whichever generation of its ``ApiClient`` is installed.

    Recent clients split building the request (``param_serialize``: auth, with exec
    credential plugins refreshed) from sending it; older ones do both in ``call_api``."""
    if hasattr(api, "param_serialize"):
        serialized = api.param_serialize(method, path, query_params=query, header_params=headers, body=body, auth_settings=["BearerToken"])
        response = api.call_api(*serialized, _request_timeout=timeout)
        response.read()
        return int(response.status), bytes(response.data or b"")
    answer = api.call_api(
        path,
        method,
        query_params=query,
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
        _preload_content=False,
        _request_timeout=timeout,
    )
    response = answer[0] if isinstance(answer, tuple) else answer
    return int(response.status), bytes(response.data or b"")


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _context_namespace(path: str | None, context: str | None) -> str | None:
    import kubernetes.config

    try:
        contexts, active = kubernetes.config.list_kube_config_contexts(config_file=path)  # type: ignore[no-untyped-call]
    except Exception:  # noqa: BLE001 - already loaded once; no namespace then
        return None
    chosen = next((c for c in contexts if c.get("name") == context), active) if context else active
    namespace = (chosen or {}).get("context", {}).get("namespace")
    return str(namespace) if namespace else None
