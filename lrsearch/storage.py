"""Optuna storage URLs: opening them with one clear error, and never printing a password."""

from __future__ import annotations

import re

from lrsearch.errors import StorageError

DEFAULT_STORAGE = "sqlite:///lrsearch.db"

_PASSWORD = re.compile(
    r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@]*:)(?P<password>[^@]*)(?P<tail>@)", re.I
)


def redact(url: str) -> str:
    """The URL with any password replaced by ``***`` (for logs, progress and reports)."""
    return _PASSWORD.sub(r"\g<head>***\g<tail>", url)


def open_storage(url: str):
    """An Optuna RDB storage for ``url``; :class:`StorageError` if it cannot be opened.

    Opening creates Optuna's tables if the database is new, but no study.
    """
    import optuna
    import sqlalchemy.exc

    if "://" not in url:
        raise StorageError(
            f"storage {url!r} is not a database URL; use e.g. sqlite:///lrsearch.db or "
            "postgresql+psycopg://user:password@host/db"
        )
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url))
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError, OSError) as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise StorageError(
            f"cannot open storage {redact(url)}: {redact(reason)} "
            "(check the URL, that the database server is up and the directory exists)"
        ) from None


def _engine_kwargs(url: str) -> dict:
    if url.startswith("sqlite"):
        # Several processes on one SQLite file: wait for a lock instead of failing at once.
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True}
