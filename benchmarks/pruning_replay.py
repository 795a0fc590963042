"""Would pruning on averaged validation Dice do better? Replays search_efficiency's unpruned arm.

NiftyNet's validation Dice (a few random windows of the validation subjects) is noisy. This
reads the random-search, no-pruning arm (b) of a ``benchmarks/search_efficiency.py`` work
folder, where every trial ran to the end, and prints for each choice of reported value (the
raw validation Dice, or the mean of the last k validations):

- how well it ranks trials at 25 %, 50 % and 75 % of the iterations: Spearman's and Kendall's
  rank correlations with the trial's final whole-volume Dice;
- what successive halving (the default pruner: rungs at 25 % and 75 %, reduction factor 3)
  would have done with it, replaying the trials in their order: the share of iterations it
  would have run, and the best final Dice among the trials it would have kept.

Then, on the raw validation Dice, the same replay for each pruner kind of a space's [pruner]
table (``--arms``; asha, hyperband, median, curve, top_k_rung by default), built by
lrsearch's own make_pruner with the table's settings given on the command line: per seed, the
share of the iterations it would have run and the best final Dice it would have kept. As in a
study, a baseline is never asked and no trial is judged at its last iteration.

The unpruned arm is search_efficiency's ``(b)``, run per task (``--task``: its studies are
``b-random-<seed>`` on the brain demo, ``<task>-b-random-<seed>`` on another); studies run
before the fixed validation windows (study attribute ``validation_seed``) give the "before".

    python benchmarks/pruning_replay.py --work /tmp/lrsearch-efficiency-XXXX [--task tissue]
        [--window 1 3 5]
        [--arms curve top_k_rung] [--warmup-fraction 0.25] [--reduction-factor 3]
        [--sigmas 1] [--top-k 5] [--startup-trials 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import optuna

from lrsearch.monitor.records import TrialAttr
from lrsearch.search.space import PRUNERS, SearchSpace
from lrsearch.search.strategy import make_pruner


def _ranks(values: list[float]) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    return ranks


def spearman(x: list[float], y: list[float]) -> float:
    return float(np.corrcoef(_ranks(x), _ranks(y))[0, 1])


def kendall(x: list[float], y: list[float]) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(x, y).statistic)


def averaged(trial: optuna.trial.FrozenTrial, window: int) -> list[tuple[int, float]]:
    """(iteration, mean of the last ``window`` validation Dice values) along the trial."""
    items = sorted(trial.intermediate_values.items())
    return [(step, statistics.mean(v for _, v in items[max(0, i - window + 1):i + 1]))
            for i, (step, _) in enumerate(items)]


def replay(trials: list[optuna.trial.FrozenTrial], window: int, max_iter: int,
           pruner: optuna.pruners.BasePruner | None = None) -> tuple[float, float]:
    """(share of iterations run, best final Dice kept) when ``pruner`` (default: successive
    halving, rungs at 25 % and 75 %) had judged the trials in their order on the mean of their
    last ``window`` validations."""
    if pruner is None:
        pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, max_iter // 4),
                                                        reduction_factor=3)
    # a fixed name: Hyperband puts a trial in a bracket by the study's name and its number
    study = optuna.create_study(study_name="replay", direction="maximize", pruner=pruner)
    spent, best = 0, float("-inf")
    for frozen in trials:
        trial = study.ask()
        judged = not frozen.user_attrs.get(TrialAttr.BASELINE)
        for step, value in averaged(frozen, window):
            trial.report(value, step)
            if judged and step < max_iter and trial.should_prune():
                spent += step
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            spent += max_iter
            study.tell(trial, frozen.value)
            best = max(best, frozen.value)
    return spent / (max_iter * len(trials)), best


def run_unpruned(work: Path, task: str, seeds: list[int], trials: int, max_iter: int) -> None:
    """search_efficiency's arm (b), alone: random search, no pruning, ``trials`` per seed."""
    import search_efficiency  # the sibling script: the same studies, names and workers

    from lrsearch.demo import ensure_demo_data
    from lrsearch.paths import DEFAULT_SPACE, DEMOS

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
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("--window", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--arms", nargs="*", choices=[k for k in PRUNERS if k != "none"],
                        default=[k for k in PRUNERS if k != "none"],
                        help="pruner kinds to replay on the raw validation Dice")
    parser.add_argument("--warmup-fraction", type=float, default=SearchSpace.pruner_warmup_fraction)
    parser.add_argument("--reduction-factor", type=int,
                        default=SearchSpace.pruner_reduction_factor)
    parser.add_argument("--startup-trials", type=int, default=SearchSpace.pruner_startup_trials)
    parser.add_argument("--sigmas", type=float, default=SearchSpace.pruner_sigmas)
    parser.add_argument("--top-k", type=int, default=SearchSpace.pruner_top_k)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{args.work / 'bench.db'}"
    if args.run:
        run_unpruned(args.work.absolute(), args.task, args.seeds, args.run, args.max_iter)
    prefixes = ("b-random-", "brain-b-random-") if args.task == "brain" else \
        (f"{args.task}-b-random-",)
    arms = sorted(s.study_name for s in optuna.get_all_study_summaries(storage)
                  if s.study_name.startswith(prefixes)
                  and s.study_name.rsplit("-", 1)[-1].isdigit())
    if not arms:
        parser.error(f"{args.work / 'bench.db'} holds no {prefixes[-1]}<seed> study")
    studies = {name: sorted((t for t in optuna.load_study(study_name=name, storage=storage).trials
                             if t.state == optuna.trial.TrialState.COMPLETE),
                            key=lambda t: t.number) for name in arms}
    max_iter = max(max(t.intermediate_values) for ts in studies.values() for t in ts)
    rungs = (max_iter // 4, max_iter // 2, 3 * max_iter // 4)
    count = sum(len(ts) for ts in studies.values())
    print(f"{', '.join(arms)}: {count} complete trials of {max_iter} iterations")
    for window in args.window:
        label = "raw validation Dice" if window == 1 else f"mean of last {window} validations"
        correlations = []
        for rung in rungs:
            x, y = [], []
            for ts in studies.values():
                for t in ts:
                    values = dict(averaged(t, window))
                    if rung in values:
                        x.append(values[rung])
                        y.append(t.value)
            correlations.append(f"at {rung}: {spearman(x, y):.2f} ({kendall(x, y):.2f})")
        replays = [replay(ts, window, max_iter) for ts in studies.values()]
        shares = " / ".join(f"{share:.0%}" for share, _ in replays)
        kept = " / ".join(f"{best:.4f}" for _, best in replays)
        print(f"{label}: Spearman (Kendall) vs final whole-volume Dice "
              f"{', '.join(correlations)}; "
              f"successive halving would run {shares} of the iterations, best kept {kept}")
    print("best of all trials: " + " / ".join(f"{max(t.value for t in ts):.4f}"
                                               for ts in studies.values()))
    print(f"pruner kinds on the raw validation Dice (warmup_fraction {args.warmup_fraction:g}, "
          f"reduction_factor {args.reduction_factor}, startup_trials {args.startup_trials}, "
          f"sigmas {args.sigmas:g}, top_k {args.top_k}):")
    for kind in args.arms:
        replays = [replay(ts, 1, max_iter, make_pruner(
            max_iter, args.startup_trials, args.warmup_fraction, kind, args.reduction_factor,
            args.sigmas, args.top_k)) for ts in studies.values()]
        shares = " / ".join(f"{share:.0%}" for share, _ in replays)
        kept = " / ".join(f"{best:.4f}" for _, best in replays)
        print(f"  {kind}: would run {shares} of the iterations, best kept {kept}")


if __name__ == "__main__":
    main()
