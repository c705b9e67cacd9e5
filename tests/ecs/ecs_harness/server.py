"""moto's ThreadedMotoServer on 127.0.0.1, behind a WSGI layer that counts calls and
answers with faults on request: throttling, ``run_task`` failures, expired credentials."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

_KEY = re.compile(r"Credential=([^/,\s]+)/")

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


def operation(environ: Environ) -> str:
    """``RunTask``, ``GetLogEvents``... for JSON APIs; ``S3:<METHOD>`` for S3."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return str(target).rsplit(".", 1)[-1]
    return f"S3:{environ.get('REQUEST_METHOD', '')}"


def access_key(environ: Environ) -> str:
    match = _KEY.search(environ.get("HTTP_AUTHORIZATION", ""))
    if match:
        return match[1]
    query = environ.get("QUERY_STRING", "")
    found = re.search(r"(?:X-Amz-Credential=|AWSAccessKeyId=)([^%&/]+)", query)
    return found[1] if found else ""


class Faults:
    """Answers the next requests of an operation with a canned reply instead of moto's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[dict[str, Any]] = []
        self.expired_keys: set[str] = set()
        self.calls: Counter[str] = Counter()

    def add(self, op: str, count: int, *, error: tuple[str, str] | None = None, body: dict[str, Any] | None = None) -> None:
        """The next ``count`` calls of ``op`` fail with ``error`` (code, message) or answer ``body``."""
        with self._lock:
            self._rules.append({"op": op, "left": count, "error": error, "body": body})

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self.expired_keys.clear()

    def take(self, op: str) -> dict[str, Any] | None:
        with self._lock:
            self.calls[op] += 1
            for rule in self._rules:
                if rule["op"] == op and rule["left"] > 0:
                    rule["left"] -= 1
                    return rule
        return None


class FaultyApp:
    def __init__(self, app: Any, faults: Faults) -> None:
        self.app = app
        self.faults = faults

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        op = operation(environ)
        s3 = op.startswith("S3:")
        if access_key(environ) in self.faults.expired_keys:
            self.faults.calls[op] += 1
            return self._error(start_response, s3, "ExpiredToken" if s3 else "ExpiredTokenException", "The security token included in the request is expired")
        rule = self.faults.take(op)
        if rule is None:
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        if rule["error"]:
            return self._error(start_response, s3, *rule["error"])
        data = json.dumps(rule["body"]).encode()
        start_response("200 OK", [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(data)))])
        return [data]

    @staticmethod
    def _error(start_response: StartResponse, s3: bool, code: str, message: str) -> list[bytes]:
        if s3:
            data = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>'.encode()
            kind = "application/xml"
        else:
            data = json.dumps({"__type": code, "message": message}).encode()
            kind = "application/x-amz-json-1.1"
        start_response("400 Bad Request", [("Content-Type", kind), ("Content-Length", str(len(data)))])
        return [data]


class MotoServer(ThreadedMotoServer):
    """A moto server on 127.0.0.1 and a free port, with :class:`Faults` in front of it."""

    def __init__(self) -> None:
        super().__init__(ip_address="127.0.0.1", port=0, verbose=False)
        self.faults = Faults()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)

    def _server_entry(self) -> None:
        app = FaultyApp(DomainDispatcherApplication(create_backend_app), self.faults)
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()

    @property
    def url(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"
