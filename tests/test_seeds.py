"""Seeded trials: each trial trains with a stored seed, a retry keeps it, and the NiftyNet
child started with a seed trains the same first iteration again.

The training runs are real NiftyNet children on tiny demo data (tests/tiny.py), on the TF 2
runtime and (marked slow) on stock TF 1.15, two children at a time; storages are real SQLite.
"""

from __future__ import annotations

import functools

import optuna
import pytest

from lrsearch.engines.child.seeding import parse_seed
from lrsearch.nifty.console import parse_line
from lrsearch.nifty.contract import SEED_RANGE
from lrsearch.run import workers
from lrsearch.run.storage import open_storage
from lrsearch.run.trial import training_seed
from tests.tiny import selected_params, side_by_side, tiny_config

State = optuna.trial.TrialState


def _study(tmp_path, name: str) -> optuna.Study:
    storage = open_storage(f"sqlite:///{tmp_path / 'seeds.db'}", heartbeat=1)
    return optuna.create_study(storage=storage, study_name=name)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # ask/tell, as lrsearch's workers
def test_seed_is_stored_derived_from_the_study_seed_and_kept_by_a_retry(tmp_path):
    study = _study(tmp_path, "a")
    first, second = study.ask(), study.ask()
    seed = training_seed(first, 5)
    assert first.user_attrs["seed"] == seed and 0 <= seed < SEED_RANGE
    assert training_seed(first, 5) == seed  # asked again: the stored one
    assert training_seed(second, 5) != seed  # another trial, another run

    # the same --seed in a new study: the same seeds trial by trial; none: random ones
    again = _study(tmp_path, "b").ask()
    assert training_seed(again, 5) == seed
    assert training_seed(_study(tmp_path, "c").ask(), None) != \
        training_seed(_study(tmp_path, "d").ask(), None)

    # a stopped trial's retry (another number) trains on with its original's seed
    workers._requeue(study, first, "worker stopped")
    retry = study.ask()
    assert retry.number not in (first.number, second.number)
    assert retry.user_attrs["seed"] == seed
    assert training_seed(retry, 5) == seed


def test_child_refuses_a_malformed_seed_in_one_line():
    assert parse_seed(None) is None and parse_seed("") is None and parse_seed("42") == 42
    for bad in ("seven", "-1", str(SEED_RANGE)):
        with pytest.raises(SystemExit, match=rf"LRSEARCH_SEED must be an integer in "
                                             rf"\[0, {SEED_RANGE}\), but got '{bad}'"):
            parse_seed(bad)


def _first_loss(trial: optuna.trial.FrozenTrial) -> float:
    assert trial.state == State.COMPLETE, trial.user_attrs.get("stop_reason")
    with open(trial.user_attrs["log_path"], encoding="utf-8") as log:
        for line in log:
            event = parse_line(line)
            if event is not None and event.phase == "training" and event.iteration == 1:
                return event.values["loss"]
    raise AssertionError(f"no first training iteration in {trial.user_attrs['log_path']}")


RUNS = (("a", 3), ("again", 3), ("other", 4))  # (run folder, seed): two alike, one not


@pytest.fixture(scope="module")
def seeded_runs(request, tmp_path_factory
                ) -> dict[tuple[str, str], optuna.trial.FrozenTrial | BaseException]:
    """The three runs of each selected runtime, each its own child, two children at a time
    (tests/tiny.py): ``(runtime, run) -> FrozenTrial`` (or the exception it raised)."""
    from lrsearch.engines.runtime import get_runtime
    from lrsearch.selfcheck import single_trial

    calls = {}
    for params in selected_params(request, "test_same_seed_same_first_loss_another_seed_another"):
        runtime = params["runtime"]
        root = tmp_path_factory.mktemp(f"seeds-{runtime}")
        config = tiny_config(root, validate_every=2)
        engine = get_runtime(runtime)
        for name, seed in RUNS:
            calls[runtime, name] = functools.partial(single_trial, config, engine, root / name,
                                                     max_iter=2, seed=seed)
    return side_by_side(calls)


@pytest.mark.parametrize("runtime", ["tf2", pytest.param("tf1", marks=pytest.mark.slow)])
def test_same_seed_same_first_loss_another_seed_another(runtime, seeded_runs):
    """NiftyNet's initial weights are fixed (its initialisers' op seed 42) but its windows come
    from numpy's unseeded generator, from two sampler threads here (the demo's num_threads):
    without the seed the first losses of two runs differ."""
    runs = {name: seeded_runs[runtime, name] for name, _ in RUNS}
    for run in runs.values():
        if isinstance(run, BaseException):
            raise run
    assert [t.user_attrs["seed"] for t in runs.values()] == [3, 3, 4]
    a, again, other = (_first_loss(t) for t in runs.values())
    assert a == again
    assert a != other
    # the validation round draws from a sampler of its own, seeded as well
    assert runs["a"].intermediate_values == runs["again"].intermediate_values
