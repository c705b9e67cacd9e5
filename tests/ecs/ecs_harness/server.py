"""moto's ThreadedMotoServer on 127.0.0.1, behind a WSGI layer that counts calls and
answers with faults on request: throttling, ``run_task`` failures, expired credentials,
S3 errors for one object (the container's download of its project, its upload).

Things AWS does and moto does not are played here too: RunTask's ``clientToken``
(moto ignores it: see :class:`Tokens`), FilterLogEvents' answers (see
:mod:`ecs_harness.filterlogs`), and a way for a test to hold an answer after moto has
acted on the request (:meth:`Faults.hold`), so that a driver can be killed at the exact
point where AWS has started a task and the driver does not know it yet."""

from __future__ import annotations

import datetime
import io
import json
import logging
import re
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from ecs_harness.filterlogs import FilterLogEventsAsCloudWatch

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


class Hold:
    """The next answer to one operation, held back until :meth:`release` (or ``limit`` s)."""

    def __init__(self, op: str, limit: float) -> None:
        self.op, self.limit = op, limit
        self.reached = threading.Event()
        self._released = threading.Event()

    def release(self) -> None:
        self._released.set()

    def wait(self) -> None:
        self.reached.set()
        self._released.wait(self.limit)


class Faults:
    """Answers the next requests of an operation with a canned reply instead of moto's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[dict[str, Any]] = []
        self._holds: list[Hold] = []
        self.expired_keys: set[str] = set()
        #: Access keys S3 does not know (``InvalidAccessKeyId``): moto accepts any key.
        self.refused_keys: set[str] = set()
        self.calls: Counter[str] = Counter()
        #: The S3 calls by operation and path (``("S3:GET", "/bucket/key")``).
        self.paths: Counter[tuple[str, str]] = Counter()

    def hold(self, op: str, limit: float = 60.0) -> Hold:
        """Hold back the answer to the next call of ``op``, after moto has acted on it."""
        hold = Hold(op, limit)
        with self._lock:
            self._holds.append(hold)
        return hold

    def take_hold(self, op: str) -> Hold | None:
        with self._lock:
            for hold in self._holds:
                if hold.op == op:
                    self._holds.remove(hold)
                    return hold
        return None

    def add(
        self,
        op: str,
        count: int,
        *,
        error: tuple[str, str] | None = None,
        body: dict[str, Any] | None = None,
        status: str = "400 Bad Request",
        key: str | None = None,
    ) -> None:
        """The next ``count`` calls of ``op`` fail with ``error`` (code, message; HTTP ``status``)
        or answer ``body``; with ``key``, only the S3 calls whose path ends with ``key``."""
        with self._lock:
            self._rules.append({"op": op, "left": count, "error": error, "body": body, "status": status, "key": key})

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            for hold in self._holds:
                hold.release()
            self._holds.clear()
            self.expired_keys.clear()
            self.refused_keys.clear()

    def take(self, op: str, path: str = "") -> dict[str, Any] | None:
        with self._lock:
            self.calls[op] += 1
            if op.startswith("S3:"):
                self.paths[op, path] += 1
            for rule in self._rules:
                if rule["op"] == op and rule["left"] > 0 and (rule["key"] is None or path.endswith(rule["key"])):
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
        if s3 and access_key(environ) in self.faults.refused_keys:
            self.faults.calls[op] += 1
            return self._error(start_response, s3, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.", "403 Forbidden")
        if s3 and presign_expired(environ.get("QUERY_STRING", "")):
            self.faults.calls[op] += 1
            return self._error(start_response, s3, "AccessDenied", "Request has expired", "403 Forbidden")
        rule = self.faults.take(op, environ.get("PATH_INFO", ""))
        if rule is None:
            hold = self.faults.take_hold(op)
            if hold is None:
                return self.app(environ, start_response)  # type: ignore[no-any-return]
            answer = Answer.of(self.app, environ)
            hold.wait()
            return answer.send(start_response)
        if rule["error"]:
            code, message = rule["error"]
            return self._error(start_response, s3, code, message, rule["status"])
        data = json.dumps(rule["body"]).encode()
        start_response("200 OK", [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(data)))])
        return [data]

    @staticmethod
    def _error(start_response: StartResponse, s3: bool, code: str, message: str, status: str = "400 Bad Request") -> list[bytes]:
        if s3:
            data = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>'.encode()
            kind = "application/xml"
        else:
            data = json.dumps({"__type": code, "message": message}).encode()
            kind = "application/x-amz-json-1.1"
        start_response(status, [("Content-Type", kind), ("Content-Length", str(len(data)))])
        return [data]


def presign_expired(query: str) -> bool:
    """Whether a SigV4 presigned URL's ``X-Amz-Date`` plus ``X-Amz-Expires`` has passed, as S3
    checks it (moto does not)."""
    params = urllib.parse.parse_qs(query)
    if "X-Amz-Date" not in params or "X-Amz-Expires" not in params:
        return False
    signed = datetime.datetime.strptime(params["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    return time.time() > signed.timestamp() + int(params["X-Amz-Expires"][0])


class Answer:
    """A WSGI answer, complete (so its application has acted), to send later or again."""

    def __init__(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    @classmethod
    def of(cls, app: Any, environ: Environ) -> Answer:
        got: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            got.update(status=status, headers=headers)
            return lambda data: None

        body = b"".join(app(environ, start_response))
        return cls(got["status"], got["headers"], body)

    def send(self, start_response: StartResponse) -> list[bytes]:
        start_response(self.status, self.headers)
        return [self.body]


class Tokens:
    """RunTask's ``clientToken`` as ECS documents it (moto ignores it).

    A token is kept per cluster with the parameters and the answer of the call that
    completed with it: the same token and parameters give that answer again and start
    nothing; the same token with other parameters is ``ConflictException``. Calls that
    failed with an error do not keep their token.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._kept: dict[tuple[str, str], tuple[dict[str, Any], Answer]] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        #: The ``clientToken`` of every RunTask call, in order (``None`` when absent).
        self.seen: list[str | None] = []
        self.conflicts = 0

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()
            self._locks.clear()
            self.seen.clear()
            self.conflicts = 0

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if operation(environ) != "RunTask":
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        params = json.loads(body or b"{}")
        token = params.pop("clientToken", None)
        self.seen.append(token)
        if token is None:
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        key = (str(params.get("cluster", "default")).rsplit("/", 1)[-1], str(token))
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # one call per token at a time
            kept = self._kept.get(key)
            if kept is not None:
                if kept[0] != params:
                    self.conflicts += 1
                    return FaultyApp._error(start_response, False, "ConflictException", "The client token was used before with other parameters.")
                return kept[1].send(start_response)
            answer = Answer.of(self.app, environ)
            if answer.status.startswith("200"):
                self._kept[key] = (params, answer)
        return answer.send(start_response)


class MotoServer(ThreadedMotoServer):
    """A moto server on 127.0.0.1 and a free port, with :class:`Faults` in front of it."""

    def __init__(self) -> None:
        super().__init__(ip_address="127.0.0.1", port=0, verbose=False)
        self.faults = Faults()
        self.tokens: Tokens | None = None
        self.filter_logs: FilterLogEventsAsCloudWatch | None = None
        logging.getLogger("werkzeug").setLevel(logging.ERROR)

    def _server_entry(self) -> None:
        self.filter_logs = FilterLogEventsAsCloudWatch(DomainDispatcherApplication(create_backend_app))
        self.tokens = Tokens(FaultyApp(self.filter_logs, self.faults))
        app = self.tokens
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()

    @property
    def url(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"
