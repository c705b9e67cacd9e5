"""Following a container's log in a thread, so a poll takes what has come without waiting.

A poll that asked the engine for the log since the cursor would make it read the log
file from its first line each time (the json-file driver scans to ``since``), and a
reply holding everything new costs the driver memory in proportion to it. Instead each
container polled gets a :class:`Follower`: one ``follow`` request from the handle's
cursor, read frame by frame by a daemon thread into a buffer of at most
:data:`BUFFER_BYTES`; when the buffer is full the thread stops reading, and the engine
waits. The engine ends the reply when the container has stopped and its log was sent
to the end; the follower's thread then asks the engine how the container ended (and
reads what the reply may have left out), so the poll finds the end ready, for many
containers at once: that is when the follower is ``drained``, and only then does the
task count as finished.

The follower's reads have no time limit (a quiet task sends nothing for hours); the
poll's own calls do, so a hung engine stalls only this thread.
"""

from __future__ import annotations

import _thread
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from offload_docker.engine import socket_of
from offload_docker.logs import Assembler, LogCursor, frames, split_payload
from offload_docker.stopping import RUNNING_STATES

if TYPE_CHECKING:
    import socket

    import requests

#: Bytes of lines a follower holds for the next poll before it stops reading.
BUFFER_BYTES = 1 << 20


class Follower:
    """One container's log, from ``cursor`` on.

    ``delivered`` is the cursor after the lines taken so far: a poll whose handle has
    another cursor (an older handle, or lines lost to an interrupted poll) starts a new
    follower from the handle's cursor rather than skip or repeat lines.
    """

    def __init__(
        self,
        api: Any,
        container_id: str,
        cursor: LogCursor,
        connect_timeout: float | None,
        on_activity: Callable[[], None],
        settle: Callable[[], dict[str, Any] | None] | None = None,
    ) -> None:
        self.api = api
        self.settle = settle
        self.container_id = container_id
        self.delivered = cursor
        self.connect_timeout = connect_timeout
        self.on_activity = on_activity
        # The thread feeds the assembler and appends to _lines holding _cond, so that a
        # take sees lines and cursor of the same moment.
        self._cond = threading.Condition()
        self._assembler = Assembler(cursor)
        self._lines: list[str] = []
        self._buffered = 0
        self._eof = False
        self.failed: str | None = None
        #: Why the engine will not give this container's log (its logging driver keeps none).
        self.unreadable: str | None = None
        self.closed = False
        #: What ``settle`` said once the follow reply ended (``None``: not asked, or it failed).
        self.final: dict[str, Any] | None = None
        self.final_at = 0.0
        #: ``time.monotonic()`` when the engine last sent something (or the follower was made).
        self.last_read = time.monotonic()
        self._socket: socket.socket | None = None

    def start(self) -> None:
        """Start reading (separate from making it, so the owner can record it first).

        A bare thread: ``threading.Thread.start`` waits until the new thread runs, which on
        a busy machine held the poll loop up ~10 ms per container started. It is a daemon
        as these are: ``close`` ends its read."""
        _thread.start_new_thread(self._run, ())

    # -- the poll's side -------------------------------------------------------------

    def take(self) -> tuple[list[str], LogCursor | None, bool]:
        """The lines that came since the last take, the cursor after them (``None``
        when it did not move), and whether the log has been read to its end."""
        with self._cond:
            lines, self._lines = self._lines, []
            self._buffered = 0
            drained = self._eof
            cursor = self._assembler.cursor()
            self._cond.notify_all()
        if cursor == self.delivered:
            return lines, None, drained
        self.delivered = cursor
        return lines, cursor, drained

    @property
    def reading(self) -> bool:
        """Whether the engine may still send lines (neither the end nor a failure yet)."""
        return not self._eof and self.failed is None

    def close(self) -> None:
        """Stop following. The thread may be blocked reading a quiet log: the connection is
        shut down under it (closing the response from here would wait for that read)."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()
        sock = self._socket
        if sock is not None:
            import socket

            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # closed already

    # -- the thread's side -----------------------------------------------------------

    def _run(self) -> None:
        try:
            self._follow()
        except Exception as e:  # noqa: BLE001 - the poll restarts a failed follower
            self.failed = f"{type(e).__name__}: {e}"
        finally:
            self.on_activity()

    def _open(self, follow: bool, since: str | None) -> requests.Response | None:
        import docker.errors
        import requests.exceptions

        params: dict[str, Any] = {"stdout": 1, "stderr": 1, "timestamps": 1}
        if follow:
            params["follow"] = 1
        if since is not None:
            params["since"] = since
        url = f"{self.api.base_url}/v{self.api.api_version}/containers/{self.container_id}/logs"
        read_timeout = None if follow else self.connect_timeout
        response: requests.Response = self.api.get(url, params=params, stream=True, timeout=(self.connect_timeout, read_timeout))
        if response.status_code == 404:  # removed meanwhile: the poll finds out from the engine
            response.close()
            return None
        try:
            response.raise_for_status()
        except requests.exceptions.HTTPError as e:
            response.close()
            raise docker.errors.create_api_error_from_http_exception(e) from None
        return response

    def _follow(self) -> None:
        """Follow the log to the end of the reply; then, in this thread (so the ends of
        many containers are settled at once, not one after the other by the poll), ask
        ``settle`` about the container and, once it has stopped, read what the reply may
        have left out: the engine can end a follow reply without the last message when it
        has no newline (moby #43860), and a plain read from the cursor brings it back."""
        import docker.errors

        try:
            response = self._open(True, self.delivered.since())
        except docker.errors.APIError as e:
            self.unreadable = str(e.explanation or e)
            self._end(f"[offload: the engine does not give this container's log: {self.unreadable}]")
            return
        if response is None:
            self._end(None)
            return
        if not self._read(response):
            return
        if self.settle is not None:
            self.final_at = time.monotonic()
            try:
                self.final = self.settle()
            except Exception:  # noqa: BLE001 - the poll asks again, and reports what fails
                self.final = None
            state = (self.final or {}).get("State") or {}
            if self.final is not None and state.get("Status") not in RUNNING_STATES:
                with self._cond:  # read again from the cursor, with a fresh count of frames
                    cursor = self._assembler.cursor()
                    self._assembler = Assembler(cursor)
                try:
                    rest = self._open(False, cursor.since())
                except docker.errors.APIError:
                    rest = None  # best effort: what came stands
                if rest is not None and not self._read(rest):
                    return
        if not self._stopped():
            self._end(None)

    def _read(self, response: requests.Response) -> bool:
        """Feed the reply's frames to the lines; ``False`` when closed meanwhile."""
        self._socket = socket_of(response)
        if self._stopped():
            response.close()
            return False
        buffer = bytearray()
        last_ns = {1: 0, 2: 0}
        try:
            for chunk in body(response):
                self.last_read = time.monotonic()
                buffer += chunk
                with self._cond:
                    while self._buffered >= BUFFER_BYTES and not self._stopped():
                        self._cond.wait()
                    if self._stopped():
                        return False
                    was_empty = not self._lines
                    before = len(self._lines)
                    for stream, payload in frames(buffer):
                        try:
                            ns, text = split_payload(payload)
                        except ValueError:  # no time on it: keep the line, at the stream's last time
                            ns, text = last_ns.get(stream, 0), payload
                        last_ns[stream] = ns
                        self._assembler.feed(stream, ns, text, self._lines)
                    self._buffered += sum(len(line) for line in self._lines[before:])
                if was_empty and self._lines:
                    self.on_activity()
        finally:
            response.close()
        return not self._stopped()

    def _stopped(self) -> bool:
        """``closed``, read afresh: another thread sets it (a method, so no check narrows it)."""
        return self.closed

    def _end(self, notice: str | None) -> None:
        with self._cond:
            if notice is not None:
                self._lines.append(notice)
            else:
                self._assembler.finish(self._lines)
            self._eof = True



def body(response: requests.Response) -> Iterator[bytes]:
    """The body of a chunked streaming response, as the bytes are there.

    urllib3 hands out one HTTP chunk per call, and the engine sends one per log line:
    at ~10 us a chunk that is most of the cost of a flood of short lines. So the chunked
    encoding is undone here, on everything the socket has ready at once, from the HTTP
    response's buffered reader (the SDK reaches the same object for ``attach``); when
    that reader is not there (another transport), urllib3's own stream is used.
    """
    reader: Any = getattr(getattr(response.raw, "_fp", None), "fp", None)
    if not getattr(response.raw, "chunked", False) or not hasattr(reader, "read1"):
        yield from response.raw.stream(1 << 16, decode_content=False)
        return
    buffer = bytearray()
    while True:
        out = bytearray()
        pos = 0
        while True:
            eol = buffer.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(bytes(buffer[pos:eol]).split(b";", 1)[0], 16)
            if size == 0:  # the last chunk: the engine ended the reply
                if out:
                    yield bytes(out)
                return
            end = eol + 2 + size
            if end + 2 > len(buffer):
                break
            out += buffer[eol + 2 : end]
            pos = end + 2
        del buffer[:pos]
        if out:
            yield bytes(out)
        data = reader.read1(1 << 16)
        if not data:
            raise ConnectionError("the engine closed the connection in the middle of the log")
        buffer += data
