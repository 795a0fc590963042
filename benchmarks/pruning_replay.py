"""Would pruning on averaged validation Dice do better? Replays search_efficiency's unpruned arm.

Reads the random-search, no-pruning arm (b) of a ``benchmarks/search_efficiency.py`` work
folder, where every trial ran to the end (``--run N`` first runs or continues that arm alone to
N trials per ``--seeds`` seed), and prints:

- the per-trial cost by phase (imports, set-up, evaluation, training: medians);
- how well the signal ranks trials at 5, 10, 25, 50 and 75 % of the iterations (``--rungs``):
  Spearman's (with a 95 % bootstrap interval over trials) and Kendall's rank correlations
  between the raw validation Dice, or the mean of its last k rounds (``--window``), and the
  trial's final whole-volume Dice;
- for each pruner (``--arms``, ``kind[@warmup_fraction][:top_k][/hold_until][+peak]``, built
  by lrsearch's own make_pruner; top_k_rung only: ``/10`` holds trials at the rung till 10 have
  reached it and continues those then in the top-k, each re-run costed again; ``+peak`` judges
  a trial still warming up at the rung once it has warmed up), replaying the trials in their
  order, one search per study or per block of a study (``--blocks 4``: 60 trials become 4
  searches of 15): the share of the iterations and of
  the compute-seconds it would have spent (each trial's measured fixed cost, its training up to
  the stop, its evaluation only if it reached the end) and its best final Dice against the
  unpruned best; and the floor under any pruner: an oracle that stops all but the best trial at
  the first rung. ``--imports S`` costs every trial but each search's first as forked from a
  fork server (its imports S seconds, as benchmarks/fixed_cost.py measures), arms and
  reference alike: the same trials under today's fixed cost.

``--whole-volume`` also segments every trial's checkpoints of ``--checkpoints`` (default 50,
100 and 150 of 200: search_efficiency's trials save every 50) and correlates their whole-volume
Dice the same way; an arm ending in ``+wv`` (``top_k_rung@0.25:2+wv``, ``asha+wv``) judges on
it at its rungs, each whole-volume validation costed as the trial's measured evaluation, and a
trial that goes on past one as paying its set-up again (training resumes from the checkpoint).

As in a study, a baseline is never asked and no trial is judged at its last iteration. Studies
run on NiftyNet's random validation windows (no study attribute ``validation_seed``) give the
"before"; ``--seeds 0 --first 10`` on two folders run with the same seed compares the same
schedules (a seeded trial repeats itself).

    python benchmarks/pruning_replay.py --work DIR --task tissue --run 60 --blocks 4 \
        [--window 1 3] [--arms asha top_k_rung@0.05:2 curve] [--sigmas 1] [--startup-trials 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna

from lrsearch.monitor.records import HOLD_KEYS, StudyAttr, TrialAttr
from lrsearch.paths import DEFAULT_SPACE
from lrsearch.run.workers import enqueue_continuations
from lrsearch.search.space import OWN_KIND_WARMUP, PRUNERS, SearchSpace, load_space
from lrsearch.search.strategy import is_held, make_pruner


def _ranks(values: list[float]) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    return ranks


def spearman(x: list[float], y: list[float]) -> float:
    return float(np.corrcoef(_ranks(x), _ranks(y))[0, 1])


def spearman_interval(x: list[float], y: list[float], draws: int = 2000) -> tuple[float, float]:
    """95 % bootstrap interval of Spearman's correlation, resampling trials (seeded)."""
    rng = np.random.default_rng(0)
    xs, ys, values = np.asarray(x), np.asarray(y), []
    for _ in range(draws):
        pick = rng.integers(0, len(xs), len(xs))
        if len(set(pick)) > 2:
            values.append(spearman(list(xs[pick]), list(ys[pick])))
    low, high = np.nanpercentile(values, [2.5, 97.5])
    return float(low), float(high)


def kendall(x: list[float], y: list[float]) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(x, y).statistic)


def averaged(trial: optuna.trial.FrozenTrial, window: int) -> list[tuple[int, float]]:
    """(iteration, mean of the last ``window`` validation Dice values) along the trial."""
    items = sorted(trial.intermediate_values.items())
    return [(step, statistics.mean(v for _, v in items[max(0, i - window + 1):i + 1]))
            for i, (step, _) in enumerate(items)]


def replay(trials: list[optuna.trial.FrozenTrial], window: int, max_iter: int,
           pruner: optuna.pruners.BasePruner | None = None,
           signal: Callable[[optuna.trial.FrozenTrial], list[tuple[int, float]]] | None = None
           ) -> tuple[list[tuple[optuna.trial.FrozenTrial, int]], float]:
    """The runs ``pruner`` (default: successive halving, rungs at 25 % and 75 %) would have
    made, judging the trials in their order on the mean of their last ``window`` validations,
    as (trial, iterations run) in order, and the best final Dice kept. A trial top_k_rung
    holds (``hold_until``) and then continues runs twice: to the rung, then its re-run to the
    end (a seeded trial repeats itself, so the re-run is the same trial). ``signal``: what
    each trial reports instead, as (iteration, value)."""
    if signal is None:
        def signal(frozen: optuna.trial.FrozenTrial) -> list[tuple[int, float]]:
            return averaged(frozen, window)
    if pruner is None:
        pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, max_iter // 4),
                                                        reduction_factor=3)
    # a fixed name: Hyperband puts a trial in a bracket by the study's name and its number
    study = optuna.create_study(study_name="replay", direction="maximize", pruner=pruner)
    by_number: dict[int, optuna.trial.FrozenTrial] = {}  # replay's trial → the stored one
    runs, best = [], float("-inf")
    for k, frozen in enumerate(trials):
        study.enqueue_trial(frozen.params)  # the pruner may read a trial's schedule
        trial = study.ask(frozen.distributions)
        by_number[trial.number] = frozen
        trial.set_user_attr(TrialAttr.SEED, trial.number)
        judged = not frozen.user_attrs.get(TrialAttr.BASELINE)
        for step, value in signal(frozen):
            trial.report(value, step)
            if judged and step < max_iter and trial.should_prune():
                if is_held(study, study._storage.get_trial(trial._trial_id)):
                    trial.set_user_attr(TrialAttr.HELD_AT, step)
                runs.append((frozen, step))
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            runs.append((frozen, max_iter))
            study.tell(trial, frozen.value)
            best = max(best, frozen.value)
        # as a worker does before its next trial: continue the held trials now in the top-k
        for number in enqueue_continuations(study, final=k == len(trials) - 1):
            held = by_number[number]
            continuation = study.ask()
            for step, value in signal(held):
                continuation.report(value, step)
            runs.append((held, max_iter))
            study.tell(continuation, held.value)
            best = max(best, held.value)
    return runs, best


def wall(trial: optuna.trial.FrozenTrial) -> float:
    """The trial's measured compute-seconds: its start to its finish in storage."""
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


def phases(trial: optuna.trial.FrozenTrial) -> dict[str, float]:
    """The trial's measured seconds by phase (imports, setup, training, evaluation) and
    "around the child": the rest of its wall time, lrsearch's own work."""
    timing = trial.user_attrs.get(TrialAttr.TIMING, {})
    parts = {k: timing.get(k, 0.0) for k in ("imports", "setup", "training", "evaluation")}
    parts["around the child"] = max(0.0, wall(trial) - sum(parts.values()))
    return parts


def cost(trial: optuna.trial.FrozenTrial, stop: int, max_iter: int,
         imports: float | None = None) -> float:
    """Compute-seconds ``trial`` would have taken, stopped at iteration ``stop``: its measured
    fixed costs (imports, set-up, lrsearch's own work around the child), the share of its
    measured training time (validation rounds included), and its evaluation only if it reached
    the end (a pruned trial is not segmented). ``imports``: these seconds instead of its
    measured imports."""
    p = phases(trial)
    seconds = p["around the child"] + (p["imports"] if imports is None else imports) + p["setup"]
    seconds += p["training"] * stop / max_iter
    return seconds + (p["evaluation"] if stop >= max_iter else 0.0)


def search_cost(runs: list[tuple[optuna.trial.FrozenTrial, int]], max_iter: int,
                imports: float | None = None) -> float:
    """Compute-seconds of a search's runs, (trial, iteration it stopped at) in order;
    ``imports``: each run but the first forked from a fork server that has imported
    TensorFlow, its imports costing this many seconds (the first pays the server's start, its
    own measured imports)."""
    return sum(cost(t, stop, max_iter, imports if k else None)
               for k, (t, stop) in enumerate(runs))


def whole_volume_cost(runs: list[tuple[optuna.trial.FrozenTrial, int]], max_iter: int,
                      imports: float | None, steps: list[int]) -> float:
    """search_cost, plus what validating on whole volumes at ``steps`` would add to each run:
    one evaluation at every such step it reached (the trial's own measured one: NiftyNet's
    inference and the scoring), and past each, its set-up again (NiftyNet's inference is a run
    of its own, so training resumes from the checkpoint in a new graph)."""
    extra = 0.0
    for trial, stop in runs:
        p = phases(trial)
        extra += sum(p["evaluation"] for step in steps if step <= stop and step < max_iter)
        extra += sum(p["setup"] for step in steps if step < stop)
    return search_cost(runs, max_iter, imports) + extra


def segment_checkpoints(work: Path, storage: str,
                        studies: dict[str, list[optuna.trial.FrozenTrial]],
                        iterations: list[int]) -> dict[int, dict[int, float]]:
    """Whole-volume Dice of every trial's checkpoints of ``iterations``, by trial id: each
    segments the validation subjects (lrsearch's segmenting of checkpoints for the payoff,
    run/payoff.py: NiftyNet's inference with that checkpoint, scored as trials are). The
    segmentations stay in the run folders and are read back by a second run; the seconds each
    new one took are kept in WORK/whole_volume_seconds.json (a whole process each, imports
    included)."""
    from lrsearch.run.payoff import checkpoint_dice, context_of, saved_checkpoints

    seconds_file = work / "whole_volume_seconds.json"
    seconds = json.loads(seconds_file.read_text()) if seconds_file.is_file() else {}
    curves, total, done = {}, sum(len(ts) for ts in studies.values()), 0
    for name, trials in studies.items():
        ctx = context_of(optuna.load_study(study_name=name, storage=storage))
        for trial in trials:
            saved = saved_checkpoints(trial)[1]
            curves[trial._trial_id] = {}
            for step in (i for i in iterations if i in saved):
                started = time.monotonic()
                curves[trial._trial_id][step] = checkpoint_dice(ctx, trial, step)
                key = f"{name}/{trial.number}/{step}"
                if key not in seconds:
                    seconds[key] = round(time.monotonic() - started, 2)
                    seconds_file.write_text(json.dumps(seconds, indent=1))
            done += 1
            print(f"\r  segmented the checkpoints of {done} of {total} trials", end="",
                  flush=True)
    print()
    return curves


def fixed_cost(trials: list[optuna.trial.FrozenTrial]) -> str:
    """Median seconds per trial of each phase that does not grow with the iterations."""
    measured = [phases(t) for t in trials]
    parts = {k: statistics.median(p[k] for p in measured)
             for k in ("imports", "setup", "evaluation", "around the child", "training")}
    total = statistics.median(wall(t) for t in trials)
    fixed = sum(v for k, v in parts.items() if k != "training")
    return (", ".join(f"{k} {v:.1f} s" for k, v in parts.items() if k != "training")
            + f"; training {parts['training']:.1f} s; fixed {fixed:.1f} s of {total:.1f} s "
            f"({fixed / total:.0%})")


def parse_arm(spec: str) -> tuple[str, float | None, int | None, bool, int, bool]:
    """``kind[@warmup_fraction][:top_k][/hold_until][+peak][+wv]``, e.g. ``top_k_rung@0.1:2``;
    top_k_rung only: ``/10``, the top-k taken among 10 trials at least (the first held, then
    continued), and ``+peak``, a trial still warming up at the rung judged once warmed up
    (SearchSpace.warmed_up); top_k_rung and asha: ``+wv``, judged on the whole-volume Dice of
    the checkpoint at each rung instead of the validation Dice (needs ``--whole-volume``)."""
    rest, plus, after = spec.partition("+")
    options = after.split("+") if plus else []
    unknown = [o for o in options if o not in ("peak", "wv")]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown option +{unknown[0]} in {spec!r} "
                                         "(+peak, +wv)")
    rest, _, hold = rest.partition("/")
    rest, _, top_k = rest.partition(":")
    kind, _, fraction = rest.partition("@")
    if kind not in PRUNERS or kind == "none" or \
            (("peak" in options or hold) and kind != "top_k_rung") or \
            ("wv" in options and kind not in ("top_k_rung", "asha")):
        raise argparse.ArgumentTypeError(f"unknown pruner kind {kind!r} in {spec!r}")
    return (kind, float(fraction) if fraction else None, int(top_k) if top_k else None,
            "peak" in options, int(hold) if hold else 0, "wv" in options)


def rung_steps(kind: str, fraction: float, reduction_factor: int, max_iter: int) -> list[int]:
    """The iterations where ``kind`` judges a trial: top_k_rung once, at ``fraction`` of the
    iterations; asha at ``fraction`` and every ``reduction_factor`` times further."""
    first = round(fraction * max_iter)
    if kind == "top_k_rung":
        return [first]
    steps = []
    while first < max_iter:
        steps.append(first)
        first *= reduction_factor
    return steps


def replicates(studies: dict[str, list[optuna.trial.FrozenTrial]],
               blocks: int) -> dict[str, list[optuna.trial.FrozenTrial]]:
    """Each study's trials cut, in trial order, into ``blocks`` searches of equal size: random
    search draws its trials independently, so the blocks are independent searches (seeds)."""
    out = {}
    for name, trials in studies.items():
        size = len(trials) // blocks
        for b in range(blocks):
            label = name if blocks == 1 else f"{name}[{b * size}:{(b + 1) * size}]"
            out[label] = trials[b * size:(b + 1) * size]
    return out


def run_unpruned(work: Path, task: str, seeds: list[int], trials: int, max_iter: int) -> None:
    """search_efficiency's arm (b), alone: random search, no pruning, ``trials`` per seed."""
    import search_efficiency  # the sibling script: the same studies, names and workers

    from lrsearch.demo import ensure_demo_data
    from lrsearch.paths import DEMOS

    work.mkdir(parents=True, exist_ok=True)
    ensure_demo_data(DEMOS[task][1], task=task)
    for seed in seeds:
        plan = search_efficiency._plan(work, task, f"b-random-{seed}", DEFAULT_SPACE, trials,
                                       max_iter, seed)
        started = time.monotonic()
        study = search_efficiency._run(plan, optuna.samplers.RandomSampler(seed),
                                       optuna.pruners.NopPruner())
        print(f"{plan.name}: {len(study.trials)} trials, {search_efficiency._spent(study)} "
              f"iterations, {search_efficiency._seconds(study):.0f} compute-s, "
              f"{(time.monotonic() - started) / 60:.1f} min this run", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True,
                        help="a search_efficiency.py work folder (its bench.db)")
    parser.add_argument("--task", default="brain",
                        help="whose unpruned arm: brain (b-random-<seed>) or another task "
                        "(<task>-b-random-<seed>)")
    parser.add_argument("--run", type=int, default=0, metavar="TRIALS",
                        help="first run (or continue) the unpruned arm to TRIALS complete "
                        "trials, one study per --seeds seed, on --task's built-in data")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="the studies of these seeds only (--run: the seeds to run; "
                        "default 0)")
    parser.add_argument("--first", type=int, default=None, metavar="N",
                        help="only each study's trials numbered below N (the same schedules "
                        "in two folders run with the same seed: a paired before/after)")
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("--window", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--rungs", type=float, nargs="+", default=[0.05, 0.1, 0.25, 0.5, 0.75],
                        help="fractions of the iterations where the signal is correlated")
    parser.add_argument("--blocks", type=int, default=1,
                        help="cut each study's trials, in order, into this many searches "
                        "(seeds) of equal size for the replays")
    parser.add_argument("--arms", nargs="*", type=parse_arm,
                        default=[parse_arm(k) for k in PRUNERS if k != "none"],
                        metavar="KIND[@WARMUP][:TOP_K]",
                        help="pruners to replay on the raw validation Dice, e.g. asha "
                        "top_k_rung@0.1:2 (first rung at 10 %%, keep the best 2)")
    # a bare kind is read as a [pruner] table naming it: the first quarter unjudged, no top_k
    parser.add_argument("--warmup-fraction", type=float, default=OWN_KIND_WARMUP)
    parser.add_argument("--reduction-factor", type=int,
                        default=SearchSpace.pruner_reduction_factor)
    parser.add_argument("--startup-trials", type=int, default=SearchSpace.pruner_startup_trials)
    parser.add_argument("--sigmas", type=float, default=SearchSpace.pruner_sigmas)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--imports", type=float, default=None, metavar="SECONDS",
                        help="cost the trials as forked from a fork server: each one's imports "
                        "take SECONDS (benchmarks/fixed_cost.py measures it), but a search's "
                        "first's, which starts the server")
    parser.add_argument("--whole-volume", action="store_true",
                        help="also segment every trial's checkpoints (save_every_n) and "
                        "correlate their whole-volume Dice; arms with +wv judge on it")
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[50, 100, 150],
                        metavar="ITERATION", help="--whole-volume: the checkpoints to segment")
    parser.add_argument("--target-share", type=float, default=0.2,
                        help="an arm meets the target at or below this share of the unpruned "
                        "compute-seconds ...")
    parser.add_argument("--target-dice", type=float, default=0.005,
                        help="... with its best final Dice at most this far below the unpruned "
                        "best")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{args.work / 'bench.db'}"
    if args.run:
        run_unpruned(args.work.absolute(), args.task, args.seeds or [0], args.run,
                     args.max_iter)
    prefixes = ("b-random-", "brain-b-random-") if args.task == "brain" else \
        (f"{args.task}-b-random-",)
    summaries = {s.study_name: s for s in optuna.get_all_study_summaries(storage)
                 if s.study_name.startswith(prefixes)
                 and s.study_name.rsplit("-", 1)[-1].isdigit()
                 and (args.seeds is None or int(s.study_name.rsplit("-", 1)[-1]) in args.seeds)}
    if not summaries:
        parser.error(f"{args.work / 'bench.db'} holds no {prefixes[-1]}<seed> study")
    studies = {name: sorted((t for t in optuna.load_study(study_name=name, storage=storage).trials
                             if t.state == optuna.trial.TrialState.COMPLETE
                             and (args.first is None or t.number < args.first)),
                            key=lambda t: t.number) for name in sorted(summaries)}
    max_iter = max(max(t.intermediate_values) for ts in studies.values() for t in ts)
    every = min(b - a for ts in studies.values() for t in ts
                for a, b in zip(sorted(t.intermediate_values), sorted(t.intermediate_values)[1:],
                                strict=False))
    rungs = sorted({max(every, round(max_iter * f / every) * every) for f in args.rungs})
    count = sum(len(ts) for ts in studies.values())
    seeds = {name: s.user_attrs.get(StudyAttr.VALIDATION_SEED)
             for name, s in summaries.items()}
    windows = ("fixed windows (validation seed " + ", ".join(str(v) for v in seeds.values())
               + ")" if all(v is not None for v in seeds.values()) else
               "NiftyNet's random windows" if all(v is None for v in seeds.values()) else
               "mixed: some studies on fixed windows, some on random ones")
    print(f"{', '.join(studies)}: {count} complete trials of {max_iter} iterations; "
          f"validation on {windows}")
    every_trial = [t for ts in studies.values() for t in ts]
    print(f"per-trial cost (medians): {fixed_cost(every_trial)}")
    print("Spearman [95 % bootstrap interval over trials] (Kendall) of the signal at each "
          "iteration vs the final whole-volume Dice:")
    for window in args.window:
        label = "raw validation Dice" if window == 1 else f"mean of last {window} validations"
        correlations = []
        for rung in rungs:
            x, y = [], []
            for t in every_trial:
                values = dict(averaged(t, window))
                if rung in values:
                    x.append(values[rung])
                    y.append(t.value)
            low, high = spearman_interval(x, y)
            correlations.append(f"{rung} ({rung / max_iter:.0%}): {spearman(x, y):.2f} "
                                f"[{low:.2f}, {high:.2f}] ({kendall(x, y):.2f})")
        print(f"  {label}: {', '.join(correlations)}")
    curves: dict[int, dict[int, float]] = {}
    if args.whole_volume:
        curves = segment_checkpoints(args.work, storage, studies, args.checkpoints)
        saved = sorted(set.intersection(*(set(c) for c in curves.values())))
        correlations = []
        for step in saved:
            x, y = [curves[t._trial_id][step] for t in every_trial], \
                [t.value for t in every_trial]
            low, high = spearman_interval(x, y)
            correlations.append(f"{step} ({step / max_iter:.0%}): {spearman(x, y):.2f} "
                                f"[{low:.2f}, {high:.2f}] ({kendall(x, y):.2f})")
        print(f"  whole-volume Dice of the checkpoint: {', '.join(correlations)}")
        measured = [phases(t) for t in every_trial]
        seconds = json.loads((args.work / "whole_volume_seconds.json").read_text())
        print(f"  a whole-volume validation costs a trial's evaluation, "
              f"{statistics.median(p['evaluation'] for p in measured):.1f} s (median), and a "
              f"trial that goes on its set-up again, "
              f"{statistics.median(p['setup'] for p in measured):.1f} s, against "
              f"{statistics.median(p['training'] for p in measured):.1f} s of training; "
              f"segmenting a checkpoint in a process of its own took "
              f"{statistics.median(seconds.values()):.1f} s")
    searches = replicates(studies, args.blocks)
    print(f"\nreplays: {len(searches)} searches of "
          f"{'/'.join(str(len(ts)) for ts in searches.values())} trials, each trial in its "
          "order, one at a time; compute-seconds from each trial's measured phases (its "
          "fixed cost, its training up to the stop, its evaluation if it reached the end)")
    if args.imports is not None:
        print(f"  costed as forked trials: imports {args.imports:g} s for each trial but the "
              "first of a search (measured: benchmarks/fixed_cost.py), for every arm and the "
              "unpruned reference alike")
    reference = {label: (search_cost([(t, max_iter) for t in ts], max_iter, args.imports),
                         max(t.value for t in ts)) for label, ts in searches.items()}
    print("  unpruned random search: " + " | ".join(
        f"{len(ts) * max_iter} it, {reference[label][0]:.0f} compute-s, best "
        f"{reference[label][1]:.4f}" for label, ts in searches.items()))
    arms = [(f"successive halving on the mean of last {w}", w, None) for w in args.window
            if w != 1]
    for kind, fraction, top_k, peak, hold, wv in args.arms:
        fraction = args.warmup_fraction if fraction is None else fraction
        name = kind + ("" if fraction == args.warmup_fraction else f"@{fraction:g}") + \
            (f":{top_k}" if top_k else "") + (f"/{hold}" if hold else "") + \
            ("+peak" if peak else "") + ("+wv" if wv else "")
        steps = rung_steps(kind, fraction, args.reduction_factor, max_iter) if wv else []
        if wv and not args.whole_volume:
            parser.error(f"--arms {name} judges on whole volumes: add --whole-volume")
        lacking = [s for s in steps if any(s not in c for c in curves.values())]
        if lacking:
            parser.error(f"--arms {name} judges at iteration {lacking[0]}, where not every "
                         f"trial's checkpoint was segmented: add it to --checkpoints (a "
                         f"multiple of the trials' save_every_n)")
        arms.append((name, 1, (kind, fraction, top_k or args.top_k, peak, hold, steps)))
    space = load_space(DEFAULT_SPACE)  # search_efficiency's studies search the default space

    def warmed_up(trial: optuna.trial.FrozenTrial) -> int:
        return space.warmed_up(trial, max_iter)

    for name, window, spec in arms:
        shares, met = [], 0
        for label, ts in searches.items():
            pruner = None if spec is None else make_pruner(
                max_iter, args.startup_trials, spec[1], spec[0], args.reduction_factor,
                args.sigmas, spec[2], not_before=warmed_up if spec[3] else None,
                hold_until=spec[4], keys=HOLD_KEYS)
            steps = spec[5] if spec else []
            runs, best = replay(ts, window, max_iter, pruner, signal=(lambda t, steps=steps: [
                (s, curves[t._trial_id][s]) for s in steps] + [(max_iter, t.value)])
                if steps else None)
            seconds = whole_volume_cost(runs, max_iter, args.imports, steps)
            share = seconds / reference[label][0]
            gap = best - reference[label][1]
            ok = share <= args.target_share and gap >= -args.target_dice
            met += ok
            iterations = sum(stop for _, stop in runs)
            shares.append(f"{iterations / (len(ts) * max_iter):.0%} it, {share:.0%} s, "
                          f"Δ {gap:+.4f}{' *' if ok else ''}")
        print(f"  {name}: {' | '.join(shares)}; target met on {met} of {len(searches)}")
    # The floor under every pruner: an oracle that knows the final Dice stops every trial but
    # the best at the first rung; what it still pays is the fixed cost and the rung's training.
    for fraction in sorted({args.warmup_fraction, *(spec[1] for _, _, spec in arms if spec)}):
        rung = max(every, round(max_iter * fraction / every) * every)
        shares = []
        for label, ts in searches.items():
            top = max(ts, key=lambda t: t.value)
            seconds = search_cost([(t, max_iter if t is top else rung) for t in ts], max_iter,
                                  args.imports)
            shares.append(f"{seconds / reference[label][0]:.0%} s")
        print(f"  oracle stopping all but the best at {rung}: {' | '.join(shares)}")
    print(f"  (* ≤ {args.target_share:.0%} of the unpruned compute-seconds with the best Dice "
          f"within {args.target_dice:g}; Δ: best kept − unpruned best)")

if __name__ == "__main__":
    main()
