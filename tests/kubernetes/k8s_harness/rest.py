"""Plain-JSON requests to the apiserver through the ``kubernetes`` client's ``ApiClient``.

The harness works with dicts, not the client's generated models: a pod's spec is read
exactly as the apiserver sent it (no model of a newer API version in between), and status
patches are JSON merge patches of exactly the fields written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import kubernetes.client
from kubernetes.client.exceptions import ApiException

MERGE_PATCH = "application/merge-patch+json"


def configuration(server: str, token: str, ca_file: str) -> kubernetes.client.Configuration:
    cfg = kubernetes.client.Configuration()
    cfg.host = server
    cfg.ssl_ca_cert = ca_file
    cfg.verify_ssl = True
    cfg.api_key = {"authorization": "Bearer " + token}
    cfg.proxy = None  # never an environment proxy: the cluster is on 127.0.0.1
    cfg.connection_pool_maxsize = 32
    return cfg


class Rest:
    """``get``/``post``/``patch``/``delete`` of JSON documents; errors raise ``ApiException``."""

    def __init__(self, server: str, token: str, ca_file: str, user_agent: str = "fake-kubelet") -> None:
        self.client = kubernetes.client.ApiClient(configuration(server, token, ca_file))
        self.client.user_agent = user_agent

    def close(self) -> None:
        self.client.close()  # type: ignore[no-untyped-call]

    def _send(self, method: str, path: str, query: dict[str, Any] | None, body: Any, content_type: str | None, timeout: Any) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        params = [(k, str(v).lower() if isinstance(v, bool) else v) for k, v in (query or {}).items() if v is not None]
        m, url, h, b, _ = self.client.param_serialize(method, path, query_params=params, header_params=headers, body=body, auth_settings=["BearerToken"])
        return self.client.call_api(m, url, h, b, _request_timeout=timeout)

    def request(self, method: str, path: str, *, query: dict[str, Any] | None = None, body: Any = None,
                content_type: str | None = None, timeout: Any = 30) -> Any:
        r = self._send(method, path, query, body, content_type, timeout)
        data = r.read()
        if not 200 <= r.status <= 299:
            raise ApiException.from_response(http_resp=r, body=data.decode(errors="replace"), data=None)
        return json.loads(data) if data else None

    def text(self, path: str, **query: Any) -> str:
        """GET a text resource (``pods/log`` with any query, ``sinceTime`` included)."""
        r = self._send("GET", path, query, None, None, 60)
        data = r.read()
        if not 200 <= r.status <= 299:
            raise ApiException.from_response(http_resp=r, body=data.decode(errors="replace"), data=None)
        return str(data.decode(errors="replace"))

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body=body)

    def merge_patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body=body, content_type=MERGE_PATCH)

    def delete(self, path: str, body: Any = None) -> Any:
        return self.request("DELETE", path, body=body)

    def watch(self, path: str, query: dict[str, Any], timeout: float) -> Iterator[dict[str, Any]]:
        """The events of one watch request, until the server ends it."""
        r = self._send("GET", path, {**query, "watch": True}, None, None, (10, timeout))
        if not 200 <= r.status <= 299:
            data = r.read()
            raise ApiException.from_response(http_resp=r, body=data.decode(errors="replace"), data=None)
        response = r.response
        buffer = b""
        try:
            for chunk in response.stream(amt=None, decode_content=False):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        finally:
            response.close()
            response.release_conn()
