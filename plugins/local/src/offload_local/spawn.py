"""Starting a task's wrapper, and reaping it.

The wrapper is a shell, started with ``posix_spawn`` in a new session (so its own process
group), its standard streams on ``/dev/null`` and the signals Python ignores (SIGPIPE) back
to their defaults, as ``subprocess`` does. ``posix_spawn`` costs the driver less than
``subprocess.Popen`` (no error pipe, the environment converted in C), which matters when a
task is a few milliseconds of work. Unlike ``Popen`` it does not close every descriptor
in the child: descriptors Python opens are never inherited (PEP 446), and those the driver
itself inherited, open when the backend starts, are closed in each wrapper; a descriptor
an embedder marks inheritable later reaches its tasks.
"""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Callable, Mapping, Sequence

#: The wrapper: writes its pid, sends all output to the log, records the exit code with
#: one write when it exits (builtins only: an external ``mv`` would cost a fork and an exec
#: per task; readers take the code once its line is complete), then enters the working
#: directory. A script for this same shell (``sh -c SCRIPT`` or ``sh FILE``, which is what
#: ``sh>`` runs) runs inline in the wrapper, so a task costs no more processes than running
#: it directly; an EXIT trap records its code, and should the script replace that trap, the
#: driver records the code from ``waitpid`` (it is the wrapper's parent). Any other command
#: runs as the wrapper's child.
WRAPPER = (
    '__offload_code=$2; printf "%s" $$ >"$3"; __offload_mode=$4; exec >>"$1" 2>&1; '
    'trap \'printf "%s\\n" $? >"$__offload_code"\' EXIT; '
    'cd -P "$5" || exit; shift 5; '
    "case $__offload_mode in "
    'c) __offload_script=$1; shift; [ $# -gt 0 ] && shift; unset __offload_mode; eval "$__offload_script" ;; '
    'f) __offload_file=$1; shift; unset __offload_mode; . "$__offload_file" ;; '
    '*) "$@" ;; '
    "esac"
)


#: Signals Python ignores that a task must get back as default (``Popen``'s ``restore_signals``).
RESTORED = tuple(getattr(signal, name) for name in ("SIGPIPE", "SIGXFZ", "SIGXFSZ") if hasattr(signal, name))


def exit_code(status: int) -> int:
    """A ``waitpid`` status as a shell reports it: the code, or 128 + the signal's number."""
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


class Spawner:
    """Starts wrappers for one shell and reaps them; remembers how each one ended."""

    def __init__(self, shell: str) -> None:
        self.shell = shell
        self._shell_real = os.path.realpath(shell)
        self._real: dict[str, str] = {}
        self._null: int | None = None
        self._inherited = _inherited_descriptors()
        #: pid of each running wrapper this process started
        self.children: set[int] = set()

    def mode(self, argv: Sequence[str]) -> tuple[str, list[str]]:
        """How the wrapper runs ``argv``: inline when it is a script for the wrapper's own shell."""
        if argv and self._realpath(argv[0]) == self._shell_real:
            if len(argv) >= 3 and argv[1] == "-c":
                return "c", list(argv[2:])
            if len(argv) >= 2 and not argv[1].startswith("-"):
                script = argv[1] if "/" in argv[1] else f"./{argv[1]}"  # `.` would search $PATH
                return "f", [script, *argv[2:]]
        return "x", list(argv)

    def _realpath(self, program: str) -> str:
        found = self._real.get(program)
        if found is None:
            found = self._real[program] = os.path.realpath(program)
        return found

    def spawn(self, argv: Sequence[str], env: Mapping[str, str], on_out_of_fds: Callable[[], None]) -> int:
        """Start ``argv`` (the wrapper's) detached; out of descriptors, ``on_out_of_fds`` and once more."""
        for attempt in (1, 2):
            try:
                null = self._devnull()
                actions: list[tuple[int, ...]] = [(os.POSIX_SPAWN_DUP2, null, fd) for fd in (0, 1, 2)]
                actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in self._inherited]
                pid = os.posix_spawn(self.shell, list(argv), env, file_actions=actions, setsid=True, setsigdef=RESTORED)
            except OSError as e:
                if attempt == 1 and e.errno in (errno.EMFILE, errno.ENFILE):
                    on_out_of_fds()
                    continue
                raise
            self.children.add(pid)
            return pid
        raise AssertionError("unreachable")

    def _devnull(self) -> int:
        if self._null is None:
            self._null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        return self._null

    def reap(self, pid: int) -> tuple[bool, int | None]:
        """Whether child ``pid`` still runs and, once it has ended, its exit code (``None``: unknown)."""
        try:
            found, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere (a SIGCHLD handler of the embedder)
            self.children.discard(pid)
            return False, None
        if found == 0:
            return True, None
        self.children.discard(pid)
        return False, exit_code(status)

    def close(self) -> None:
        """Reap what has ended and forget the rest (they run on, detached)."""
        for pid in list(self.children):
            self.reap(pid)
        self.children.clear()
        if self._null is not None:
            os.close(self._null)
            self._null = None


def _inherited_descriptors() -> tuple[int, ...]:
    """Descriptors above 2 that a child would inherit now (Linux; none found without ``/proc``)."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return ()
    found = []
    for name in names:
        fd = int(name)
        if fd <= 2:
            continue
        try:
            if os.get_inheritable(fd):
                found.append(fd)
        except OSError:
            continue  # the descriptor of the listing itself, closed by now
    return tuple(sorted(found))
