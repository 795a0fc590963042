"""A training child process: its own process group, line-streamed output, clean stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

STOP_GRACE_SECONDS = 10.0

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

    def __init__(self, command: Sequence[str], env: Mapping[str, str], cwd: Path, log_path: Path):
        self.command = list(command)
        self.log_path = log_path
        self._log = open(log_path, "a", buffering=1)
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
        self.pgid = self.proc.pid  # session leader: its pid is the group id
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
