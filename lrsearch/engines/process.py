"""A training child process: its own process group, line-streamed output, clean stop.

A child is started either as a new process (``python -m lrsearch.engines.child.main``) or,
without TensorFlow's import, forked by a :class:`ForkServer` of the same runtime that has
imported it once (:mod:`lrsearch.engines.child.server`); each thread that runs trials one
after the other keeps one server (:func:`fork_server`).
"""

from __future__ import annotations

import array
import atexit
import contextlib
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from lrsearch.nifty import contract

STOP_GRACE_SECONDS = 10.0
SERVER_START_SECONDS = 300.0  # TensorFlow's import on a loaded node; then the child starts cold

logger = logging.getLogger(__name__)

_LIVE: set[ChildProcess] = set()
_LIVE_LOCK = threading.Lock()


def stop_all(grace: float = STOP_GRACE_SECONDS) -> None:
    """Stops every child this process started and has not reaped yet (Ctrl-C, SIGTERM)."""
    with _LIVE_LOCK:
        children = list(_LIVE)
    for child in children:
        child.stop(grace)


def _die_with_parent() -> None:
    """In the child, before exec: get SIGKILL when the worker dies (Linux ``PR_SET_PDEATHSIG``).

    A worker killed with SIGKILL cannot stop its child; without this, the orphan would keep
    training into the run directory that the trial's retry resumes from.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux/glibc: the heartbeat still re-queues the trial
        pass


class ChildProcess:
    """Runs ``command`` in a new session so that the child and anything it forks can be
    stopped together (TERM, then KILL after a grace period), leaving no process behind."""

    def __init__(self, command: Sequence[str], env: Mapping[str, str], cwd: Path, log_path: Path,
                 server: ForkServer | None = None, runs: Sequence[Sequence[str]] = ()):
        """``server`` (with the ``runs`` that ``command`` names): fork the child from it; if
        that server is gone, the child starts as a new process instead."""
        self.command = list(command)
        self.log_path = log_path
        self._log = open(log_path, "a", buffering=1)
        self.proc: subprocess.Popen | ServedProcess | None = None
        if server is not None:
            with contextlib.suppress(ServerGone):
                self.proc = server.spawn(runs, env, cwd)
        if self.proc is None:
            self.proc = subprocess.Popen(
                self.command,
                cwd=str(cwd),
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.served = isinstance(self.proc, ServedProcess)
        self.pgid = self.proc.pid  # its own group's leader: its pid is the group id
        self.stopped = False
        self._stop_lock = threading.Lock()
        with _LIVE_LOCK:
            _LIVE.add(self)

    def lines(self) -> Iterator[str]:
        """The child's merged stdout/stderr, line by line, also appended to the log file."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):  # log closed by a concurrent stop()
                self._log.write(line)
            yield line

    def wait(self) -> int:
        code = self.proc.wait()
        self._reap_group(grace=STOP_GRACE_SECONDS)
        self._forget()
        return code

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """TERM the whole group, KILL what is left after ``grace`` seconds, reap the child."""
        with self._stop_lock:  # a worker and the Ctrl-C handler may both stop it
            self.stopped = True
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait()
            self._reap_group(grace=grace)
            self._forget()

    def _forget(self) -> None:
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if not self._log.closed:
            self._log.close()

    def group_alive(self) -> bool:
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pgid, sig)
        except ProcessLookupError:
            pass

    def _reap_group(self, grace: float) -> None:
        """Grandchildren the child left (e.g. data-loading workers) go with it."""
        deadline = time.monotonic() + grace
        if self.group_alive():
            self._signal_group(signal.SIGTERM)
        while self.group_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.group_alive():
            self._signal_group(signal.SIGKILL)


class ServerGone(Exception):
    """The fork server died or did not answer."""


class ServedProcess:
    """What :class:`ChildProcess` needs of a ``Popen``, for a child forked by a server: its
    pid, its output, and its exit status, which the server reports (it is the parent)."""

    def __init__(self, pid: int, stdout, args: Sequence[str]):
        self.pid = pid
        self.stdout = stdout
        self.args = list(args)
        self.returncode: int | None = None
        self._exited = threading.Event()

    def exited(self, code: int) -> None:
        self.returncode = code
        self._exited.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._exited.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout)
        assert self.returncode is not None
        return self.returncode


class ForkServer:
    """A :mod:`lrsearch.engines.child.server` process of one interpreter and environment,
    serving one child at a time."""

    def __init__(self, python: str, env: Mapping[str, str]):
        self.python = python
        self.env = contract.server_environment(env)
        self.dead = False
        ours, theirs = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                contract.server_command(python, theirs.fileno()),
                env=self.env, pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=_die_with_parent,
            )
        finally:
            theirs.close()
        self.sock = ours
        self._replies = ours.makefile("r", encoding="ascii")
        self.sock.settimeout(SERVER_START_SECONDS)
        try:
            ready = self._replies.readline().strip()
        except OSError:  # timed out
            ready = ""
        except BaseException:  # Ctrl-C while it imports
            self.proc.kill()
            raise
        self.sock.settimeout(None)
        if ready != contract.READY:
            self.close()
            raise ServerGone(f"the fork server of {python} did not start (exit status "
                             f"{self.proc.poll()})")
        self._busy = threading.Lock()

    def matches(self, python: str, env: Mapping[str, str]) -> bool:
        return (not self.dead and self.proc.poll() is None and python == self.python
                and contract.server_environment(env) == self.env)

    def spawn(self, runs: Sequence[Sequence[str]], env: Mapping[str, str],
              cwd: Path) -> ServedProcess:
        """Forks a child running ``runs`` in ``cwd`` with ``env``; its output arrives on the
        returned process's ``stdout`` until it (and anything it started) has exited."""
        if not self._busy.acquire(blocking=False):
            raise ServerGone("the fork server is serving another child")
        reading, writing = os.pipe()
        try:
            request = contract.encode_request(runs, env, cwd)
            fds = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [writing]))]
            sent = self.sock.sendmsg([request], fds)
            self.sock.sendall(request[sent:])
            reply = self._replies.readline().split()
        except OSError as error:
            os.close(reading)
            self._lost()
            raise ServerGone(f"the fork server is gone ({error})") from None
        finally:
            os.close(writing)
        if len(reply) != 2 or reply[0] != contract.STARTED:
            os.close(reading)
            self._lost()
            raise ServerGone(f"the fork server answered {' '.join(reply)!r}")
        stdout = open(reading, encoding="utf-8", errors="replace", buffering=1)
        child = ServedProcess(int(reply[1]), stdout, contract.child_command(self.python, runs))
        threading.Thread(target=self._await_exit, args=(child,), daemon=True,
                         name=f"lrsearch-served-{child.pid}").start()
        return child

    def _await_exit(self, child: ServedProcess) -> None:
        try:
            reply = self._replies.readline().split()
        except (OSError, ValueError):
            reply = []
        if len(reply) == 2 and reply[0] == contract.EXITED:
            code = int(reply[1])
            self._busy.release()
        else:  # the server died: the child got SIGKILL with it (parent-death signal)
            code = -signal.SIGKILL
            self._lost()
        child.exited(code)

    def _lost(self) -> None:
        self.dead = True
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()

    def close(self) -> None:
        """Ends the server (its child, if any, dies with it)."""
        self.dead = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        try:
            self.proc.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        with _SERVERS_LOCK:
            _SERVERS.discard(self)


_SERVERS: set[ForkServer] = set()
_SERVERS_LOCK = threading.Lock()
_THREAD = threading.local()


def fork_server(python: str, env: Mapping[str, str]) -> ForkServer | None:
    """This thread's fork server for ``python`` and ``env``, started (or replaced) if needed;
    None when it cannot start (the child then starts as a new process and shows why)."""
    server: ForkServer | None = getattr(_THREAD, "server", None)
    if server is not None and server.matches(python, env):
        return server
    close_fork_server()
    try:
        server = ForkServer(python, env)
    except (OSError, ServerGone) as error:
        logger.warning("trials start as new processes, each importing TensorFlow: %s", error)
        return None
    with _SERVERS_LOCK:
        _SERVERS.add(server)
    _THREAD.server = server
    return server


def close_fork_server() -> None:
    """Ends this thread's fork server, if it has one."""
    server = getattr(_THREAD, "server", None)
    _THREAD.server = None
    if server is not None:
        server.close()


@atexit.register
def _close_all_servers() -> None:
    with _SERVERS_LOCK:
        servers = list(_SERVERS)
    for server in servers:
        server.close()
