"""A training child process: its own process group, line-streamed output, clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

STOP_GRACE_SECONDS = 10.0


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
        )
        self.pgid = self.proc.pid  # session leader: its pid is the group id

    def lines(self) -> Iterator[str]:
        """The child's merged stdout/stderr, line by line, also appended to the log file."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._log.write(line)
            yield line

    def wait(self) -> int:
        code = self.proc.wait()
        self._reap_group(grace=STOP_GRACE_SECONDS)
        self._log.close()
        return code

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """TERM the whole group, KILL what is left after ``grace`` seconds, reap the child."""
        self._signal_group(signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.proc.wait()
        self._reap_group(grace=grace)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
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
