"""The objectives' arithmetic, their parsing, and a study refusing to change objective."""

from __future__ import annotations

import math

import optuna
import pytest

from lrsearch.errors import ConfigError, SpaceError
from lrsearch.run import study as run_study
from lrsearch.run.plan import StudyOptions
from lrsearch.search.objectives import dice_auc, parse_objective
from lrsearch.search.space import parse_space
from tests.tiny import TINY_SPACE, tiny_config

ROUNDS = [(10, 0.5), (20, 0.8), (30, 0.9), (40, 0.9)]


def test_final_dice_is_the_whole_volume_dice():
    assert parse_objective("final_dice").score(0.93, ROUNDS, 40) == 0.93


def test_dice_auc_is_the_trapezoid_from_zero_normalised():
    # (0,0)-(10,.5): 2.5; (10,.5)-(20,.8): 6.5; (20,.8)-(30,.9): 8.5; (30,.9)-(40,.9): 9
    expected = (2.5 + 6.5 + 8.5 + 9.0) / 40
    assert math.isclose(parse_objective("dice_auc").score(None, ROUNDS, 40), expected)
    # rounds in any order; the last value is held to max_iter
    assert math.isclose(dice_auc([(10, 1.0)], 20), (5 + 10) / 20)
    assert parse_objective("dice_auc").score(None, list(reversed(ROUNDS)), 40) == \
        pytest.approx(expected)


def test_dice_auc_rewards_learning_fast():
    fast = [(10, 0.9), (20, 0.9), (30, 0.9), (40, 0.9)]
    slow = [(10, 0.1), (20, 0.3), (30, 0.6), (40, 0.95)]
    auc = parse_objective("dice_auc")
    assert auc.score(None, fast, 40) > auc.score(None, slow, 40)
    assert 0.0 <= auc.score(None, slow, 40) <= auc.score(None, [(i, 1.0) for i in (10, 40)], 40)
    assert auc.score(None, [], 40) == 0.0


def test_iters_to_ranks_reached_before_unreached_and_fewer_iterations_first():
    objective = parse_objective("iters_to:0.85")
    early = objective.score(None, ROUNDS, 40)  # 0.9 at iteration 30
    assert early == pytest.approx(2 - 30 / 40)
    at_end = objective.score(None, [(40, 0.86)], 40)
    assert at_end == pytest.approx(1.0)
    missed = objective.score(None, [(10, 0.5), (20, 0.84), (40, 0.7)], 40)
    assert missed == pytest.approx(0.84)  # best Dice
    assert early > at_end > missed
    assert objective.iterations_to_target(ROUNDS) == 30
    assert objective.iterations_to_target([(10, 0.1)]) is None
    assert parse_objective("dice_auc").iterations_to_target(ROUNDS) is None


@pytest.mark.parametrize("text", ["iters_to:", "iters_to:1.5", "iters_to:0", "iters_to:x",
                                  "final-dice", ""])
def test_bad_objectives_are_refused_with_the_rule(text):
    with pytest.raises(ValueError, match="objective|iters_to"):
        parse_objective(text)


def test_space_accepts_objectives_and_names_the_key_on_error():
    doc = {"study": {"families": ["constant"], "base_lr": [1e-4, 1e-2],
                     "objective": "iters_to:0.90"}}
    assert parse_space(doc).objective == "iters_to:0.9"
    doc["study"]["objective"] = "dice_aux"
    with pytest.raises(SpaceError, match=r"\[study\].*'dice_auc'"):
        parse_space(doc, "s.toml")


def test_a_study_keeps_its_objective(tmp_path):
    config = tiny_config(tmp_path, subjects=5)
    storage = f"sqlite:///{tmp_path / 'o.db'}"

    def plan(objective):
        options = StudyOptions(config, TINY_SPACE, study_name="o", storage_url=storage, trials=1,
                               objective=objective)
        return run_study.prepare(options)

    study = run_study.load_or_create(plan("dice_auc"))
    assert study.user_attrs["objective"] == "dice_auc"
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    with pytest.raises(ConfigError, match="optimises dice_auc.*--objective dice_auc"):
        run_study.load_or_create(plan(None))  # the space says final_dice
    assert run_study.load_or_create(plan("dice_auc")).user_attrs["objective"] == "dice_auc"
    with pytest.raises(ConfigError, match="--objective"):
        plan("iters_to:2")
