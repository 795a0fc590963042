"""The keys lrsearch stores as Optuna user attributes: permanent, and named in one module."""

from __future__ import annotations

import ast
from pathlib import Path

from lrsearch.monitor.records import StudyAttr, TrialAttr

PACKAGE = Path(__file__).resolve().parents[1] / "lrsearch"
OWNER = PACKAGE / "monitor" / "records.py"
SETTERS = {"set_user_attr", "set_trial_user_attr", "set_study_user_attr",
           "set_trial_system_attr", "set_study_system_attr"}


def _keys(namespace: type) -> dict[str, str]:
    return {name: value for name, value in vars(namespace).items() if name.isupper()}


def test_stored_keys_are_the_ones_existing_studies_hold():
    assert _keys(TrialAttr) == {
        "FAMILY": "family", "SCHEDULE": "schedule", "SCHEDULE_TEXT": "schedule_text",
        "OPTIMISER": "optimiser", "MAX_ITER": "max_iter", "LR_CURVE": "lr_curve",
        "LR_USED": "lr_used", "RUN_DIR": "run_dir", "LOG_PATH": "log_path",
        "COMMAND": "command", "HOST": "host", "RUNTIME": "runtime", "ITERATIONS": "iterations",
        "WALL_SECONDS": "wall_seconds", "TIMING": "timing",
        "ITERATIONS_PER_SECOND": "iterations_per_second", "STOP_REASON": "stop_reason",
        "FINAL_DICE": "final_dice", "VOLUME_DICE": "volume_dice",
        "LAST_WINDOW_DICE": "last_window_dice",
        "RESUMED_FROM_ITERATION": "resumed_from_iteration", "RETRY_OF": "retry_of",
        "ITERATIONS_TO_TARGET": "iterations_to_target",
        "CHECKPOINT_ARTIFACT": "checkpoint_artifact", "CHECKPOINT_PENDING": "checkpoint_pending",
        "SEED": "seed", "BASELINE": "baseline",
        "REPEAT_OF": "repeat_of", "REPEAT_ROUND": "repeat_round", "FORKED": "forked",
        "HELD_AT": "held_at", "CONTINUES": "continues",
    }
    assert _keys(StudyAttr) == {
        "CONFIG": "config", "MAX_ITER": "max_iter", "SPLIT_FILE": "split_file",
        "RUNS_DIR": "runs_dir", "OBJECTIVE": "objective",
        "VALIDATION_SUBJECTS": "validation_subjects", "LR_FIND": "lr_find",
        "CHECKPOINT_STORE": "checkpoint_store", "UID": "study_uid", "BASELINES": "baselines",
        "PAYOFF": "payoff", "CHECKPOINT_DICE_PREFIX": "checkpoint_dice.",
        "VALIDATION_SEED": "validation_seed",
        "REPEAT_SEEDS": "repeat_seeds",
    }


def _is_attrs(node: ast.expr) -> bool:
    """``x.user_attrs``, ``x.system_attrs``, ``storage.get_*_user_attrs(...)`` or ``attrs``."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr.endswith(("user_attrs", "system_attrs"))
    return isinstance(node, ast.Name) and node.id == "attrs"


def _literal_keys(path: Path) -> list[str]:
    """Places in ``path`` that name an attribute key by a string literal."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        key = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in SETTERS:
                key = next((a for a in node.args if isinstance(a, ast.Constant)
                            and isinstance(a.value, str)), None)
            elif node.func.attr == "get" and _is_attrs(node.func.value) and node.args:
                key = node.args[0]
        elif isinstance(node, ast.Subscript) and _is_attrs(node.value):
            key = node.slice
        elif isinstance(node, ast.Compare) and any(_is_attrs(c) for c in node.comparators):
            key = node.left
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {key.value!r}")
    return found


def test_attribute_keys_are_named_only_in_the_records_module():
    offending = [hit for path in sorted(PACKAGE.rglob("*.py")) if path != OWNER
                 for hit in _literal_keys(path)]
    assert offending == [], "name these keys in lrsearch/monitor/records.py:\n" + \
        "\n".join(offending)


def test_a_lost_trial_reports_the_last_iteration_any_record_tells():
    """A worker killed after a validation round at 15 but before its heartbeat stored 15: the
    note's "failed after N iterations" and the stop reason name the same, last known one."""
    import optuna

    from lrsearch.monitor.records import last_iteration, trial_info
    from lrsearch.run.workers import _lost_reason

    trial = optuna.trial.create_trial(
        state=optuna.trial.TrialState.FAIL, intermediate_values={5: 0.2, 10: 0.3, 15: 0.4},
        user_attrs={TrialAttr.ITERATIONS: 14,
                    TrialAttr.CHECKPOINT_ARTIFACT: {"artifact_id": "a", "iteration": 10}})
    assert last_iteration(trial) == 15
    assert trial_info(trial).iterations == 15
    assert _lost_reason(trial, 7.2) == "worker lost at iteration 15, no heartbeat for 7 s"
    resumed = optuna.trial.create_trial(
        state=optuna.trial.TrialState.FAIL, user_attrs={TrialAttr.RESUMED_FROM_ITERATION: 20})
    assert last_iteration(resumed) == trial_info(resumed).iterations == 20
    assert last_iteration(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL)) == 0
