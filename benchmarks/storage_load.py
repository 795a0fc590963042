"""Storage under load: 16 worker processes on one PostgreSQL study, trivial trials.

Each worker is lrsearch's own worker loop (study lock, budget, ask/tell, heartbeats, the
reconnecting storage, TPE and the default space's pruner) with the NiftyNet training replaced
by a trivial trial: sample a schedule from studies/default.toml, then report 6 validation
values with ``report``/``should_prune``, timing each call. Prints trials/s, p50/p95/max
latency of report and should_prune, errors (must be 0), and whether the study holds exactly
the asked-for trials.

    python benchmarks/storage_load.py [--workers 16] [--trials 480]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def worker(url: str, trials: int, out: Path) -> None:
    import optuna

    from lrsearch.monitor.progress import QUIET, Progress
    from lrsearch.run.plan import StudyPlan, make_slots
    from lrsearch.run.storage import open_storage
    from lrsearch.run.workers import Workers
    from lrsearch.search.space import load_space
    from lrsearch.search.strategy import make_pruner, make_sampler

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = load_space(REPO / "studies" / "default.toml")
    storage = open_storage(url, pool_size=3)
    study = optuna.create_study(study_name="load", storage=storage, direction="maximize",
                                sampler=make_sampler(None),
                                pruner=make_pruner(60, space.pruner_startup_trials,
                                                   space.pruner_warmup_fraction, space.pruner,
                                                   space.pruner_reduction_factor),
                                load_if_exists=True)
    plan = StudyPlan("load", url, space, None, trials, None, None, make_slots(1))
    timings: dict[str, list[float]] = {"report": [], "should_prune": []}
    errors: list[str] = []

    def trivial(study, trial, plan, progress, slot, stopping):
        try:
            setup = space.suggest(trial, 60)
            score = 0.0
            for step in range(10, 70, 10):
                score = 1 - math.exp(-setup.schedule.lr(step) * step * 50)
                started = time.perf_counter()
                trial.report(score, step)
                timings["report"].append(time.perf_counter() - started)
                started = time.perf_counter()
                prune = trial.should_prune()
                timings["should_prune"].append(time.perf_counter() - started)
                if prune:
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                    return
            study.tell(trial, score)
        except Exception as error:  # noqa: BLE001 - counted and reported
            errors.append(repr(error))

    Workers(study, plan, Progress(trials, QUIET), run_one=trivial).run()
    out.write_text(json.dumps({"timings": timings, "errors": errors}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--trials", type=int, default=480)
    parser.add_argument("--worker", nargs=3, metavar=("URL", "TRIALS", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), Path(args.worker[2]))
        return

    import optuna

    from tests.postgres import PostgresServer

    server = PostgresServer().init()
    work = Path(tempfile.mkdtemp(prefix="lrsearch-load-"))
    try:
        outs = [work / f"worker{i}.json" for i in range(args.workers)]
        started = time.monotonic()
        procs = [subprocess.Popen([sys.executable, __file__, "--worker", server.url,
                                   str(args.trials), str(out)]) for out in outs]
        codes = [p.wait() for p in procs]
        wall = time.monotonic() - started
        results = [json.loads(out.read_text()) for out in outs if out.exists()]
        trials = optuna.load_study(study_name="load", storage=server.url).get_trials()
        errors = sum(len(r["errors"]) for r in results) + sum(c != 0 for c in codes)
        print(f"{args.workers} worker processes, {len(trials)} trials "
              f"(asked {args.trials}, exactly: {len(trials) == args.trials}, distinct numbers: "
              f"{len({t.number for t in trials}) == len(trials)}) on PostgreSQL in {wall:.1f} s")
        print(f"  throughput: {len(trials) / wall:.1f} trials/s (incl. process start-up)")
        for name in ("report", "should_prune"):
            values = sorted(v for r in results for v in r["timings"][name])
            p95 = values[int(0.95 * (len(values) - 1))]
            print(f"  {name:13s} n={len(values)}  p50 {statistics.median(values) * 1e3:.1f} ms"
                  f"  p95 {p95 * 1e3:.1f} ms  max {values[-1] * 1e3:.1f} ms")
        states = {s.name: sum(t.state == s for t in trials) for s in optuna.trial.TrialState}
        print(f"  trial states: {states}")
        print(f"  errors: {errors}")
        for r in results:
            for e in r["errors"][:3]:
                print("   ", e)
    finally:
        server.destroy()


if __name__ == "__main__":
    main()
