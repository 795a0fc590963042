"""A trial's fixed cost with and without the fork server, side by side.

Per task, iteration count and repeat, two studies of the same pinned schedules (constant lr,
no pruning, one trial at a time, the same study seed, so the same training seeds):

  cold: every trial a new process that imports TensorFlow and NiftyNet
        (``lrsearch optimize --no-fork-server``: how every trial started before);
  warm: every trial forked from one process per slot that imported them once (the default;
        lrsearch.engines.child.server), the first trial paying that process's start;

in alternating order (cold first on even repeats). A short run (``--iterations 10``: a trial
stopped at the default pruner's rung of a 200-iteration study) is where the fixed cost
dominates. Printed per arm: the median of each phase of a trial from the second on (imports;
set-up = graph, session and first iteration; training; evaluation, which a stopped trial
skips), the first trial's imports, the compute-seconds of the whole study (trial wall times
summed, evaluation included) and of a stopped trial (imports + set-up + training), the warm
arm's saving with its spread over repeats, and whether the two arms' validation Dice agree
bit for bit (they must: same seeds, same windows).

    python benchmarks/fixed_cost.py [--tasks brain tissue] [--iterations 10 60] [--trials 5]
        [--repeats 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
from pathlib import Path

import optuna

from lrsearch.demo import ensure_demo_data
from lrsearch.engines.runtime import get_runtime
from lrsearch.monitor.progress import QUIET, Progress
from lrsearch.monitor.records import TrialAttr
from lrsearch.paths import DEMOS
from lrsearch.run import study as run_study
from lrsearch.run import workers
from lrsearch.run.plan import StudyOptions, make_slots

SPACE = """
[study]
families = ["constant"]
base_lr = [1e-5, 1e-1]
optimisers = ["adam"]
"""
LRS = (1e-3, 3e-4, 3e-3, 1e-4, 1e-2, 3e-5, 3e-2, 1e-5)
PHASES = ("imports", "setup", "training", "evaluation")


def run_arm(work: Path, task: str, arm: str, iterations: int, trials: int, repeat: int) -> list:
    """The trials of one study: ``(timing, wall seconds, validation Dice by iteration)``."""
    name = f"{task}-{iterations}-{arm}-{repeat}"
    storage = f"sqlite:///{work / 'fixed_cost.db'}"
    space = work / "space.toml"
    space.write_text(SPACE)
    runtime = dataclasses.replace(get_runtime("tf2"), warm=arm == "warm")
    options = StudyOptions(DEMOS[task][0], space, study_name=name, storage_url=storage,
                           trials=trials, seed=repeat, max_iter=iterations,
                           runs_dir=work / name, runtime=runtime, baselines="none", repeats=0,
                           slots=make_slots(1))
    plan = run_study.prepare(options)
    run_study.load_or_create(plan)  # the study lrsearch would make, run without pruning
    study = optuna.load_study(study_name=name, storage=storage,
                              sampler=optuna.samplers.RandomSampler(repeat),
                              pruner=optuna.pruners.NopPruner())
    for k in range(trials):
        study.enqueue_trial({"family": "constant", "base_lr": LRS[k % len(LRS)],
                             "optimiser": "adam"})
    plan = run_study.attach(study, plan)
    progress = Progress(plan.trials, QUIET)
    workers.Workers(study, plan, progress).run()
    progress.close()
    out = []
    for trial in optuna.load_study(study_name=name, storage=storage).trials:
        if trial.state != optuna.trial.TrialState.COMPLETE:
            sys.exit(f"{name}: trial {trial.number} {trial.state.name}: "
                     f"{trial.user_attrs.get(TrialAttr.STOP_REASON)}")
        timing = trial.user_attrs[TrialAttr.TIMING]
        out.append((timing, sum(timing.get(p, 0.0) for p in PHASES),
                    dict(trial.intermediate_values)))
    return out


def _spread(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:+.2f} s (one repeat)"
    return f"{statistics.mean(values):+.2f} s (sd {statistics.stdev(values):.2f}, " \
           f"{min(values):+.2f} … {max(values):+.2f})"


def report(task: str, iterations: int, runs: dict[str, list[list]]) -> None:
    repeats = len(runs["cold"])
    print(f"\n{task}, {iterations} iterations per trial, {len(runs['cold'][0])} trials per "
          f"study, {repeats} repeats (medians over trials 2..; seconds)")
    print(f"  {'arm':<5} {'imports':>8} {'set-up':>8} {'training':>9} {'evaluation':>11} "
          f"{'1st imports':>12} {'stopped trial':>14} {'study':>8}")
    study_seconds: dict[str, list[float]] = {}
    stopped: dict[str, list[float]] = {}
    for arm in ("cold", "warm"):
        later = [t for study in runs[arm] for t in study[1:]]
        med = {p: statistics.median(t[0].get(p, 0.0) for t in later) for p in PHASES}
        first = statistics.median(study[0][0]["imports"] for study in runs[arm])
        study_seconds[arm] = [sum(t[1] for t in study) for study in runs[arm]]
        stopped[arm] = [statistics.median(sum(t[0][p] for p in PHASES[:3]) for t in study[1:])
                        for study in runs[arm]]
        print(f"  {arm:<5} {med['imports']:8.2f} {med['setup']:8.2f} {med['training']:9.2f} "
              f"{med['evaluation']:11.2f} {first:12.2f} {statistics.median(stopped[arm]):14.2f} "
              f"{statistics.median(study_seconds[arm]):8.1f}")
    saved = [c - w for c, w in zip(study_seconds["cold"], study_seconds["warm"], strict=True)]
    per_stopped = [c - w for c, w in zip(stopped["cold"], stopped["warm"], strict=True)]
    print(f"  warm saves per study: {_spread(saved)} of "
          f"{statistics.mean(study_seconds['cold']):.1f} s; per stopped trial "
          f"{_spread(per_stopped)} of {statistics.mean(stopped['cold']):.2f} s")
    same = all(a[2] == b[2] for c, w in zip(runs["cold"], runs["warm"], strict=True)
               for a, b in zip(c, w, strict=True))
    print(f"  validation Dice identical in both arms, trial by trial: {'yes' if same else 'NO'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", choices=sorted(DEMOS), default=["brain", "tissue"])
    parser.add_argument("--iterations", type=int, nargs="+", default=[10])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    if args.trials < 2:
        parser.error("--trials must be at least 2 (the first trial starts the fork server)")

    work = args.work or Path(tempfile.mkdtemp(prefix="lrsearch-fixed-cost-"))
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)  # the demo configs find their data relative to the working directory
    print(f"work directory: {work}", flush=True)
    for task in args.tasks:
        ensure_demo_data(work / DEMOS[task][1], task=task)
        for iterations in args.iterations:
            runs: dict[str, list[list]] = {"cold": [], "warm": []}
            for repeat in range(args.repeats):
                order = ("cold", "warm") if repeat % 2 == 0 else ("warm", "cold")
                for arm in order:
                    runs[arm].append(run_arm(work, task, arm, iterations, args.trials, repeat))
                    print(f"  {task} {iterations} it, repeat {repeat}, {arm}: "
                          f"{sum(t[1] for t in runs[arm][-1]):.1f} s", flush=True)
            report(task, iterations, runs)


if __name__ == "__main__":
    main()
