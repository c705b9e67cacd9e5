"""Task logs kept under ``<project>/.offload/logs/<run_id>/``, bounded in size.

Each task attempt's log, as the driver streamed it (secrets already masked), is the
plain UTF-8 file ``<task_key>.<attempt>.log``: one line per log line, final once the
task finished. A log is capped at :func:`log_limit` bytes (``OFFLOAD_LOG_LIMIT``,
default 1 MiB): the head and the tail are kept, and the cut between them is one line
``[offload: 12,345 lines (3.2 MiB) cut here]``.

While the task runs, the ``.log`` file holds the head (up to half the cap); the lines
after it go to rolling tail segments beside it (``.log.tail-<n>``, only the newest two
are kept, which always cover the bytes the tail may need) and a small ``.log.state``
records what was dropped. Finishing the task folds head, cut and tail into the
``.log`` file and removes the rest. Every line is written as it comes (no buffering),
so a crashed driver loses nothing, and a resumed driver appends to the same pieces.
Memory stays bounded: never more than the cap of one log is held.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
from collections.abc import Callable, Iterator
from typing import BinaryIO

from offload.executor.errors import UsageError
from offload.workflow.taskkeys import task_key

#: The environment variable that sets the cap of each task attempt's log, in bytes.
LIMIT_ENV = "OFFLOAD_LOG_LIMIT"
DEFAULT_LIMIT = 1024 * 1024
MIN_LIMIT = 256
#: Log files a run keeps open at once (the others are reopened when they get a line).
MAX_OPEN = 64
MARKER_RE = re.compile(r"\[offload: ([0-9,]+) lines(?: \([^)]*\))? cut here\]")
_UNITS = {"": 1, "k": 1024, "kib": 1024, "m": 1024**2, "mib": 1024**2, "g": 1024**3, "gib": 1024**3}


def log_limit(environ: dict[str, str] | None = None) -> int:
    """The cap of each task attempt's log: ``OFFLOAD_LOG_LIMIT`` (bytes; ``K``/``M``/``G`` allowed)."""
    text = (os.environ if environ is None else environ).get(LIMIT_ENV, "").strip()
    if not text:
        return DEFAULT_LIMIT
    match = re.fullmatch(r"([0-9]+)\s*([a-zA-Z]*)", text)
    unit = _UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None or int(match.group(1)) * unit < MIN_LIMIT:
        raise UsageError(f"{LIMIT_ENV}={text!r}: must be a size in bytes of at least {MIN_LIMIT} (K, M and G suffixes allowed), such as 1048576 or 4M")
    return int(match.group(1)) * unit


def log_dir(project_dir: str, run_id: str) -> str:
    return os.path.join(project_dir, ".offload", "logs", run_id)


def log_path(project_dir: str, run_id: str, task_name: str, attempt: int) -> str:
    """The file of a task attempt's log (it may not exist: the task printed nothing yet)."""
    return os.path.join(log_dir(project_dir, run_id), f"{task_key(task_name)}.{attempt}.log")


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value, unit = size / 1024.0, "KiB"
    for bigger in ("MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024.0, bigger
    return f"{value:.1f} {unit}"


def marker(lines: int, size: int | None) -> str:
    """The line that stands for ``lines`` lines (``size`` bytes) cut from a log."""
    return f"[offload: {lines:,} lines{'' if size is None else f' ({human_size(size)})'} cut here]"


def file_size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return None


def read_bytes(path: str, offset: int = 0, limit: int = -1) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(limit)


def _lines(path: str) -> Iterator[bytes]:
    """The complete lines of a file, each with its newline (a line being written is left out)."""
    with open(path, "rb") as f:
        yield from (line for line in f if line.endswith(b"\n"))


def complete_lines(data: bytes) -> tuple[list[str], int]:
    """The complete lines in ``data`` (decoded) and the bytes they take."""
    end = data.rfind(b"\n") + 1
    if end == 0:
        return [], 0
    return [line.decode("utf-8", "replace") for line in data[: end - 1].split(b"\n")], end


def segment_numbers(path: str) -> list[int]:
    folder, base = os.path.split(path)
    prefix = base + ".tail-"
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return sorted(int(n[len(prefix) :]) for n in names if n.startswith(prefix) and n[len(prefix) :].isdigit())


def read_state(path: str) -> dict[str, int] | None:
    try:
        with open(path + ".state", encoding="utf-8") as f:
            data = json.load(f)
        return {k: int(data[k]) for k in ("limit", "head_bytes", "first", "dropped_lines", "dropped_bytes")}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_final(path: str, state: dict[str, int] | None) -> bool:
    """Whether the ``.log`` file is the whole log (no tail pieces beside it to fold in):
    a folded file is always longer than the head recorded when the head was closed."""
    return state is None or file_size(path) != state["head_bytes"]


class Fold:
    """Head, cut and tail of a stream of lines within ``limit`` bytes, holding at most ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit, self.head_budget = limit, limit // 2
        self.head: list[bytes] = []
        self.tail: collections.deque[bytes] = collections.deque()
        self.head_bytes = self.tail_bytes = self.cut_lines = self.cut_bytes = 0
        self.closed = False

    def add(self, line: bytes) -> None:
        if not self.closed:
            if self.head_bytes + len(line) <= self.head_budget:
                self.head.append(line)
                self.head_bytes += len(line)
                return
            self.closed = True
        self.tail.append(line)
        self.tail_bytes += len(line)
        while self.tail_bytes > self.limit - self.head_bytes:
            self._drop()

    def skip(self, lines: int, size: int) -> None:
        """Count lines that are gone already (cut between the head and the lines added next)."""
        if lines:
            self.closed = True
            self.cut_lines, self.cut_bytes = self.cut_lines + lines, self.cut_bytes + size

    def _drop(self) -> None:
        line = self.tail.popleft()
        self.tail_bytes -= len(line)
        self.cut_lines, self.cut_bytes = self.cut_lines + 1, self.cut_bytes + len(line)

    def result(self) -> list[bytes]:
        if not self.cut_lines:
            return [*self.head, *self.tail]
        while self.tail and self.head_bytes + len(marker(self.cut_lines, self.cut_bytes)) + 1 + self.tail_bytes > self.limit:
            self._drop()
        return [*self.head, marker(self.cut_lines, self.cut_bytes).encode() + b"\n", *self.tail]


def _fold_pieces(path: str, state: dict[str, int]) -> list[bytes]:
    fold = Fold(state["limit"])
    for line in _lines(path):
        fold.add(line)
    fold.skip(state["dropped_lines"], state["dropped_bytes"])
    for seq in segment_numbers(path):
        if seq >= state["first"]:
            for line in _lines(f"{path}.tail-{seq}"):
                fold.add(line)
    return fold.result()


def read_log(project_dir: str, run_id: str, task_name: str, attempt: int) -> list[str]:
    """A task attempt's log as kept (head, cut marker, tail); for a running task, as it
    would be if it ended now. ``[]`` when nothing was kept."""
    path = log_path(project_dir, run_id, task_name, attempt)
    for _ in range(10):
        state = read_state(path)
        try:
            if is_final(path, state):
                return complete_lines(read_bytes(path))[0]
            assert state is not None
            lines = _fold_pieces(path, state)
        except FileNotFoundError:
            if file_size(path) is None:
                return []
            continue  # a piece went while it was read: the task finished meanwhile
        if read_state(path) == state and not is_final(path, state):
            return [line[:-1].decode("utf-8", "replace") for line in lines]
    return complete_lines(read_bytes(path))[0]


class TaskLog:
    """The log of one task attempt being written."""

    def __init__(self, path: str, limit: int) -> None:
        self.path, self.limit = path, limit
        self.file: BinaryIO | None = None
        self.file_seq = 0
        self.head_bytes, self.head_closed, self.retain = 0, False, limit
        self.segs: list[list[int]] = []  # [seq, lines, bytes] of the kept tail segments
        self.dropped_lines = self.dropped_bytes = 0
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        self._load()

    def _load(self) -> None:
        """Pick up what a previous driver wrote (a re-attached task appends to its log)."""
        state = read_state(self.path)
        if state is not None and is_final(self.path, state):
            self._remove_pieces()  # folded already; only the clean-up was cut short
            state = None
        if state is None:  # the head is open, or the log is final (a line more reopens it)
            self.head_bytes = self._mend(self.path)
            return
        self.limit, self.head_bytes, self.head_closed = state["limit"], state["head_bytes"], True
        self.retain = self._retain()
        self.dropped_lines, self.dropped_bytes = state["dropped_lines"], state["dropped_bytes"]
        for seq in segment_numbers(self.path):
            if seq < state["first"]:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{self.path}.tail-{seq}")
                continue
            size = self._mend(f"{self.path}.tail-{seq}")
            self.segs.append([seq, sum(1 for _ in _lines(f"{self.path}.tail-{seq}")), size])
        if not self.segs:
            self._new_segment(state["first"])

    @staticmethod
    def _mend(path: str) -> int:
        """End a line cut short by a crash; the file's size."""
        size = file_size(path)
        if size is None:
            return 0
        if size and read_bytes(path, size - 1) != b"\n":
            with open(path, "ab") as f:
                f.write(b"\n")
            size += 1
        return size

    def _state(self) -> None:
        data = {"limit": self.limit, "head_bytes": self.head_bytes, "first": self.segs[0][0]}
        data.update(dropped_lines=self.dropped_lines, dropped_bytes=self.dropped_bytes)
        tmp = f"{self.path}.state.new"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, self.path + ".state")

    def _switch(self, seq: int) -> BinaryIO:
        """The file to append to: the head (``seq`` 0) or a tail segment; unbuffered, so a crash loses nothing."""
        if self.file is None or self.file_seq != seq:
            self.close()
            path = f"{self.path}.tail-{seq}" if seq else self.path
            self.file = open(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab", buffering=0)
            self.file_seq = seq
        return self.file

    def _new_segment(self, seq: int) -> None:
        self._switch(seq)  # exists before the state names it
        self.segs.append([seq, 0, 0])

    def _retain(self) -> int:
        """Bytes of the newest lines the tail segments must cover: what the fold may keep after the head."""
        return self.limit - self.head_bytes if self.head_bytes <= self.limit // 2 else self.limit

    def _close_head(self) -> None:
        os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))  # the head may be empty
        self.head_closed = True
        self.retain = self._retain()
        self._new_segment(1)
        self._state()

    def write(self, line: str) -> None:
        """Keep one log line (a line holding newlines is kept as the lines it holds)."""
        for part in line.removesuffix("\n").split("\n") if "\n" in line else (line,):
            self._write(part.encode("utf-8", "replace") + b"\n")

    def _write(self, data: bytes) -> None:
        size = len(data)
        if not self.head_closed:
            if self.head_bytes + size <= self.limit // 2:
                self._switch(0).write(data)
                self.head_bytes += size
                return
            self._close_head()
        seg = self.segs[-1]
        if seg[2] and seg[2] + size > self.retain:
            self._rotate()
            seg = self.segs[-1]
        (self.file if self.file is not None and self.file_seq == seg[0] else self._switch(seg[0])).write(data)
        seg[1] += 1
        seg[2] += size

    def _rotate(self) -> None:
        """A new tail segment; the two newest always hold more than ``retain`` bytes, so older ones go."""
        self._new_segment(self.segs[-1][0] + 1)
        gone, self.segs = self.segs[:-2], self.segs[-2:]
        if gone:
            self.dropped_lines += sum(s[1] for s in gone)
            self.dropped_bytes += sum(s[2] for s in gone)
            self._state()
            for seq, _, _ in gone:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{self.path}.tail-{seq}")

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None

    def finish(self) -> None:
        """Fold the pieces into the final ``.log`` file (created empty if the task printed nothing)."""
        self.close()
        state = read_state(self.path)
        if state is None:
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            return
        tmp = f"{self.path}.new"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
            f.writelines(_fold_pieces(self.path, state))
        os.replace(tmp, self.path)
        self._remove_pieces()

    def _remove_pieces(self) -> None:
        for seq in segment_numbers(self.path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self.path}.tail-{seq}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path + ".state")


class LogStore:
    """The logs of one run, as the driver writes them.

    ``attempt_of(task_name)`` tells the attempt a line belongs to when a task's first
    line comes (``None``: not kept). A log that cannot be written is reported once to
    ``on_problem`` and the run goes on.
    """

    def __init__(
        self,
        project_dir: str,
        run_id: str,
        attempt_of: Callable[[str], int | None] | None = None,
        on_problem: Callable[[str], None] | None = None,
        limit: int | None = None,
    ) -> None:
        self.project_dir, self.run_id = project_dir, run_id
        self.limit = log_limit() if limit is None else limit
        self.attempt_of, self.on_problem = attempt_of, on_problem
        self.logs: collections.OrderedDict[str, tuple[int, TaskLog]] = collections.OrderedDict()
        self.failed: set[tuple[str, int]] = set()

    def open(self, task_name: str, attempt: int) -> None:
        """Start (or, for a re-attached task, continue) the log of a task attempt."""
        previous = self.logs.pop(task_name, None)
        if previous is not None:
            previous[1].close()
        with self._guard(task_name, attempt):
            self.logs[task_name] = (attempt, TaskLog(log_path(self.project_dir, self.run_id, task_name, attempt), self.limit))

    def write(self, task_name: str, line: str) -> None:
        entry = self.logs.get(task_name)
        if entry is None:
            attempt = self.attempt_of(task_name) if self.attempt_of is not None else None
            if attempt is None or (task_name, attempt) in self.failed:
                return
            self.open(task_name, attempt)
            if task_name not in self.logs:
                return
            entry = self.logs[task_name]
        attempt, log = entry
        try:
            log.write(line)
        except OSError as e:
            self._failed(task_name, attempt, e)
        if len(self.logs) > MAX_OPEN:
            self.logs.move_to_end(task_name)
            next(iter(self.logs.values()))[1].close()  # reopened by its next line

    def tee(self, on_log: Callable[[str, str], None]) -> Callable[[str, str], None]:
        """``on_log`` that keeps each line first."""

        def both(task_name: str, line: str) -> None:
            self.write(task_name, line)
            on_log(task_name, line)

        return both

    def finish(self, task_name: str, attempt: int) -> None:
        """The task attempt ended: its log becomes final."""
        current = self.logs.get(task_name)
        log = self.logs.pop(task_name)[1] if current is not None and current[0] == attempt else None
        with self._guard(task_name, attempt):
            (log or TaskLog(log_path(self.project_dir, self.run_id, task_name, attempt), self.limit)).finish()

    @contextlib.contextmanager
    def _guard(self, task_name: str, attempt: int) -> Iterator[None]:
        try:
            yield
        except OSError as e:
            self._failed(task_name, attempt, e)

    def _failed(self, task_name: str, attempt: int, error: OSError) -> None:
        self.logs.pop(task_name, None)
        if (task_name, attempt) not in self.failed:
            self.failed.add((task_name, attempt))
            if self.on_problem is not None:
                self.on_problem(f"cannot keep the log of {task_name} (attempt {attempt}) under {log_dir(self.project_dir, self.run_id)}: {error}")
