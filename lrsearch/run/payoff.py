"""Whole-volume Dice at every checkpoint of the ``config`` baseline and the best trial.

A trial's Dice is scored once, on its final model. To say how much sooner the best schedule
reaches what the user's config reaches in the whole budget, each checkpoint NiftyNet saved
(every ``save_every_n`` iterations) segments the validation subjects again (NiftyNet's
inference with ``inference_iter = N``) and is scored as trials are. That costs one inference
per checkpoint, so it runs once per study: when the study holds its budget (by the worker that
finishes it, under the study lock) or on demand (``lrsearch best --payoff``). A finished trial's
own attributes cannot be written any more, so each trial's curve is the study attribute
``checkpoint_dice.<n>``; the arithmetic is :mod:`lrsearch.search.payoff`'s. Once the finalists
have repeats, every run of the config and of the leader is segmented: the figures are then on
means.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import optuna

from lrsearch.engines.runtime import get_runtime
from lrsearch.errors import EngineError, LRSearchError
from lrsearch.monitor.records import (
    StudyAttr,
    StudyInfo,
    TrialAttr,
    checkpoint_dice_key,
    study_info,
    study_storage_url,
)
from lrsearch.nifty import contract
from lrsearch.nifty.config import load_config
from lrsearch.nifty.dataset import scan_data
from lrsearch.run.storage import study_lock
from lrsearch.run.trial import TrialContext, volume_scores
from lrsearch.search.payoff import Payoff, curve_to_json


def checkpoint_dice(ctx: TrialContext, trial: optuna.trial.FrozenTrial, iteration: int
                    ) -> float:
    """Mean whole-volume Dice of the validation subjects, segmented by the trial's checkpoint of
    ``iteration`` (NiftyNet's inference with inference_iter set; scored as trials are). The
    segmentations stay in the run folder, so a second call reads them back."""
    directory = Path(trial.user_attrs[TrialAttr.RUN_DIR])
    seg_dir = directory / contract.MODEL / f"{contract.SEGMENTATION}-{iteration}"
    inferred = seg_dir / contract.INFERRED_CSV
    if not inferred.is_file():
        config_path = directory / f"inference-{iteration}.ini"
        load_config(directory / contract.TRIAL_CONFIG).with_values({"INFERENCE": {
            "inference_iter": iteration, "save_seg_dir": str(seg_dir)}}).write(config_path)
        command = ctx.runtime.command([contract.inference_args(
            config_path, directory / contract.INFERENCE_SPLIT)])
        log_path = directory / f"inference-{iteration}.log"
        with open(log_path, "w") as log:
            done = subprocess.run(command, env=ctx.runtime.environment(), cwd=directory,
                                  stdout=log, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0 or not inferred.is_file():
            raise EngineError(f"NiftyNet inference with trial {trial.number}'s checkpoint of "
                              f"iteration {iteration} failed (exit status {done.returncode}); "
                              f"see {log_path}")
    scores = volume_scores(ctx, inferred)
    return statistics.mean(scores[s] for s in trial.user_attrs[TrialAttr.VOLUME_DICE])


def saved_checkpoints(trial: optuna.trial.FrozenTrial) -> tuple[Path, list[int]]:
    """The trial's checkpoint folder and the iterations NiftyNet saved a checkpoint at."""
    models = Path(trial.user_attrs[TrialAttr.RUN_DIR]) / contract.MODEL / "models"
    return models, sorted(int(p.name[len("model.ckpt-"):-len(".index")])
                          for p in models.glob("model.ckpt-*.index"))


def checkpoint_curve(ctx: TrialContext, trial: optuna.trial.FrozenTrial
                     ) -> list[tuple[int, float]]:
    """(iteration, whole-volume Dice) at every checkpoint the trial saved; the last is the
    trial's own final evaluation (not segmented again)."""
    models, saved = saved_checkpoints(trial)
    final = trial.user_attrs[TrialAttr.ITERATIONS]
    if final not in saved:
        raise LRSearchError(f"trial {trial.number}'s checkpoints are not in {models} (its run "
                            f"folder is on another machine, or was removed); run this where "
                            f"it is")
    return [(i, checkpoint_dice(ctx, trial, i)) for i in saved if i < final] + [
        (final, trial.user_attrs[TrialAttr.FINAL_DICE])]


def _measure(study: optuna.Study, ctx: TrialContext, number: int) -> None:
    """Segments trial ``number``'s checkpoints; stores their Dice and what it cost."""
    trial = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    started = time.monotonic()
    curve = dict(checkpoint_curve(ctx, trial))
    seconds = round(time.monotonic() - started, 1)
    study.set_user_attr(checkpoint_dice_key(number), {"dice": curve_to_json(curve),
                                                      "seconds": seconds})


def compute(study: optuna.Study, ctx: TrialContext | None = None,
            message: Callable[[str], None] | None = None) -> Payoff | None:
    """The payoff, segmenting what is not stored yet (the baseline's and the best trial's
    checkpoints); None when the study has no complete ``config`` baseline or best trial.
    Holds the study lock: the worker that finishes a study and ``best --payoff`` do not
    segment the same checkpoints twice."""
    with study_lock(study_storage_url(study), study.study_name):
        info = study_info(study)
        payoff, baseline = info.payoff(), info.config_baseline()
        if payoff is None or baseline is None:
            return None
        done = study.user_attrs.get(StudyAttr.PAYOFF)
        numbers = info.payoff_trials()
        wanted = {"baseline_trial": payoff.baseline_trial, "best_trial": payoff.best_trial,
                  "trials": numbers}
        missing = [n for n in numbers if n not in info.checkpoint_dice]
        if not missing and isinstance(done, dict) and \
                {k: done.get(k) for k in wanted} == wanted:
            return payoff
        if missing:
            ctx = ctx or context_of(study)
            if message is not None:
                message(f"Segmenting the validation subjects with every checkpoint of "
                        f"{_names(info, missing, payoff)} to time the speed-up vs your config "
                        f"...")
            for number in missing:
                _measure(study, ctx, number)
        study.set_user_attr(StudyAttr.PAYOFF, wanted)
        return study_info(study).payoff()


def _names(info: StudyInfo, numbers: list[int], payoff: Payoff) -> str:
    """"trial 0 (your config) and trial 7 (the best)", or with runs: "..., trial 12 (a run of
    trial 7)"."""
    repeat_of = {t.number: t.repeat_of for t in info.trials}

    def name(n: int) -> str:
        original = repeat_of.get(n) if repeat_of.get(n) is not None else n
        role = "your config" if original == payoff.baseline_trial else "the best"
        return f"trial {n} ({role}{f', a run of trial {original}' if original != n else ''})"

    names = [name(n) for n in numbers]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def after_study(study: optuna.Study, ctx: TrialContext, message: Callable[[str], None]
                ) -> Payoff | None:
    """At the end of ``lrsearch optimize``: the payoff of a study that holds its budget, and
    the line in the best trial's dashboard note. Never fails the study: a problem is one
    message line."""
    from lrsearch.monitor.live import rewrite_note

    try:
        payoff = compute(study, ctx, message)
    except (LRSearchError, OSError) as error:  # e.g. a run folder on another node
        message(f"warning: speed-up vs your config not measured: {error}")
        return None
    if payoff is not None:
        best = next(t for t in study.get_trials(deepcopy=False) if t.number == payoff.best_trial)
        rewrite_note(optuna.trial.Trial(study, best._trial_id), payoff.line())
        message(payoff.line())
    return payoff


def context_of(study: optuna.Study) -> TrialContext:
    """What segmenting a finished study's checkpoints needs, from what the study stored: the
    config and data of its first complete trial (its trial.ini) and the runtime it trained in."""
    attrs = study.user_attrs
    trial = next((t for t in study.get_trials(deepcopy=False)
                  if t.state == optuna.trial.TrialState.COMPLETE
                  and TrialAttr.RUN_DIR in t.user_attrs),
                 None)
    if trial is None:
        raise LRSearchError(f"study '{study.study_name}' has no complete trial to read its "
                            f"config from")
    config_path = Path(trial.user_attrs[TrialAttr.RUN_DIR]) / contract.TRIAL_CONFIG
    if not config_path.is_file():
        raise LRSearchError(f"{config_path} is missing: trial {trial.number}'s run folder is "
                            f"on another machine or was removed; run this where it is")
    cfg = load_config(config_path)
    versions = trial.user_attrs.get(TrialAttr.RUNTIME) or {}
    runtime = get_runtime(versions.get("runtime", "tf2"), build=False)
    return TrialContext(config=cfg, dataset=scan_data(cfg, read_data=False),
                        split_file=Path(attrs[StudyAttr.SPLIT_FILE]),
                        validation_subjects=tuple(attrs[StudyAttr.VALIDATION_SUBJECTS]),
                        runs_dir=Path(attrs[StudyAttr.RUNS_DIR]),
                        max_iter=int(attrs[StudyAttr.MAX_ITER]),
                        runtime=runtime)

