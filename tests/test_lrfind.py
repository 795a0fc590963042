"""The LR range test: its schedule and loss analysis, then one real run on tiny NiftyNet data."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import optuna
import pytest

from lrsearch import cli
from lrsearch.search import range_test as range_maths
from lrsearch.search.objectives import dice_auc
from lrsearch.search.range_test import LossTracker, RangeTest, suggest
from lrsearch.search.schedules import LRRange, from_dict
from tests.tiny import TINY_SPACE, tiny_config


def test_range_schedule_grows_exponentially_and_round_trips():
    schedule = LRRange(1e-6, 1.0, 7)
    lrs = [schedule.lr(i) for i in range(9)]
    assert lrs[0] == pytest.approx(1e-6)
    assert lrs[6] == pytest.approx(1.0) and lrs[8] == pytest.approx(1.0)  # held at max
    ratios = [b / a for a, b in zip(lrs[:6], lrs[1:7], strict=True)]
    assert ratios == pytest.approx([10.0] * 6)  # equal steps in log lr
    assert from_dict(json.loads(json.dumps(schedule.to_dict()))) == schedule
    with pytest.raises(ValueError, match="max_lr must be greater than min_lr"):
        LRRange(1e-3, 1e-3, 10)
    with pytest.raises(ValueError, match="num_iters must be an integer >= 2"):
        LRRange(1e-6, 1.0, 1)


def test_smoothing_is_bias_corrected():
    tracker = LossTracker(0.9)
    assert tracker.add(2.0) == pytest.approx(2.0)  # no pull toward the zero start
    second = tracker.add(1.0)
    assert second == pytest.approx((0.9 * 0.1 * 2.0 + 0.1 * 1.0) / (1 - 0.81))
    assert LossTracker(0.5).diverged(LossTracker(0.5).add(math.nan))


def feed(losses):
    """Raw values (no smoothing); whether each one counts as diverged."""
    tracker = LossTracker(0.0)
    return [tracker.diverged(tracker.add(loss)) for loss in losses]


def test_divergence_at_four_times_the_minimum():
    # a small fall (0.10 -> 0.08 is 20 %, under MIN_FALL): only the 4x rule applies
    assert feed([0.10, 0.09, 0.08, 0.3, 0.33]) == [False, False, False, False, True]


def test_divergence_of_a_bounded_loss_that_gives_back_half_its_fall():
    # Dice-like: 0.62 plateau, down to 0.3, back above 0.3 + 0.5 * 0.32 = 0.46
    assert feed([0.6, 0.62, 0.5, 0.3, 0.45, 0.47]) == [False] * 5 + [True]
    # noise on the plateau is no fall: rising again there is not divergence
    assert feed([0.44, 0.40, 0.43, 0.44]) == [False] * 4


def test_steepest_descent_ignores_the_noisy_start():
    lrs = [1e-7 * 10 ** (7 * k / 99) for k in range(100)]
    # a plateau at 0.44 with a sharp dip on the 3rd point (the EMA resting on 2 losses), then
    # the real descent from index 50 (lr ~3e-4) to the minimum at index 90
    loss = [0.44] * 100
    loss[2] = 0.30
    for k in range(50, 100):
        loss[k] = 0.44 - 0.3 * min(k - 50, 40) / 40 + (0.005 * (k - 90) if k > 90 else 0)
    steepest, stable = suggest(lrs, loss)
    assert lrs[50] <= steepest <= lrs[90]
    assert stable == lrs[90]


def test_suggestions_steepest_descent_and_last_stable():
    lrs = [10 ** (k / 2 - 6) for k in range(10)]  # 1e-6 … ~3e-2
    loss = [1.0, 0.99, 0.97, 0.9, 0.6, 0.45, 0.4, 0.38, 0.5, 0.9]
    steepest, stable = suggest(lrs, loss)
    assert steepest == lrs[4]  # the biggest drop per decade: 0.9 → 0.6 → 0.45 around it
    assert stable == lrs[7]  # the minimum
    flat = suggest(lrs[:3], [1.0, 1.0, 1.0])
    assert flat == (lrs[0], lrs[0])
    test = RangeTest(1e-6, 1.0, 10, 0.98, (), "x", steepest_lr=1e-3, last_stable_lr=1e-3)
    assert test.bounds == (1e-4, 1e-3)  # degenerate: the decade below


@pytest.mark.slow
def test_lr_find_on_niftynet(tmp_path, capsys):
    config = tiny_config(tmp_path, subjects=4)
    out = tmp_path / "lrfind"
    code = cli.main(["lr-find", "-c", str(config), "--min-lr", "1e-5", "--max-lr", "10",
                     "--iterations", "25", "--smoothing", "0.9", "-o", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = RangeTest.from_dict(json.loads((out / "lr_find.json").read_text()))
    schedule = LRRange(1e-5, 10.0, 25)
    iterations = [p[0] for p in result.points]
    assert iterations == list(range(1, len(iterations) + 1))
    for iteration, lr, _, _ in result.points:  # NiftyNet trained with the ramp
        assert math.isclose(lr, schedule.lr(iteration - 1), rel_tol=1e-5)
    smoothed = [p[3] for p in result.points]
    if result.stopped.startswith("diverged"):
        assert len(iterations) <= 25
        last = smoothed[-1]
        assert math.isnan(last) or last > 4 * min(s for s in smoothed if s == s)
        assert not any(s > 4 * min(smoothed[:i + 1]) for i, s in enumerate(smoothed[:-1]))
    else:
        assert len(iterations) == 25
    assert 1e-5 <= result.steepest_lr <= result.last_stable_lr <= 10
    assert f"{result.steepest_lr:.3g}" in captured.out
    assert (out / "lr_find.html").stat().st_size > 100_000  # plotly inlined
    png = out / "lr_find.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" or \
        "no PNG" in captured.out


@pytest.mark.slow
def test_optimize_with_auto_lr_bounds_and_dice_auc(tmp_path, monkeypatch, capsys):

    monkeypatch.setattr(range_maths, "ITERATIONS", 15)  # a short range test for the test
    config = tiny_config(tmp_path, subjects=4, validate_every=5)
    storage = f"sqlite:///{tmp_path / 'auto.db'}"
    argv = ["optimize", "-c", str(config), "--space", str(TINY_SPACE), "--storage", storage,
            "--study", "auto", "--trials", "1", "--max-iter", "10", "--jobs", "1",
            "--objective", "dice_auc", "--lr-bounds", "auto", "--baselines", "none"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    study = optuna.load_study(study_name="auto", storage=storage)
    stored = RangeTest.from_dict(study.user_attrs["lr_find"])
    assert len(stored.points) <= 15 and study.user_attrs["objective"] == "dice_auc"
    low, high = stored.bounds
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.COMPLETE, trial.user_attrs.get("stop_reason")
    assert low <= trial.params["base_lr"] <= high
    assert trial.distributions["base_lr"].low == pytest.approx(low)
    rounds = sorted(trial.intermediate_values.items())
    assert [i for i, _ in rounds] == [5, 10]
    assert trial.value == pytest.approx(dice_auc(rounds, 10))
    assert trial.value != pytest.approx(trial.user_attrs["final_dice"])

    # continuing the study reuses the stored range test instead of running another
    log = tmp_path / "models" / "auto" / "lr-find" / "console.log"
    before = log.stat().st_mtime_ns
    assert cli.main(argv) == 0
    assert log.stat().st_mtime_ns == before
    assert optuna.load_study(study_name="auto", storage=storage).user_attrs["lr_find"] == \
        study.user_attrs["lr_find"]
    captured = capsys.readouterr()
    assert captured.err.count("Running the LR range test") + \
        captured.out.count("Running the LR range test") == 1
    assert "suggested base_lr range" in captured.err + captured.out
    assert cli.main(["report", "--storage", storage, "--study", "auto",
                     "-o", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text()
    assert 'id="lr-find"' in page and f"{stored.steepest_lr:.3g}" in page
    assert "best: trial 0, dice_auc" in page


# ``lrsearch optimize`` in a worker process whose range test is short, as the test above makes
# it in this one: 15 iterations instead of range_test.ITERATIONS
_SHORT_RANGE_TEST = ("import sys; from lrsearch.search import range_test; "
                     "range_test.ITERATIONS = 15; from lrsearch import cli; "
                     "sys.exit(cli.main(sys.argv[1:]))")


@pytest.mark.slow
def test_concurrent_workers_share_one_range_test_and_later_workers_keep_its_bounds(tmp_path):
    """Two worker processes start one --lr-bounds auto study at once: one runs the range test
    (under the study lock), the other waits and uses it; a worker continuing the study without
    the flag keeps searching within the stored bounds."""
    config = tiny_config(tmp_path, subjects=4, validate_every=5)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"

    def worker(trials: int, *extra: str) -> subprocess.Popen:
        command = [sys.executable, "-c", _SHORT_RANGE_TEST, "optimize", "-c", str(config),
                   "--space", str(TINY_SPACE), "--storage", storage, "--study", "shared",
                   "--trials", str(trials), "--max-iter", "5", "--jobs", "1",
                   "--baselines", "none", *extra]
        return subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    workers = [worker(2, "--lr-bounds", "auto") for _ in range(2)]
    outputs = [w.communicate(timeout=900)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    assert sum("Running the LR range test" in out for out in outputs) == 1, outputs
    study = optuna.load_study(study_name="shared", storage=storage)
    stored = RangeTest.from_dict(study.user_attrs["lr_find"])
    assert stored.iterations == 15
    low, high = stored.bounds
    summary = stored.summary()
    assert all(summary in out for out in outputs), outputs

    later = worker(3)
    out = later.communicate(timeout=900)[0]
    assert later.returncode == 0, out
    assert summary in out and "Running the LR range test" not in out
    trials = optuna.load_study(study_name="shared", storage=storage).trials
    assert len(trials) == 3
    for trial in trials:
        assert low <= trial.params["base_lr"] <= high
        assert trial.distributions["base_lr"].low == pytest.approx(low)
