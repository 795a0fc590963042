"""Validation windows fixed per study: the same windows in every round of every trial.

The windows are read from what the NiftyNet child fed its network: the location tensors of
each validation batch, logged by the child to ``validation_windows.csv`` in the trial folder.
The studies are real: NiftyNet children on tiny demo data (tests/tiny.py), SQLite storage,
on the TF 2 runtime and, in one test, on stock TF 1.15.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from lrsearch import cli
from lrsearch.monitor.records import StudyAttr, TrialAttr
from lrsearch.nifty.contract import SEED_RANGE, VALIDATION_WINDOWS, read_validation_windows
from lrsearch.run.storage import open_storage
from lrsearch.run.study import validation_seed
from tests.tiny import TINY_SPACE, tiny_config

VALIDATE_EVERY = 2
WINDOWS_PER_ROUND = 2  # the tiny config's validation_max_iter (2) x batch_size (1)


def _optimize(workdir: Path, study: str, seed: int, trials: int, max_iter: int,
              *extra: str) -> list[optuna.trial.FrozenTrial]:
    storage = f"sqlite:///{workdir / 'studies.db'}"
    code = cli.main([
        "optimize", "-c", str(workdir / "tiny.ini"), "--space", str(TINY_SPACE),
        "--storage", storage, "--study", study, "--trials", str(trials), "--seed", str(seed),
        "--max-iter", str(max_iter), "--jobs", str(trials), "--baselines", "none", *extra])
    assert code == 0
    return optuna.load_study(study_name=study, storage=storage).get_trials()


def _rounds(trial: optuna.trial.FrozenTrial) -> list[tuple[int, list[tuple]]]:
    return read_validation_windows(Path(trial.user_attrs[TrialAttr.RUN_DIR]) / VALIDATION_WINDOWS)


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """Study "a": 2 trials of 6 iterations (3 validation rounds each), --seed 1; study "b":
    1 trial of 2 iterations, --seed 2. Shared by the tests of this module."""
    workdir = tmp_path_factory.mktemp("validation")
    tiny_config(workdir, validate_every=VALIDATE_EVERY)
    return workdir, {"a": _optimize(workdir, "a", 1, 2, 6), "b": _optimize(workdir, "b", 2, 1, 2)}


@pytest.mark.slow
def test_every_round_of_every_trial_sees_the_same_windows(studies):
    _, runs = studies
    first, second = runs["a"]
    windows = None
    for trial in (first, second):
        rounds = _rounds(trial)
        reported = sorted(trial.intermediate_values)
        # one logged round per reported round, each fed the config's validation budget
        assert [iteration for iteration, _ in rounds] == reported
        assert len(reported) >= 1 and trial.intermediate_values
        windows = windows or rounds[0][1]
        for _, fed in rounds:
            assert fed == windows
    assert len(windows) == WINDOWS_PER_ROUND
    assert len(_rounds(first)) == 6 // VALIDATE_EVERY  # several rounds compared


@pytest.mark.slow
def test_another_seed_other_windows_and_the_seed_is_stored(studies):
    workdir, runs = studies
    storage = f"sqlite:///{workdir / 'studies.db'}"
    seeds = {name: optuna.load_study(study_name=name, storage=storage)
             .user_attrs[StudyAttr.VALIDATION_SEED] for name in runs}
    assert seeds["a"] != seeds["b"]
    assert _rounds(runs["a"][0])[0][1] != _rounds(runs["b"][0])[0][1]
    # the windows lie inside the 24³ volumes, each a whole 16³ window
    for subject, *corners in _rounds(runs["b"][0])[0][1]:
        assert subject and all(0 <= c <= 24 for c in corners)
        assert [b - a for a, b in zip(corners[:3], corners[3:], strict=True)] == [16, 16, 16]


def test_validation_seed_is_stored_once_derived_from_the_study_seed(tmp_path):
    """No NiftyNet here: what the study stores, and what a resumed study keeps."""
    url = f"sqlite:///{tmp_path / 'seed.db'}"
    storage = open_storage(url)

    def seed_of(name: str, seed: int | None) -> int:
        study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True)
        value = validation_seed(study, url, seed)
        assert study.user_attrs[StudyAttr.VALIDATION_SEED] == value
        return value

    a = seed_of("a", 7)
    assert 0 <= a < SEED_RANGE
    assert seed_of("a", 8) == a  # resumed with another --seed: the stored seed stays
    assert seed_of("b", 7) == a  # the same --seed in a new study: the same windows
    assert seed_of("c", 9) != a
    assert seed_of("d", None) != seed_of("e", None)  # no --seed: random


@pytest.mark.slow
def test_tf1_runtime_feeds_the_same_windows(studies):
    """Stock TF 1.15 under Python 3.7: the same --seed (so the same validation seed) and data
    give the windows the TF 2 study fed, in every round."""
    workdir, runs = studies
    (trial,) = _optimize(workdir, "tf1", 1, 1, 4, "--runtime", "tf1")
    assert trial.state == optuna.trial.TrialState.COMPLETE, trial.user_attrs.get("stop_reason")
    rounds = _rounds(trial)
    assert [iteration for iteration, _ in rounds] == [2, 4]
    assert all(fed == _rounds(runs["a"][0])[0][1] for _, fed in rounds)
