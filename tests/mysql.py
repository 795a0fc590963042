"""A private MariaDB (MySQL) server on 127.0.0.1 for tests (real server, real SQL).

Debian's MariaDB binaries (installed by tests/install-deps.sh) run as the ``mysql`` user on a
free port, with the data directory and socket in a temporary folder; the driver is PyMySQL.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.postgres import free_port


class MariaDBServer:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="lrsearch-mariadb-"))
        self.data = self.root / "data"
        self.socket = self.root / "mysqld.sock"
        self.port = free_port()
        self.url = f"mysql+pymysql://lrsearch:pw-not-needed@127.0.0.1:{self.port}/lrsearch"
        self._user = "mysql" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        self._proc: subprocess.Popen | None = None

    def init(self) -> MariaDBServer:
        if shutil.which("mariadbd", path="/usr/sbin:/usr/bin") is None:
            raise RuntimeError("MariaDB's mariadbd not found: run tests/install-deps.sh")
        if os.geteuid() == 0:
            user = pwd.getpwnam("mysql")
            os.chown(self.root, user.pw_uid, user.pw_gid)
        subprocess.run(["mariadb-install-db", f"--datadir={self.data}", f"--user={self._user}",
                        "--auth-root-authentication-method=socket", "--skip-test-db"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.start()
        self.sql("CREATE DATABASE lrsearch; "
                 "CREATE USER 'lrsearch'@'127.0.0.1' IDENTIFIED BY 'pw-not-needed'; "
                 "GRANT ALL ON lrsearch.* TO 'lrsearch'@'127.0.0.1';")
        return self

    def sql(self, statements: str) -> None:
        subprocess.run(["mariadb", f"--socket={self.socket}", "-uroot", "-e", statements],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> None:
        self._proc = subprocess.Popen(
            ["/usr/sbin/mariadbd", "--no-defaults", f"--datadir={self.data}",
             f"--socket={self.socket}", f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--user={self._user}", f"--pid-file={self.root / 'mysqld.pid'}",
             f"--log-error={self.root / 'server.log'}", "--max-connections=200"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    log = (self.root / "server.log")
                    raise RuntimeError("MariaDB did not start: " + (
                        log.read_text()[-2000:] if log.exists() else "no log")) from None
                time.sleep(0.2)

    def destroy(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        shutil.rmtree(self.root, ignore_errors=True)
