"""A trial's fixed cost, two ways of starting it side by side.

Per task, iteration count and repeat, two studies of the same pinned schedules (constant lr,
no pruning, one trial at a time, the same study seed, so the same training seeds), in
alternating order (the first arm first on even repeats). ``--compare fork`` (the default):

  cold: every trial a new process that imports TensorFlow and NiftyNet
        (``lrsearch optimize --no-fork-server``: how every trial started before);
  warm: every trial forked from one process per slot that imported them once (the default;
        lrsearch.engines.child.server), the first trial paying that process's start.

``--compare rewrites``, both forked:

  on:   TensorFlow's graph rewrites (grappler) in every session, as TensorFlow sets them (the
        default);
  off:  none (``LRSEARCH_GRAPH_REWRITES=off``), or with ``--rewrites lean`` one pass of the
        five that shrink the graph (lrsearch.engines.child.sessions).

A short run (``--iterations 10``: a trial stopped at the default pruner's rung of a
200-iteration study) is where the fixed cost dominates; a full one (``--iterations 200``)
shows what the rest of the training pays or saves. Printed per arm: the median of each phase
of a trial from the second on (imports; set-up = graph, session and first iteration;
training, and per iteration after the first; evaluation, which a stopped trial skips), the
first trial's imports, the compute-seconds of the whole study (trial wall times summed,
evaluation included) and of a stopped trial (imports + set-up + training), the second arm's
saving with its spread over repeats, and how the two arms' validation Dice compare (fork:
bit for bit, same seeds, same windows; rewrites: TensorFlow's rewritten graph sums in another
order, so the last validation Dice and the final whole-volume Dice are compared).

    python benchmarks/fixed_cost.py [--compare fork|rewrites [--rewrites off|lean]]
        [--tasks brain tissue] [--iterations 10 200] [--trials 5] [--repeats 3]
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
COMPARISONS = {"fork": ("cold", "warm"), "rewrites": ("on", "off")}


def arm_runtime(arm: str):
    """The runtime an arm's trials run in."""
    runtime = get_runtime("tf2")
    if arm == "cold":
        return dataclasses.replace(runtime, warm=False)
    if arm in ("on", "lean", "off"):
        return dataclasses.replace(runtime, graph_rewrites=arm)
    return runtime  # warm: the default


def run_arm(work: Path, task: str, arm: str, iterations: int, trials: int, repeat: int) -> list:
    """The trials of one study: ``(timing, wall seconds, validation Dice by iteration, final
    whole-volume Dice)``."""
    name = f"{task}-{iterations}-{arm}-{repeat}"
    storage = f"sqlite:///{work / 'fixed_cost.db'}"
    space = work / "space.toml"
    space.write_text(SPACE)
    runtime = arm_runtime(arm)
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
                    dict(trial.intermediate_values), trial.value))
    return out


def _spread(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:+.2f} s (one repeat)"
    return f"{statistics.mean(values):+.2f} s (sd {statistics.stdev(values):.2f}, " \
           f"{min(values):+.2f} … {max(values):+.2f})"


def report(task: str, iterations: int, arms: tuple[str, str], runs: dict[str, list[list]]
           ) -> None:
    first_arm, second = arms
    repeats = len(runs[first_arm])
    print(f"\n{task}, {iterations} iterations per trial, {len(runs[first_arm][0])} trials per "
          f"study, {repeats} repeats (medians over trials 2..; seconds)")
    print(f"  {'arm':<5} {'imports':>8} {'set-up':>8} {'training':>9} {'per iter':>9} "
          f"{'evaluation':>11} {'1st imports':>12} {'stopped trial':>14} {'study':>8}")
    study_seconds: dict[str, list[float]] = {}
    stopped: dict[str, list[float]] = {}
    for arm in arms:
        later = [t for study in runs[arm] for t in study[1:]]
        med = {p: statistics.median(t[0].get(p, 0.0) for t in later) for p in PHASES}
        per_iter = med["training"] / max(1, iterations - 1)  # set-up holds the first
        first = statistics.median(study[0][0]["imports"] for study in runs[arm])
        study_seconds[arm] = [sum(t[1] for t in study) for study in runs[arm]]
        stopped[arm] = [statistics.median(sum(t[0][p] for p in PHASES[:3]) for t in study[1:])
                        for study in runs[arm]]
        print(f"  {arm:<5} {med['imports']:8.2f} {med['setup']:8.2f} {med['training']:9.2f} "
              f"{per_iter:9.3f} {med['evaluation']:11.2f} {first:12.2f} "
              f"{statistics.median(stopped[arm]):14.2f} "
              f"{statistics.median(study_seconds[arm]):8.1f}")
    saved = [a - b for a, b in zip(study_seconds[first_arm], study_seconds[second], strict=True)]
    per_stopped = [a - b for a, b in zip(stopped[first_arm], stopped[second], strict=True)]
    print(f"  {second} saves per study: {_spread(saved)} of "
          f"{statistics.mean(study_seconds[first_arm]):.1f} s; per stopped trial "
          f"{_spread(per_stopped)} of {statistics.mean(stopped[first_arm]):.2f} s")
    pairs = [(a, b) for x, y in zip(runs[first_arm], runs[second], strict=True)
             for a, b in zip(x, y, strict=True)]
    if all(a[2] == b[2] for a, b in pairs):
        print("  validation Dice identical in both arms, trial by trial: yes")
        return
    last = [abs(a[2][max(a[2])] - b[2][max(b[2])]) for a, b in pairs if a[2] and b[2]]
    final = [b[3] - a[3] for a, b in pairs]
    print(f"  validation Dice identical in both arms: no; last validation |difference| "
          f"mean {statistics.mean(last):.4f}, max {max(last):.4f}; final whole-volume Dice "
          f"{second} - {first_arm}: mean {statistics.mean(final):+.4f} "
          f"(sd {statistics.stdev(final) if len(final) > 1 else 0:.4f}, "
          f"{len(final)} trials)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", choices=sorted(COMPARISONS), default="fork")
    parser.add_argument("--rewrites", choices=("lean", "off"), default="off",
                        help="with --compare rewrites: the mode compared with on")
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
            arms = COMPARISONS[args.compare]
            if args.compare == "rewrites":
                arms = ("on", args.rewrites)
            runs: dict[str, list[list]] = {arm: [] for arm in arms}
            for repeat in range(args.repeats):
                order = arms if repeat % 2 == 0 else arms[::-1]
                for arm in order:
                    runs[arm].append(run_arm(work, task, arm, iterations, args.trials, repeat))
                    print(f"  {task} {iterations} it, repeat {repeat}, {arm}: "
                          f"{sum(t[1] for t in runs[arm][-1]):.1f} s", flush=True)
            report(task, iterations, arms, runs)


if __name__ == "__main__":
    main()
