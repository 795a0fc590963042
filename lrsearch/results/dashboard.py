"""optuna-dashboard on 127.0.0.1 for a storage, with the folders its trials' figures are in.

The dashboard is optuna-dashboard's own WSGI application (``optuna_dashboard.wsgi``) served by
the standard library with a thread per request, as the ``optuna-dashboard`` command serves it,
so plain ``optuna-dashboard URL --artifact-dir DIR`` shows the same pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from lrsearch.errors import LRSearchError
from lrsearch.monitor.live import artifact_dir, artifact_store
from lrsearch.monitor.records import StudyAttr
from lrsearch.run.studies import open_existing_storage

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

__all__ = ["HOST", "Dashboard", "artifact_dirs", "start"]

HOST = "127.0.0.1"


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's name
        pass


def artifact_dirs(storage_url: str, storage: BaseStorage) -> list[Path]:
    """The folders the studies of ``storage`` keep trial figures in (see ``artifact_dir``)."""
    folders = []
    for study in storage.get_all_studies():
        runs_dir = study.user_attrs.get(StudyAttr.RUNS_DIR)
        try:
            folders.append(artifact_dir(storage_url, runs_dir))
        except ValueError:
            continue  # a study lrsearch did not make: no figures of ours
    if not folders and storage_url.startswith("sqlite"):
        folders.append(artifact_dir(storage_url, None))
    return list(dict.fromkeys(folders))


@dataclass
class Dashboard:
    server: _Server
    folders: list[Path]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server.server_port}/dashboard/"

    def serve(self) -> None:
        """Serves until interrupted (Ctrl-C)."""
        try:
            self.server.serve_forever()
        finally:
            self.server.server_close()


def start(storage_url: str, port: int = 8080, artifact_folder: str | Path | None = None,
          quiet: bool = True) -> Dashboard:
    """Binds the dashboard to ``HOST:port`` (0: a free port); :meth:`Dashboard.serve` runs it."""
    from optuna_dashboard import wsgi

    storage = open_existing_storage(storage_url)
    folders = [Path(artifact_folder).resolve()] if artifact_folder else \
        artifact_dirs(storage_url, storage)
    app = wsgi(storage, artifact_store=artifact_store(folders) if folders else None)
    try:
        server = make_server(HOST, port, app, server_class=_Server,
                             handler_class=_QuietHandler if quiet else WSGIRequestHandler)
    except OSError as error:
        raise LRSearchError(f"cannot listen on {HOST}:{port}: {error.strerror}; choose another "
                            "port with --port (0 picks a free one)") from None
    return Dashboard(server, folders)
