"""Optuna storage: opening a URL with one clear error, riding out database restarts, and a study
lock for exact trial budgets across workers.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import logging
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from lrsearch.errors import StorageError
from lrsearch.monitor.records import TrialAttr
from lrsearch.urls import redact

DEFAULT_STORAGE = "sqlite:///lrsearch.db"

HEARTBEAT_SECONDS = 30  # a running trial's liveness beat


GRACE_FACTOR = 3  # a trial silent for GRACE_FACTOR beats is failed and retried

RECONNECT_BACKOFF = (1, 2, 4, 8, 15, 30, 30, 30, 30, 30, 60, 60, 60)  # ≈ 7 minutes in all


logger = logging.getLogger("lrsearch")

_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}


def fingerprint(url: str) -> str:
    """The database ``url`` names, written the same by every worker that reaches it.

    Without user, password or driver (``postgresql+psycopg://user:pw@db/lr`` and
    ``postgresql://db:5432/lr`` are one database), and a SQLite file as its absolute path (the
    same ``sqlite:///lrsearch.db`` from two working directories is two databases).
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return redact(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ":memory:"
        if database != ":memory:":
            database = str(Path(database).expanduser().resolve())
        return f"sqlite:///{database}"
    host = (parsed.host or "").lower()
    if parsed.port is not None and parsed.port != _DEFAULT_PORTS.get(backend):
        host += f":{parsed.port}"
    query = "&".join(f"{key}={value}" for key, value in sorted(parsed.query.items())
                     if key not in ("password", "user"))
    return f"{backend}://{host}/{parsed.database or ''}" + (f"?{query}" if query else "")


def _is_disconnect(error: BaseException) -> bool:
    """True for errors that mean 'the database is unreachable', not 'the request was wrong'."""
    import optuna
    import sqlalchemy.exc as sa

    if isinstance(error, optuna.exceptions.StorageInternalError):
        error = error.__cause__ or error
    if isinstance(error, (sa.OperationalError, sa.InterfaceError, sa.TimeoutError)):
        return True
    return isinstance(error, sa.DBAPIError) and bool(error.connection_invalidated)


def _reconnecting(url: str, call):
    """``call()``, retried with backoff and a log line while the database is unreachable."""
    for attempt, pause in enumerate((*RECONNECT_BACKOFF, None)):
        try:
            result = call()
        except Exception as error:  # noqa: BLE001 - re-raised unless a disconnect
            if pause is None or not _is_disconnect(error):
                raise
            reason = redact(str(error).splitlines()[0] if str(error) else repr(error))[:160]
            logger.warning("storage %s unreachable (%s); retrying in %s s (attempt %d)",
                           redact(url), reason, pause, attempt + 1)
            time.sleep(pause)
            continue
        if attempt:
            logger.warning("storage %s reachable again", redact(url))
        return result


def _retrying(method):
    """A storage method that rides out a database restart."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        return _reconnecting(self.url, lambda: method(self, *args, **kwargs))

    return call


def _resilient_storage_class():
    import optuna

    base = optuna.storages.RDBStorage
    names = [n for n in dir(base) if not n.startswith("__") and callable(getattr(base, n))
             and n not in ("remove_session", "_create_scoped_session")
             and (not n.startswith("_") or n == "_get_stale_trial_ids")]
    methods = {name: _retrying(getattr(base, name)) for name in names}
    return type("ResilientRDBStorage", (base,), methods)


@functools.cache
def _storage_class():
    return _resilient_storage_class()


def open_storage(url: str, *, heartbeat: float | None = HEARTBEAT_SECONDS, max_retry: int = 3,
                 pool_size: int = 2):
    """An Optuna RDB storage for ``url``; :class:`StorageError` if it cannot be opened.

    Every call rides out a database restart (reconnect with backoff, one log line per try).
    With ``heartbeat``, running trials beat every ``heartbeat`` seconds; one silent for
    ``GRACE_FACTOR`` beats (its worker was killed or its node lost) is failed and re-queued with
    the same parameters, its intermediate values kept. Opening creates Optuna's tables in a new
    database, but no study.
    """
    import optuna
    import sqlalchemy.exc

    if "://" not in url:
        raise StorageError(
            f"storage {url!r} is not a database URL; use e.g. sqlite:///lrsearch.db or "
            "postgresql+psycopg://user:password@host/db"
        )
    try:
        return _create(url, heartbeat, max_retry, pool_size)
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError,
            ImportError, ValueError, OSError) as error:
        missing = _missing_module(error)
        if missing is not None:
            install = _DRIVERS.get(missing.split(".")[0], f"pip install {missing}")
            raise StorageError(
                f"cannot open storage {redact(url)}: its database driver {missing!r} is not "
                f"installed; install it with {install}") from None
        cause = getattr(error, "orig", None) or error.__cause__ or error
        reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        raise StorageError(
            f"cannot open storage {redact(url)}: {redact(reason)} "
            "(check the URL, that the database server is up and the directory exists)"
        ) from None


# How to install the driver module a storage URL needs (pyproject's extras).
_DRIVERS = {
    "pymysql": "pip install -e '.[mysql]' (or pip install PyMySQL)",
    "psycopg": "pip install 'psycopg[binary]'",
    "psycopg2": "pip install 'psycopg[binary]' and use postgresql+psycopg:// URLs",
    "MySQLdb": "pip install mysqlclient, or pip install -e '.[mysql]' and use mysql+pymysql://",
}


def _missing_module(error: BaseException) -> str | None:
    """The module whose import failed somewhere in ``error``'s chain: Optuna turns SQLAlchemy's
    ModuleNotFoundError into a bare ImportError ("Failed to import DB access module")."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, ModuleNotFoundError) and error.name:
            return error.name
        error = error.__cause__ or error.__context__
    return None


def _create(url: str, heartbeat: float | None, max_retry: int, pool_size: int):
    import optuna
    import sqlalchemy.exc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        kwargs = {}
        if heartbeat:
            kwargs = dict(
                heartbeat_interval=int(heartbeat),
                grace_period=int(heartbeat * GRACE_FACTOR),
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=max_retry, inherit_intermediate_values=True),
            )
        for attempt in range(5):
            try:
                return _storage_class()(url, engine_kwargs=_engine_kwargs(url, pool_size),
                                        **kwargs)
            except sqlalchemy.exc.DBAPIError as error:
                # Workers started together on a new database race to create Optuna's tables;
                # the loser finds them made on the next try.
                if attempt == 4 or not _lost_creation_race(error):
                    raise
                time.sleep(0.5 + attempt)


# MySQL/MariaDB report the race as an OperationalError: 1050 table exists, 1061 duplicate
# index; SQLite as an OperationalError "table ... already exists".
_MYSQL_ALREADY_EXISTS = (1050, 1061)


def _lost_creation_race(error) -> bool:
    import sqlalchemy.exc

    if isinstance(error, (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError)):
        return True  # PostgreSQL: duplicate key in pg_type / relation already exists
    args = getattr(error.orig, "args", ())
    if args and args[0] in _MYSQL_ALREADY_EXISTS:
        return True
    return "already exists" in str(error.orig)  # SQLite: "table trials already exists"


def _engine_kwargs(url: str, pool_size: int) -> dict:
    if url.startswith("sqlite"):
        # Several processes on one SQLite file: wait for a lock instead of failing at once.
        return {"connect_args": {"timeout": 60}}
    # Bounded connections per worker; stale ones are tested before use.
    return {"pool_size": pool_size, "max_overflow": 2, "pool_pre_ping": True,
            "pool_recycle": 1800}


@contextlib.contextmanager
def study_lock(url: str, study_name: str) -> Iterator[None]:
    """Serialises "is the budget used up? then ask for a trial" across all workers of a study.

    PostgreSQL: a session advisory lock; MySQL: GET_LOCK; SQLite: an flock on a file next to the
    database (SQLite studies are shared through one file system). Other URLs: no lock.
    """
    key = int.from_bytes(hashlib.sha256(study_name.encode()).digest()[:8], "big", signed=True)
    if url.startswith("sqlite:///"):
        database = Path(url[len("sqlite:///"):])
        with open(database.with_name(database.name + ".lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    if not url.startswith(("postgresql", "mysql")):
        yield
        return
    engine = _lock_engine(url)
    postgres = url.startswith("postgresql")
    import sqlalchemy

    with _reconnecting(url, engine.connect) as connection:
        if postgres:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
        else:
            _mysql_get_lock(connection, str(key))
        try:
            yield
        finally:
            # A session that died with the server has released its lock already.
            with contextlib.suppress(Exception):
                if postgres:
                    connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"),
                                       {"k": key})
                else:
                    connection.execute(sqlalchemy.text("SELECT RELEASE_LOCK(:k)"),
                                       {"k": str(key)})


def _mysql_get_lock(connection, name: str) -> None:
    """GET_LOCK, waiting as long as it takes: 1 is the lock, 0 a timeout (try again). MariaDB
    answers a negative (MySQL: infinite) timeout with NULL and no lock, so wait in rounds."""
    import sqlalchemy

    while True:
        got = connection.execute(sqlalchemy.text("SELECT GET_LOCK(:k, 60)"), {"k": name}).scalar()
        if got == 1:
            return
        if got is None:
            raise RuntimeError(f"the database refused GET_LOCK({name!r}) for the study lock")


@functools.cache
def _lock_engine(url: str):
    import sqlalchemy

    return sqlalchemy.create_engine(url, pool_size=1, max_overflow=0, pool_pre_ping=True)


def fail_stale_trials(study, reason) -> list[int]:
    """Optuna's ``fail_stale_trials`` that first records why: ``reason(trial, silent_seconds)``
    becomes the trial's ``stop_reason`` (Optuna fails a stale trial without one). Returns the
    ids of the trials this call failed; their retries are queued by the storage's callback.
    """
    import optuna
    from optuna.trial import TrialState

    storage = study._storage
    if not (hasattr(storage, "record_heartbeat") and storage.get_heartbeat_interval()):
        return []
    stale = storage._get_stale_trial_ids(study._study_id)
    try:
        silence = _silence(storage, stale) if stale else {}
    except Exception:  # noqa: BLE001 - the reason then goes without the number
        silence = {}
    failed = []
    for trial_id in stale:
        try:
            # a finished trial's attributes are frozen: the reason goes in while it runs
            storage.set_trial_user_attr(trial_id, TrialAttr.STOP_REASON,
                                        reason(storage.get_trial(trial_id), silence.get(trial_id)))
            if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                failed.append(trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker failed it, or its own worker finished it after all
    callback = storage.get_heartbeat_stale_trial_callback()
    if callback is not None:
        for trial_id in failed:
            callback(study, storage.get_trial(trial_id))
    return failed


def _silence(storage, trial_ids) -> dict[int, float]:
    """Seconds since each trial's last heartbeat, by the database's clock (as Optuna judges)."""
    import sqlalchemy
    from optuna.storages._rdb import models

    beat = models.TrialHeartbeatModel
    rdb = getattr(storage, "_backend", storage)  # a study's storage is Optuna's cache over it
    with rdb.engine.connect() as connection:
        now = connection.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar()
        rows = connection.execute(sqlalchemy.select(beat.trial_id, beat.heartbeat)
                                  .where(beat.trial_id.in_(list(trial_ids)))).all()
    now = now.replace(tzinfo=None)
    return {trial_id: (now - at.replace(tzinfo=None)).total_seconds() for trial_id, at in rows}
