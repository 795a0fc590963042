"""A real 3-trial study: NiftyNet 0.6.0 on TensorFlow 2 trains every trial on tiny demo data.

Nothing is mocked: the trials are NiftyNet child processes, the study is a SQLite file, the
Dice comes from NiftyNet's own inference on NIfTI files. The study's first trial is pinned to
a good learning rate and the second to a hopeless one so that the median pruner (startup 1
trial, in studies/tiny.toml) has something to prune.
"""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest

from lrsearch import cli
from lrsearch.nifty.console import parse_line
from lrsearch.search.schedules import from_dict
from tests.tiny import TINY_SPACE, niftynet_processes, tiny_config

MAX_ITER = 30
VALIDATE_EVERY = 5

pytestmark = pytest.mark.slow


def test_three_trial_study_on_niftynet(tmp_path, capsys):
    config = tiny_config(tmp_path, validate_every=VALIDATE_EVERY)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="e2e", storage=storage, direction="maximize")
    study.enqueue_trial({"family": "constant", "base_lr": 3e-3, "optimiser": "adam"})
    study.enqueue_trial({"family": "constant", "base_lr": 1e-6, "optimiser": "adam"})

    code = cli.main([
        "optimize", "-c", str(config), "--space", str(TINY_SPACE),
        "--storage", storage, "--study", "e2e", "--trials", "3", "--seed", "1",
        "--max-iter", str(MAX_ITER),
        "--jobs", "1",  # trial 1 can only be pruned once trial 0 has completed
        "--baselines", "none",  # every trial sampled or pinned (tests/test_baselines.py)
    ])
    captured = capsys.readouterr()
    assert code == 0, captured.err

    trials = optuna.load_study(study_name="e2e", storage=storage).get_trials()
    assert len(trials) == 3
    states = [t.state for t in trials]
    assert all(s in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
               for s in states), [(t.number, t.state, t.user_attrs.get("stop_reason"))
                                  for t in trials]
    assert states[0] == optuna.trial.TrialState.COMPLETE
    assert states[1] == optuna.trial.TrialState.PRUNED, trials[1].intermediate_values

    for trial in trials:
        steps = sorted(trial.intermediate_values)
        assert steps, trial.number
        # reported at NiftyNet's validation iterations, and only there
        assert all(step % VALIDATE_EVERY == 0 and 0 < step <= MAX_ITER for step in steps)
        assert steps == list(range(VALIDATE_EVERY, steps[-1] + 1, VALIDATE_EVERY))
        assert all(0.0 <= v <= 1.0 for v in trial.intermediate_values.values())
        assert trial.user_attrs["family"] == trial.params["family"]
        assert trial.user_attrs["iterations"] >= steps[-1]
        _assert_log_followed_schedule(trial)
    for trial in trials:
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert 0.0 <= trial.value <= 1.0
            assert trial.user_attrs["iterations"] == MAX_ITER
            assert set(trial.user_attrs["volume_dice"]) == \
                set(optuna.load_study(study_name="e2e", storage=storage)
                    .user_attrs["validation_subjects"])
            assert 0.0 <= trial.user_attrs["last_window_dice"] <= 1.0
    pruned = trials[1]
    assert "pruned at iteration" in pruned.user_attrs["stop_reason"]
    assert pruned.user_attrs["iterations"] < MAX_ITER
    # the pruned child and anything it started are gone
    assert niftynet_processes(str(tmp_path)) == []
    assert "Trial 1 pruned." in captured.err


def _assert_log_followed_schedule(trial) -> None:
    """Every training iteration in NiftyNet's own log used the schedule's rate."""
    schedule = from_dict(trial.user_attrs["schedule"])
    log = Path(trial.user_attrs["run_dir"]) / "model" / "training_niftynet_log"
    events = [e for e in map(parse_line, log.read_text().splitlines())
              if e is not None and e.phase == "training"]
    # a pruned child may finish the iteration it was in while being stopped
    assert [e.iteration for e in events][:trial.user_attrs["iterations"]] == \
        list(range(1, trial.user_attrs["iterations"] + 1))
    for event in events:
        expected = schedule.lr(event.iteration - 1)
        assert math.isclose(event.values["lr"], expected, rel_tol=1e-6), event
