"""The main job, measured: ``lrsearch optimize --trials 50`` on the built-in demo, fresh.

Runs the README's command in a new empty directory (demo data written on first use, SQLite
storage there), times it, and prints the spread of Dice between trials (best, median, quartiles,
worst complete), pruned and failed counts, Dice by family and the compute pruning saved.

    python benchmarks/demo_study.py [--trials 50] [extra lrsearch optimize arguments]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import optuna


def main() -> None:
    args = sys.argv[1:]
    trials = "50"
    if "--trials" in args:
        trials = args[args.index("--trials") + 1]
    else:
        args = ["--trials", trials, *args]
    work = Path(tempfile.mkdtemp(prefix="lrsearch-demo-study-"))
    command = ["lrsearch", "optimize", *args]
    print(f"$ cd {work} && {' '.join(command)}", flush=True)
    started = time.monotonic()
    subprocess.run(command, cwd=work, check=True)
    minutes = (time.monotonic() - started) / 60

    study = optuna.load_study(study_name="demo", storage=f"sqlite:///{work / 'lrsearch.db'}")
    done = study.get_trials(deepcopy=False)
    complete = [t for t in done if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = [t for t in done if t.state == optuna.trial.TrialState.PRUNED]
    failed = [t for t in done if t.state == optuna.trial.TrialState.FAIL]
    values = sorted(t.value for t in complete)
    max_iter = study.user_attrs["max_iter"]
    run = sum(t.user_attrs.get("iterations", 0) for t in done)

    print(f"\n{len(done)} trials in {minutes:.1f} min (target ≤ 25 min): "
          f"{len(complete)} complete, {len(pruned)} pruned, {len(failed)} failed")
    if values:
        q1, median, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
        print(f"whole-volume validation Dice of complete trials: best {values[-1]:.4f}, "
              f"Q3 {q3:.4f}, median {median:.4f}, Q1 {q1:.4f}, worst {values[0]:.4f}")
        best = study.best_trial
        print(f"best trial {best.number}: {best.user_attrs.get('schedule_text')}")
    by_family = defaultdict(list)
    for t in complete:
        by_family[t.params["family"]].append(t.value)
    for family, dice in sorted(by_family.items(), key=lambda kv: -max(kv[1])):
        print(f"  {family:20s} n={len(dice):2d}  best {max(dice):.4f}  "
              f"median {statistics.median(dice):.4f}")
    print(f"training iterations run {run} of {len(done) * max_iter} for full runs of every "
          f"trial: pruning saved {1 - run / (len(done) * max_iter):.0%}")
    print(f"study directory: {work}")


if __name__ == "__main__":
    main()
