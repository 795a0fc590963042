"""Does a study's single-run winner survive a retrain? Finalist repeats, measured.

Per task and study seed, runs the product as a user does:

    lrsearch optimize --demo TASK --trials N --seed S --finalists 3 --repeats 2

(your config as trial 0, the default search, then the top 3 searched schedules and your config
retrained on 2 fresh seeds each, seed-paired per round), and reads ``lrsearch best --json``.
It prints, per study:

  - the single-run winner: the finalist (a searched schedule or a baseline: baselines rank like
    any trial) with the best final whole-volume Dice of its original run (what ``best`` named
    before repeats);
  - the repeated winner: the best mean over its runs (what ``best`` names now);
  - how many searched schedules were finalists (a study whose pruner let only one searched
    trial finish has nothing to reorder among them, only against your config);
  - whether they are the same schedule, and the regret of the single-run pick in Dice: the
    repeated winner's mean minus the single-run winner's mean (0 when they agree);
  - the verdict against your config (Δ of means with its 95 % paired interval, or "no
    measurable gain");
  - the cost of the repeats in iterations and compute-seconds, beside the search's.

Then, over the seeds: how often the single-run winner stayed the winner, and the mean and
largest regret.

    python benchmarks/winner_stability.py [--tasks brain tissue] [--seeds 0 1 2 3] [--trials 20]
        [--work DIR]

``--work DIR`` continues: a study that holds its trials and repeats there is only read back.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import optuna

from lrsearch.monitor.records import TrialAttr
from lrsearch.paths import DEMOS

FINALISTS, REPEATS = 3, 2


def _lrsearch(*args: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-c", "import sys; from lrsearch.cli import main; "
                           "sys.exit(main(sys.argv[1:]))", *args], cwd=cwd, text=True,
                          capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"lrsearch {' '.join(args)} exited {done.returncode}: "
                         f"{done.stderr.strip()[-500:]}")
    return done.stdout


def _cost(trials: list[optuna.trial.FrozenTrial]) -> tuple[int, float]:
    return (sum(t.user_attrs.get(TrialAttr.ITERATIONS, 0) for t in trials),
            sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials
                if t.datetime_complete and t.datetime_start))


def one_study(work: Path, task: str, seed: int, trials: int) -> dict:
    name = f"{task}-stability-{seed}"
    storage = f"sqlite:///{work / 'stability.db'}"
    _lrsearch("optimize", "--demo", task, "--trials", str(trials), "--seed", str(seed),
              "--finalists", str(FINALISTS), "--repeats", str(REPEATS), "--storage", storage,
              "--study", name, "--runs-dir", str(work / name), "-q", cwd=work)
    found = json.loads(_lrsearch("best", "--json", "--storage", storage, "--study", name,
                                 cwd=work))
    candidates = found["finalists"]  # the repeated searched schedules and the baselines
    single = max(candidates, key=lambda f: (f["dice_by_round"]["0"], -f["trial"]))
    repeated = max(candidates, key=lambda f: (f["mean"], -f["trial"]))
    study = optuna.load_study(study_name=name, storage=storage)
    finished = study.get_trials(deepcopy=False)
    repeats = [t for t in finished if t.user_attrs.get(TrialAttr.REPEAT_OF) is not None]
    search = [t for t in finished if t.user_attrs.get(TrialAttr.REPEAT_OF) is None]
    return {"task": task, "seed": seed, "single": single, "repeated": repeated,
            "searched": sum(not f["label"] for f in candidates),
            "stays": single["trial"] == repeated["trial"],
            "regret": repeated["mean"] - single["mean"], "verdict": found["verdict"],
            "vs": found["vs_baseline"], "search_cost": _cost(search),
            "repeat_cost": _cost(repeats)}


def _runs(f: dict) -> str:
    dice = ", ".join(f"{d:.4f}" for _, d in sorted(f["dice_by_round"].items()))
    label = f", {f['label']}" if f["label"] else ""
    return (f"trial {f['trial']}{label} ({f['schedule_text']}): runs {dice}; mean {f['mean']:.4f}, "
            f"spread {f['spread']:.4f}")


def _payoff(vs: dict) -> str:
    """The speed-up figures of ``best --json`` (on means once the leader has repeats)."""
    if vs is None or vs.get("delta_dice") is None:
        return "no figures"
    basis = vs.get("basis", "single runs")
    reached = vs.get("iterations_to_baseline_dice")
    rounds = vs.get("iterations_to_baseline_dice_by_round") or {}
    text = (f"Δ Dice {vs['delta_dice']:+.4f} ({basis}); iterations to your config's Dice: "
            f"{reached if reached is not None else vs.get('reason')}")
    if rounds:
        text += " (seed by seed: " + ", ".join(
            "not reached" if k is None else str(k) for _, k in sorted(rounds.items())) + ")"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", choices=sorted(DEMOS), default=["brain", "tissue"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")
    work = (args.work or Path(tempfile.mkdtemp(prefix="lrsearch-stability-"))).absolute()
    work.mkdir(parents=True, exist_ok=True)
    print(f"work folder {work}; {args.trials} trials per study, then the top {FINALISTS} and "
          f"your config x {REPEATS} fresh seeds; seeds {args.seeds}", flush=True)
    for task in args.tasks:
        results = []
        for seed in args.seeds:
            r = one_study(work, task, seed, args.trials)
            results.append(r)
            (it, s), (rit, rs) = r["search_cost"], r["repeat_cost"]
            print(f"\n{task}, study seed {seed}: {r['searched']} searched finalist"
                  f"{'s' * (r['searched'] != 1)} and your config\n"
                  f"  single-run winner:  {_runs(r['single'])}\n"
                  f"  repeated winner:   {_runs(r['repeated'])}\n"
                  f"  the same schedule: {'yes' if r['stays'] else 'no'}; regret of the "
                  f"single-run pick {r['regret']:+.4f} Dice\n"
                  f"  verdict: {r['verdict']['line']}\n"
                  f"  vs your config: {_payoff(r['vs'])}\n"
                  f"  cost: search {it} it, {s:.0f} s; repeats {rit} it, {rs:.0f} s "
                  f"(+{rs / s:.0%})", flush=True)
        stays = sum(r["stays"] for r in results)
        regrets = [r["regret"] for r in results]
        print(f"\n{task}: the single-run winner stayed the winner in {stays} of {len(results)} "
              f"studies; regret of the single-run pick: mean {statistics.mean(regrets):+.4f}, "
              f"max {max(regrets):+.4f} Dice", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
