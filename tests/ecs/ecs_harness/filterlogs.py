"""``FilterLogEvents`` as CloudWatch Logs answers it, where moto 5.2 does not:

* ``logStreamNamePrefix``: moto ignores it and answers with the events of every stream of
  the group. Here the prefix becomes the list of the group's streams that start with it
  (``logStreamNames``, which moto honours); no such stream is an answer without events; a
  request with both parameters is ``InvalidParameterException``, as CloudWatch has it.
* ``searchedLogStreams``: moto lists every stream it searched; CloudWatch has answered with
  an empty list since May 2020. Here it is emptied, so a client does not pay for parsing
  what CloudWatch never sends (1,000 entries for 1,000 streams, at every call).

A WSGI layer in front of moto."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.logs.models import logs_backends

_REGION = re.compile(r"Credential=[^/]+/[^/]+/([^/]+)/")

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


def _answer(start_response: StartResponse, status: str, body: dict[str, Any], headers: Iterable[tuple[str, str]] = ()) -> list[bytes]:
    data = json.dumps(body).encode()
    kept = [(k, v) for k, v in headers if k.lower() not in ("content-type", "content-length")]
    start_response(status, [*kept, ("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(data)))])
    return [data]


def stream_names(region: str, group: str) -> list[str] | None:
    """The names of ``group``'s streams in moto (``None``: no such group)."""
    backend = logs_backends[DEFAULT_ACCOUNT_ID][region]
    while True:
        try:
            found = backend.groups.get(group)
            return None if found is None else list(found.streams)
        except RuntimeError:  # a stream was created meanwhile
            continue


class FilterLogEventsAsCloudWatch:
    def __init__(self, app: Any) -> None:
        self.app = app
        #: The ``logStreamNamePrefix`` of each request that had one, in order.
        self.prefixes: list[str] = []

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if not str(environ.get("HTTP_X_AMZ_TARGET", "")).endswith(".FilterLogEvents"):
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        params = json.loads(body or b"{}")
        prefix = params.pop("logStreamNamePrefix", None)
        if prefix is not None:
            self.prefixes.append(prefix)
            if params.get("logStreamNames"):
                error = {"__type": "InvalidParameterException", "message": "Cannot specify both logStreamNamePrefix and logStreamNames"}
                return _answer(start_response, "400 Bad Request", error)
            match = _REGION.search(environ.get("HTTP_AUTHORIZATION", ""))
            names = stream_names(match[1] if match else "us-east-1", str(params.get("logGroupName")))
            if names is not None:
                matching = [name for name in names if name.startswith(prefix)]
                if not matching:
                    return _answer(start_response, "200 OK", {"events": [], "searchedLogStreams": []})
                if len(matching) < len(names):
                    params["logStreamNames"] = matching
            body = json.dumps(params).encode()
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        got: dict[str, Any] = {}

        def keep(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            got.update(status=status, headers=headers)
            return lambda data: None

        data = b"".join(self.app(environ, keep))
        if not str(got["status"]).startswith("200"):
            start_response(got["status"], got["headers"])
            return [data]
        answer = json.loads(data)
        answer["searchedLogStreams"] = []
        return _answer(start_response, got["status"], answer, got["headers"])
