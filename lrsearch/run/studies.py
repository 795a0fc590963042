"""Finding and opening stored studies for reading.
"""

from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lrsearch.errors import LRSearchError
from lrsearch.monitor.records import STATES, StudyAttr, TrialAttr, _state_name
from lrsearch.run.storage import open_storage
from lrsearch.search.baselines import CONFIG
from lrsearch.urls import redact

if TYPE_CHECKING:
    import optuna


class ResultError(LRSearchError):
    """A study, trial or result asked for is not in the storage."""


def open_existing_storage(url: str):
    """The storage at ``url``, refusing to create an empty SQLite file where none is."""
    from sqlalchemy.engine import make_url

    if url.startswith("sqlite"):
        try:
            database = make_url(url).database
        except Exception:  # noqa: BLE001 - open_storage words the error
            database = None
        if database and database != ":memory:" and not Path(database).is_file():
            raise ResultError(
                f"no study storage at {Path(database).resolve()}: run `lrsearch optimize` "
                "first, or pass --storage URL")
    import optuna

    with warnings.catch_warnings():
        # Reading a study needs none of the experimental features a worker's storage turns on.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return open_storage(url)


def load_study(storage_url: str, name: str | None = None) -> optuna.Study:
    """The study ``name`` (optional when the storage holds exactly one)."""
    import optuna

    storage = open_existing_storage(storage_url)
    names = sorted(s.study_name for s in storage.get_all_studies())
    where = redact(storage_url)
    if name is None:
        if not names:
            raise ResultError(f"{where} holds no study yet: run `lrsearch optimize` first")
        if len(names) > 1:
            raise ResultError(f"{where} holds {len(names)} studies ({', '.join(names)}): "
                              "choose one with --study NAME")
        name = names[0]
    elif name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ResultError(f"no study named {name!r} in {where}{hint}; studies: "
                          f"{', '.join(names) or 'none'}")
    return optuna.load_study(study_name=name, storage=storage)


@dataclass(frozen=True)
class StudyStatus:
    name: str
    counts: dict[str, int]  # trials by state (STATES)
    best: tuple[int, float] | None  # (trial number, objective)
    max_iter: int | None
    vs_config: float | None = None  # the best trial's final Dice minus the config baseline's


def storage_status(storage) -> list[StudyStatus]:
    """Every study of an Optuna storage with its trial counts by state (``lrsearch status``)."""
    statuses = []
    for study in sorted(storage.get_all_studies(), key=lambda s: s.study_name):
        counts = dict.fromkeys(STATES, 0)
        best = None
        final_dice, baseline = {}, None  # final Dice by trial number; the config baseline's
        maximize = study.direction.name == "MAXIMIZE" if len(study.directions) == 1 else True
        study_id = storage.get_study_id_from_name(study.study_name)
        for trial in storage.get_all_trials(study_id, deepcopy=False):
            counts[_state_name(trial.state)] += 1
            # a finalist repeat is a run of its original, not a candidate of its own
            if trial.state.name == "COMPLETE" and trial.values and len(trial.values) == 1 \
                    and TrialAttr.REPEAT_OF not in trial.user_attrs:
                final_dice[trial.number] = trial.user_attrs.get(TrialAttr.FINAL_DICE)
                if baseline is None and trial.user_attrs.get(TrialAttr.BASELINE) == CONFIG:
                    baseline = trial.number
                value = trial.values[0]
                if best is None or (value > best[1] if maximize else value < best[1]):
                    best = (trial.number, value)
        max_iter = study.user_attrs.get(StudyAttr.MAX_ITER)
        ends = (final_dice.get(best[0]), final_dice.get(baseline)) if best else (None, None)
        vs_config = ends[0] - ends[1] if None not in ends else None
        statuses.append(StudyStatus(study.study_name, counts, best,
                                    max_iter if isinstance(max_iter, int) else None, vs_config))
    return statuses
