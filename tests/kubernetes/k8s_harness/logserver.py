"""The kubelet's HTTPS endpoint for container logs, which the apiserver proxies
``GET /api/v1/namespaces/NS/pods/POD/log`` to:
``/containerLogs/{namespace}/{pod}/{container}?follow&timestamps&sinceTime&sinceSeconds&tailLines&limitBytes&previous``.

Errors are plain text with the real kubelet's status and wording (404 for an unknown pod or
container, 400 for a container that has no log yet); the apiserver passes them on.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from k8s_harness.logstore import ContainerLog, LogOptions, now_ns, parse_time

#: (namespace, pod, container, previous) -> the log, or (HTTP status, message).
Resolver = Callable[[str, str, str, bool], "ContainerLog | tuple[int, str]"]


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return query.get(name, ["false"])[-1].lower() in ("true", "1")


def _int(query: dict[str, list[str]], name: str) -> int | None:
    return int(query[name][-1]) if name in query and query[name][-1] != "" else None


def parse_options(query: dict[str, list[str]]) -> tuple[LogOptions, bool]:
    """The log options of a query string, and whether the previous run is asked for."""
    opts = LogOptions(follow=_flag(query, "follow"), timestamps=_flag(query, "timestamps"))
    opts.tail_lines = _int(query, "tailLines")
    if opts.tail_lines is not None and opts.tail_lines < 0:
        opts.tail_lines = None
    opts.limit_bytes = _int(query, "limitBytes")
    seconds = _int(query, "sinceSeconds")
    if seconds is not None:
        opts.since_ns = now_ns() - seconds * 1_000_000_000
    elif query.get("sinceTime", [""])[-1]:
        opts.since_ns = parse_time(query["sinceTime"][-1])
    return opts, _flag(query, "previous")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _plain(self, status: int, message: str) -> None:
        body = message.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def setup(self) -> None:
        # No Nagle delay (Go's default, so the real kubelet's): a reply written in pieces
        # (headers, chunks, the last chunk) would otherwise wait ~40 ms for a delayed ACK.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # The TLS handshake happens here, in the request's thread, not in the accept loop.
        self.request.do_handshake()
        super().setup()

    def _peer_gone(self) -> bool:
        """Whether the client closed the connection (readable with nothing to read)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            self.connection.setblocking(False)
            try:
                return bool(self.connection.recv(1) == b"")
            finally:
                self.connection.setblocking(True)
        except (ssl.SSLWantReadError, BlockingIOError):
            return False
        except (OSError, ValueError):
            return True

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in url.path.split("/") if p]
        if url.path == "/healthz":
            self._plain(200, "ok")
            return
        if len(parts) != 4 or parts[0] != "containerLogs":
            self._plain(404, "404 page not found")
            return
        try:
            opts, previous = parse_options(urllib.parse.parse_qs(url.query, keep_blank_values=True))
        except ValueError as e:
            self._plain(400, str(e))
            return
        found = self.server.resolve(parts[1], parts[2], parts[3], previous)
        if isinstance(found, tuple):
            self._plain(*found)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def write(data: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        try:
            found.stream(opts, write, alive=lambda: not self._peer_gone())
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (OSError, ssl.SSLError):
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    resolve: Resolver

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away or failed the handshake


class LogServer:
    """Serves ``resolver``'s logs over HTTPS on 127.0.0.1 (``port`` 0: a free one)."""

    def __init__(self, resolver: Resolver, cert_file: Path, key_file: Path, port: int = 0) -> None:
        self.httpd = _Server(("127.0.0.1", port), _Handler)
        self.httpd.resolve = resolver
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert_file), str(key_file))
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True, do_handshake_on_connect=False)
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="log-server", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        with contextlib.suppress(OSError):
            self.httpd.socket.shutdown(socket.SHUT_RDWR)
        self.httpd.server_close()
