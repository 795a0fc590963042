"""Finalist repeats: the study's top schedules and its baselines trained again on fresh seeds.

One run is one draw (the verdict's arithmetic: :mod:`lrsearch.search.repeats`). When a study
holds its budget (``lrsearch optimize``) or on demand (``lrsearch confirm``), the top
``finalists`` complete searched trials (by the study's objective) and every complete baseline
are queued again for each repeat round 1..``repeats``, as ordinary trials of the study:
parameters of the original, attributes ``repeat_of`` (its number), ``repeat_round`` and
``seed``, the round's seed, the same for every trial of a round (runs pair by seed). They run
through the same workers and slots, so they resume after a kill and spread over workers;
queueing is under the study lock and skips every (trial, round) the study already holds, so a
second ``confirm`` or a re-run of ``optimize`` repeats nothing twice.
"""

from __future__ import annotations

import statistics

import optuna
from optuna.trial import TrialState

from lrsearch.monitor.progress import Progress
from lrsearch.monitor.records import StudyAttr, TrialAttr
from lrsearch.nifty.contract import derive_seed
from lrsearch.run.plan import StudyPlan
from lrsearch.run.storage import study_lock
from lrsearch.run.workers import Workers, is_repeat, repeats_running
from lrsearch.search.baselines import label as baseline_label


def round_seeds(stored: list[int], rounds: int, study_seed: int | None,
                taken: set[int]) -> list[int]:
    """The training seed of each repeat round 1..``rounds``: the stored ones, then new ones
    (derived from the study's ``--seed`` if given, else random) that no trial trained with."""
    seeds = list(stored)
    while len(seeds) < rounds:
        attempt = 0
        while True:
            seed = derive_seed(study_seed, "repeat", len(seeds) + 1, attempt)
            if seed not in taken and seed not in seeds:
                break
            attempt += 1
        seeds.append(seed)
    return seeds


def finalists(study: optuna.Study, k: int) -> list[optuna.trial.FrozenTrial]:
    """The top ``k`` complete searched trials by the objective, then every complete baseline
    (originals only: no repeat is a finalist)."""
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if not is_repeat(t) and t.value is not None]
    searched = sorted((t for t in complete if TrialAttr.BASELINE not in t.user_attrs),
                      key=lambda t: (-t.value, t.number))[:k]
    return searched + [t for t in complete if TrialAttr.BASELINE in t.user_attrs]


def enqueue_repeats(study: optuna.Study, plan: StudyPlan, k: int, rounds: int
                    ) -> list[tuple[int, int]]:
    """Queues the (trial, round) repeats the study does not hold yet, round by round; the
    pairs queued. A repeat that failed is not queued again (its retry, if re-queued, is it)."""
    if rounds < 1:
        return []
    with study_lock(plan.storage_url, plan.name):
        trials = study.get_trials(deepcopy=False)
        held = {(t.user_attrs[TrialAttr.REPEAT_OF], t.user_attrs.get(TrialAttr.REPEAT_ROUND))
                for t in trials if is_repeat(t)}
        stored = list(study.user_attrs.get(StudyAttr.REPEAT_SEEDS, ()))
        taken = {t.user_attrs.get(TrialAttr.SEED) for t in trials}
        seeds = round_seeds(stored, rounds, plan.context.seed, taken)
        if seeds != stored:
            study.set_user_attr(StudyAttr.REPEAT_SEEDS, seeds)
        queued = []
        chosen = finalists(study, k)
        for round_ in range(1, rounds + 1):
            for original in chosen:
                if (original.number, round_) in held:
                    continue
                attrs = {TrialAttr.REPEAT_OF: original.number, TrialAttr.REPEAT_ROUND: round_,
                         TrialAttr.SEED: seeds[round_ - 1]}
                if TrialAttr.BASELINE in original.user_attrs:
                    attrs[TrialAttr.BASELINE] = original.user_attrs[TrialAttr.BASELINE]
                study.enqueue_trial(original.params, user_attrs=attrs)
                queued.append((original.number, round_))
    return queued


def cost_line(study: optuna.Study, max_iter: int, slots: int) -> str | None:
    """What the waiting repeats cost: runs × iterations, and seconds from the mean wall time
    of the complete original trials; None when nothing waits."""
    trials = study.get_trials(deepcopy=False)
    waiting = [t for t in trials if is_repeat(t) and t.state == TrialState.WAITING]
    if not waiting:
        return None
    originals = {t.user_attrs[TrialAttr.REPEAT_OF] for t in waiting}
    names = ", ".join(_name(t) for t in trials if t.number in originals)
    walls = [t.user_attrs[TrialAttr.WALL_SECONDS] for t in trials
             if t.state == TrialState.COMPLETE and not is_repeat(t)
             and isinstance(t.user_attrs.get(TrialAttr.WALL_SECONDS), (int, float))]
    text = (f"Repeating the finalists on fresh seeds ({names}): {len(waiting)} runs × "
            f"{max_iter:,} iterations = {len(waiting) * max_iter:,} iterations")
    if walls:
        seconds = len(waiting) * statistics.fmean(walls)
        text += (f", about {seconds:,.0f} s of training (mean {statistics.fmean(walls):,.0f} s "
                 f"per complete trial; {seconds / max(1, slots):,.0f} s on {slots} "
                 f"slot{'s' * (slots != 1)})")
    return text + "."


def _name(trial: optuna.trial.FrozenTrial) -> str:
    name = trial.user_attrs.get(TrialAttr.BASELINE)
    return f"trial {trial.number}" + (f" ({baseline_label(name)})" if name else "")


def run_repeats(study: optuna.Study, plan: StudyPlan, progress: Progress,
                started: float | None = None) -> list[tuple[int, int]]:
    """Queues the plan's repeats, says what they cost, and runs every waiting repeat (also
    those an interrupted run left); the (trial, round) pairs queued now. ``started``: when
    ``optimize`` began, so that ``--timeout`` covers the search and its repeats together.

    A repeat still running (in another worker, or in one that was killed) is waited for: if
    its worker is gone, its heartbeat stops, it is failed and re-queued, and this worker
    resumes it."""
    queued = enqueue_repeats(study, plan, plan.finalists, plan.repeats)
    line = cost_line(study, plan.context.max_iter, len(plan.slots))
    running = repeats_running(study)
    if line is not None:
        progress.message(line)
    elif not running:
        progress.message(f"No repeats to run: the top {plan.finalists} searched trials and the "
                         f"baselines have their {plan.repeats} repeat rounds (or none "
                         f"completed); raise --repeats for more.")
    if line is not None or running:
        Workers(study, plan, progress, sample=False, started=started).run()
    return queued
