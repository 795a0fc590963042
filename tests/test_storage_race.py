"""Workers started together on a new database race to create Optuna's tables: the loser's
error must be recognised (and the opening retried), any other error must not."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from lrsearch.run.storage import _lost_creation_race


def error_of(engine, *statements) -> sa.exc.DBAPIError:
    with pytest.raises(sa.exc.DBAPIError) as info:
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(sa.text(statement))
    return info.value


def test_sqlite_table_already_exists_is_the_creation_race(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'race.db'}")
    create = "CREATE TABLE trials (trial_id INTEGER PRIMARY KEY)"
    with engine.begin() as connection:
        connection.execute(sa.text(create))
    assert _lost_creation_race(error_of(engine, create))  # what the slower worker gets
    assert not _lost_creation_race(error_of(engine, "SELECT * FROM no_such_table"))
