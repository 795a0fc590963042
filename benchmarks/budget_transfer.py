"""Does a schedule found at a short budget B stay good when trained for 4B?

Users search at a short budget, then train long. This takes the tissue study that
``benchmarks/search_efficiency.py`` ran at B (arm (a), TPE + the default pruner, one seed), and:

  - exports its top 3 complete trials, and the schedule of the cheap arm (e') (the range test's
    steepest descent as one-cycle's peak), at factor x B with ``lrsearch export --max-iter`` (the
    schedule rebuilt from the trial's parameters for the longer run) and trains each exported
    schedule for factor x B iterations (as a trial of a study at that budget, so that it is scored
    the same way: whole-volume Dice of the final model on the validation subjects; the script
    checks that the schedule trained is the exported one);
  - trains the config as written (constant lr of the INI) for factor x B;
  - optionally (``--search-trials N``) runs the default search itself at factor x B and takes
    its best.

It prints both rankings (at B and at factor x B), whether the order at B holds, Kendall's tau
between them, each schedule's gain over the config at factor x B, and the cost of every run in
iterations and compute-seconds.

    python benchmarks/search_efficiency.py --tasks tissue --seeds 0 --work W ...
    python benchmarks/budget_transfer.py --work W [--seed 0] [--factor 4] [--search-trials 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402

from benchmarks.search_efficiency import BASELINE_SPACE, NIFTYNET_LR, _plan, _run  # noqa: E402
from lrsearch.demo import ensure_demo_data  # noqa: E402
from lrsearch.monitor.records import TrialAttr  # noqa: E402
from lrsearch.paths import DEFAULT_SPACE, DEMOS  # noqa: E402
from lrsearch.results.export import export_trial  # noqa: E402
from lrsearch.search.space import load_space  # noqa: E402

TASK = "tissue"
TOP = 3


def _seconds(trial: optuna.trial.FrozenTrial) -> float:
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


def _kendall(first: list[float], second: list[float]) -> float:
    """Kendall's tau-a of two score lists over the same items (no ties expected)."""
    n, score = len(first), 0
    for i in range(n):
        for j in range(i + 1, n):
            a, b = first[i] - first[j], second[i] - second[j]
            score += (a * b > 0) - (a * b < 0)
    return score / (n * (n - 1) / 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True,
                        help="search_efficiency.py's work folder with the tissue study at B")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("--search-trials", type=int, default=0,
                        help="also run the default search at factor x B with this many trials")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")
    work = args.work.absolute()
    ensure_demo_data(DEMOS[TASK][1], task=TASK)
    kind = load_space(DEFAULT_SPACE).pruner
    name = f"{TASK}-a-tpe-{kind}-{args.seed}"
    source = optuna.load_study(study_name=name, storage=f"sqlite:///{work / 'bench.db'}")
    complete = [t for t in source.trials if t.state == optuna.trial.TrialState.COMPLETE]
    top = sorted(complete, key=lambda t: t.value, reverse=True)[:TOP]
    budget = top[0].user_attrs[TrialAttr.MAX_ITER]
    long = args.factor * budget

    def arm(prefix: str) -> tuple[optuna.Study, optuna.trial.FrozenTrial]:
        study = optuna.load_study(study_name=f"{TASK}-{prefix}-{args.seed}",
                                  storage=f"sqlite:///{work / 'bench.db'}")
        return study, study.trials[0]

    constant_b = arm("c-constant")[1]
    print(f"study {name} (B = {budget}); its top {len(top)} of {len(complete)} complete trials "
          f"and arm (e'), trained again for {long} iterations; seed {args.seed}", flush=True)
    candidates = [(f"(a) trial {t.number}", source, t) for t in top]
    candidates.append(("(e') one-cycle", *arm("e-one-cycle-steepest")))

    rows = []  # (label, dice at B, trial at factor x B)
    exports = work / f"transfer-{args.seed}"
    exports.mkdir(exist_ok=True)
    for label, origin, trial in candidates:
        key = label.split()[0].strip("()'") + "".join(c for c in label if c.isdigit())
        exported = export_trial(origin, trial.number, exports / f"{key}.ini", long)
        # named by seed too: another seed's study of the same key is another schedule
        plan = _plan(work, TASK, f"transfer-{long}-{key}-{args.seed}", DEFAULT_SPACE, 1, long,
                     args.seed)
        params = dict(trial.params)
        started = time.monotonic()
        study = _run(plan, optuna.samplers.RandomSampler(args.seed), optuna.pruners.NopPruner(),
                     params)
        trained = study.trials[0]
        written = json.loads(exported.schedule.read_text())["schedule"]
        if trained.user_attrs[TrialAttr.SCHEDULE] != written:
            raise SystemExit(f"trial {trial.number}: the schedule trained at {long} is not the "
                             f"exported one ({exported.schedule})")
        print(f"  {label}: {trial.user_attrs[TrialAttr.SCHEDULE_TEXT]}; Dice at "
              f"{budget} {trial.value:.4f}; exported {exported.config.name}; at {long}: "
              f"{trained.value:.4f} ({time.monotonic() - started:.0f} s)", flush=True)
        rows.append((label, trial.value, trained))

    space = work / "baselines.toml"
    space.write_text(BASELINE_SPACE)
    plan = _plan(work, TASK, f"transfer-{long}-c-constant-{args.seed}", space, 1, long,
                 args.seed)
    config_long = _run(plan, optuna.samplers.RandomSampler(args.seed), optuna.pruners.NopPruner(),
                       {"family": "constant", "base_lr": NIFTYNET_LR}).trials[0]
    print(f"  your config (constant {NIFTYNET_LR:g}): Dice at {budget} {constant_b.value:.4f}; "
          f"at {long}: {config_long.value:.4f}", flush=True)
    rows.append(("your config", constant_b.value, config_long))

    print(f"\nranking at {budget} → at {long} (whole-volume Dice of the final model)")
    by_short = sorted(rows, key=lambda r: r[1], reverse=True)
    by_long = sorted(rows, key=lambda r: r[2].value, reverse=True)
    for rank, (label, short, trained) in enumerate(by_short, start=1):
        print(f"  {rank}. {label:16s} {short:.4f} → {trained.value:.4f} "
              f"(rank {by_long.index(next(r for r in by_long if r[0] == label)) + 1} at {long}; "
              f"Δ vs your config at {long} {trained.value - config_long.value:+.4f}; "
              f"{trained.user_attrs[TrialAttr.ITERATIONS]} it, {_seconds(trained):.0f} s)")
    tau = _kendall([r[1] for r in rows], [r[2].value for r in rows])
    same = [r[0] for r in by_short] == [r[0] for r in by_long]
    best_short = by_short[0][0]
    print(f"  order at {budget} holds at {long}: {'yes' if same else 'no'}; Kendall's tau "
          f"{tau:+.2f} over {len(rows)} schedules; the pick at {budget} ({best_short}) is "
          f"{'still' if by_long[0][0] == best_short else 'not'} the best at {long}")
    cost = sum(r[2].user_attrs[TrialAttr.ITERATIONS] for r in rows)
    print(f"  cost of these {len(rows)} runs at {long}: {cost} iterations, "
          f"{sum(_seconds(r[2]) for r in rows):.0f} compute-seconds")

    if args.search_trials:
        plan = _plan(work, TASK, f"transfer-{long}-search-{args.seed}", DEFAULT_SPACE,
                     args.search_trials, long, args.seed)
        search = _run(plan)
        spent = sum(t.user_attrs.get(TrialAttr.ITERATIONS, 0) for t in search.trials)
        seconds = sum(_seconds(t) for t in search.trials if t.datetime_complete)
        best_long = max(r[2].value for r in rows[:-1])
        print(f"  the default search at {long} ({args.search_trials} trials): best "
              f"{search.best_value:.4f} ({search.best_trial.user_attrs[TrialAttr.SCHEDULE_TEXT]})"
              f"; transferred top-{TOP} best {best_long:.4f}; search cost {spent} iterations, "
              f"{seconds:.0f} compute-seconds")
    else:
        print(f"  a search at {long} itself: not run (--search-trials 0)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
