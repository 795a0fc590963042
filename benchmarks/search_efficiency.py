"""Does lrsearch find better schedules for less compute than the usual choices?

On each built-in task (``--tasks brain tissue``: the brain-extraction demo, which saturates
near Dice 0.97, and the 3-class tissue demo, which does not), per seed, side by side:

  (a) lrsearch defaults: TPE + the default pruner (studies/default.toml's [pruner]; successive
      halving until the figures of benchmarks/pruning_replay.py made it one short rung keeping
      the top 2) over every family; --compare-pruners median adds the same search with another rule;
  (a+) the same search with the objective meant for training speed, --objective dice_auc
      (area under the validation Dice curve); --fast-objective picks another or none;
  (a/2) the default search with half the iterations per trial (--max-iter 100 for 200): its
      schedules anneal within the shorter budget, which is how one asks lrsearch for a schedule
      that trains in half the time; --no-half skips it;
  (b) random search over the same space, no pruning, same trial count;
  (c) NiftyNet's default: constant lr 1e-3;
  (d) nnU-Net's poly schedule (power 0.9) at the initial LR of its Adam variant, 3e-4
      (nnU-Net's SGD default is 1e-2; its Adam trainers use 3e-4);
  (e) one-cycle (PyTorch's defaults: 30 % warm-up, cosine, div 25 / 1e4) with its maximum at
      the LR range test's last stable LR (Smith's reading: the top of the useful range);
  (e') the same one-cycle with its maximum at the range test's steepest descent (fastai's
      reading: lr_find's suggestion passed to fit_one_cycle).

Prints best Dice against cumulative training iterations for (a) and (b); for the best
schedules of (a), (a+) and (a/2), the iterations their validation Dice needs to reach (c)'s final
validation Dice, and, less noisy, the first saved checkpoint whose whole-volume Dice reaches
(c)'s final whole-volume Dice (each checkpoint segmented again with NiftyNet's inference); the
share of (b)'s iterations that (a) ran (pruning's saving); every arm's whole-volume Dice; the
spread over seeds.

Cost is printed per arm in training iterations and in compute-seconds (the trials' wall times
summed, from start to finish in storage, so NiftyNet's start-up, graph set-up and evaluation are
included; (e) and (e') add the range test's seconds), against each cheap baseline's cost.

On the tissue task two targets are printed per seed as met or not:
  (1) (a)'s best reaches (c)'s final whole-volume Dice at a checkpoint within 50 % of max_iter;
  (2) (a)'s best final whole-volume Dice is above (c)'s (Δ Dice at equal budget > 0);
each must hold on at least 3 of 4 seeds; the spread of Δ over seeds is printed beside it.

    python benchmarks/search_efficiency.py [--tasks brain tissue] [--trials 30] [--max-iter 200]
        [--seeds 0 1 2 3] [--compare-pruners median] [--work DIR]
    python benchmarks/search_efficiency.py --quick     # 4 trials, 20 iterations, one seed

``--work DIR`` continues an earlier run's folder: arms whose studies are finished there are
read back, not run again (studies are named by arm, pruner and seed).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import optuna

from lrsearch.demo import ensure_demo_data
from lrsearch.monitor.progress import QUIET, Progress
from lrsearch.monitor.records import StudyAttr, TrialAttr
from lrsearch.paths import DEFAULT_SPACE, DEMOS
from lrsearch.run import range_test as run_range_test
from lrsearch.run import study as run_study
from lrsearch.run import workers
from lrsearch.run.payoff import checkpoint_curve
from lrsearch.run.plan import StudyOptions, make_slots
from lrsearch.run.trial import TrialContext
from lrsearch.search import range_test as search_range_test
from lrsearch.search.payoff import first_reaching
from lrsearch.search.space import load_space

NIFTYNET_LR = 1e-3
NNUNET_ADAM_LR = 3e-4
BASELINE_SPACE = """
[study]
families = ["constant", "polynomial", "one_cycle"]
base_lr = [1e-7, 10.0]
[polynomial]
power = [0.9, 0.9]
end_ratio = [0.0, 0.0]
[one_cycle]
pct_start = [0.3, 0.3]
anneal_strategy = ["cos"]
div_factor = [25.0, 25.0]
final_div_factor = [1e4, 1e4]
three_phase = [false]
"""


def _plan(work: Path, task: str, name: str, space: Path, trials: int, max_iter: int, seed: int,
          objective: str | None = None):
    name = f"{task}-{name}"
    options = StudyOptions(DEMOS[task][0], space, study_name=name,
                           storage_url=f"sqlite:///{work / 'bench.db'}", trials=trials, seed=seed,
                           max_iter=max_iter, runs_dir=work / name, objective=objective,
                           baselines="none",  # (c), (d), (e) run as arms of their own
                           # one trial at a time: a trial's wall time is then its own cost, the
                           # same for every arm (two at once on 2 cores would double it)
                           slots=make_slots(1))
    return run_study.prepare(options)


def _run(plan, sampler=None, pruner=None, enqueue=None) -> optuna.Study:
    """Runs a plan to completion with lrsearch's workers (own sampler/pruner if given); a
    study finished by an earlier run (--work) is read back."""
    study = run_study.load_or_create(plan)
    if sampler is not None:
        study = optuna.load_study(study_name=plan.name, storage=plan.storage_url,
                                  sampler=sampler, pruner=pruner)
    if enqueue and not study.trials:
        study.enqueue_trial(enqueue)
    plan = run_study.attach(study, plan)  # as lrsearch optimize: the study's fixed windows
    progress = Progress(plan.trials, QUIET)
    workers.Workers(study, plan, progress).run()
    progress.close()
    return study


def _spent(study: optuna.Study) -> int:
    """Training iterations the study's trials ran."""
    return sum(t.user_attrs.get(TrialAttr.ITERATIONS, 0) for t in study.trials)


def _seconds(study: optuna.Study) -> float:
    """Compute-seconds the study's trials took: each trial's start to finish, summed."""
    return sum((t.datetime_complete - t.datetime_start).total_seconds()
               for t in study.get_trials(deepcopy=False)
               if t.datetime_complete and t.datetime_start)


def _elapsed(study: optuna.Study) -> float:
    """Wall time from the first trial's start to the last one's finish."""
    trials = [t for t in study.get_trials(deepcopy=False)
              if t.datetime_complete and t.datetime_start]
    return (max(t.datetime_complete for t in trials)
            - min(t.datetime_start for t in trials)).total_seconds() if trials else 0.0


def _cost(study: optuna.Study, extra_seconds: float = 0.0) -> dict:
    return {"iterations": _spent(study), "seconds": _seconds(study) + extra_seconds,
            "elapsed": _elapsed(study) + extra_seconds}


def _iterations(study: optuna.Study) -> list[tuple[int, float]]:
    """(cumulative training iterations, best whole-volume Dice so far) trial by trial."""
    out, total, best = [], 0, float("nan")
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        total += t.user_attrs.get(TrialAttr.ITERATIONS, 0)
        if t.state == optuna.trial.TrialState.COMPLETE and not t.value <= best:
            best = t.value
        out.append((total, best))
    return out


def _reading(ctx: TrialContext, trial: optuna.trial.FrozenTrial, target: float,
             volume_target: float) -> dict:
    """When ``trial`` reaches (c)'s final validation Dice and its final whole-volume Dice."""
    curve = checkpoint_curve(ctx, trial)
    return {"text": trial.user_attrs.get(TrialAttr.SCHEDULE_TEXT),
            "dice": trial.user_attrs[TrialAttr.FINAL_DICE],
            "reached": first_reaching(trial.intermediate_values, target), "curve": curve,
            "volume_reached": first_reaching(dict(curve), volume_target)}


def _with_pruner(work: Path, kind: str) -> Path:
    """The default space with another [pruner] kind, read as a [pruner] table that names only
    its kind (its documented warm-up, no top_k): the default's rung and top 2 are its own."""
    path = work / f"default-{kind}.toml"
    lines = DEFAULT_SPACE.read_text().splitlines(keepends=True)
    default_kind = f'kind = "{load_space(DEFAULT_SPACE).pruner}"'
    assert any(line.startswith(default_kind) for line in lines), default_kind
    kept = [f'kind = "{kind}"\n' if line.startswith(default_kind) else line for line in lines
            if not line.startswith(("warmup_fraction =", "top_k ="))]
    path.write_text("".join(kept))
    return path


def one_seed(work: Path, task: str, seed: int, trials: int, max_iter: int, lr_find_iters: int,
             compare: list[str], fast_objective: str | None, half: bool,
             random: bool = True) -> dict:
    kind = load_space(DEFAULT_SPACE).pruner

    def plan(name, space=DEFAULT_SPACE, n=trials, iters=max_iter, objective=None):
        return _plan(work, task, f"{name}-{seed}", space, n, iters, seed, objective)

    tpe = _run(plan(f"a-tpe-{kind}"))
    variants = {}  # arm: (plan, label), the default search changed in one respect
    if fast_objective:
        variants["a+"] = (plan(f"a-tpe-{kind}-{fast_objective.replace(':', '')}",
                               objective=fast_objective), fast_objective)
    if half:
        variants["a/2"] = (plan(f"a-tpe-{kind}-half", iters=max_iter // 2),
                           f"max_iter {max_iter // 2}")
    variant_studies = {arm: _run(p) for arm, (p, _) in variants.items()}
    others = {other: _run(plan(f"a-tpe-{other}", _with_pruner(work, other)))
              for other in compare if other != kind}
    rnd = (_run(plan("b-random"), optuna.samplers.RandomSampler(seed),
                optuna.pruners.NopPruner()) if random else None)

    def share(study):  # of (b)'s training iterations
        return _spent(study) / _spent(rnd) if rnd else float("nan")

    space = work / "baselines.toml"
    space.write_text(BASELINE_SPACE)
    nop = optuna.pruners.NopPruner()

    def baseline(name, params):
        study = _run(plan(name, space, 1), optuna.samplers.RandomSampler(seed), nop, params)
        return study.trials[0], study

    constant, constant_study = baseline("c-constant", {"family": "constant",
                                                       "base_lr": NIFTYNET_LR})
    poly, poly_study = baseline("d-poly", {"family": "polynomial", "base_lr": NNUNET_ADAM_LR,
                                           "polynomial.power": 0.9,
                                           "polynomial.end_ratio": 0.0})
    lr_plan = plan("e-lrfind", space, 1)
    ctx = lr_plan.context
    lr_study = run_study.load_or_create(lr_plan)
    stored = lr_study.user_attrs.get(StudyAttr.LR_FIND)
    seconds_file = ctx.runs_dir / "lr-find-seconds.txt"
    if stored and seconds_file.is_file():  # --work: (e) ran with this range test
        found = search_range_test.RangeTest.from_dict(stored)
        lr_find_seconds = float(seconds_file.read_text())
    else:
        started = time.monotonic()
        found = run_range_test.run_range_test(ctx.config, ctx.runs_dir / "lr-find",
                                              ctx.split_file, ctx.runtime,
                                              iterations=lr_find_iters)
        lr_find_seconds = time.monotonic() - started
        lr_study.set_user_attr(StudyAttr.LR_FIND, found.to_dict())
        seconds_file.write_text(f"{lr_find_seconds:.1f}")
    one_cycle_params = {"family": "one_cycle", "one_cycle.pct_start": 0.3,
                        "one_cycle.anneal_strategy": "cos", "one_cycle.div_factor": 25.0,
                        "one_cycle.final_div_factor": 1e4, "one_cycle.three_phase": False}
    one_cycle, one_cycle_study = baseline("e-one-cycle", {**one_cycle_params,
                                                          "base_lr": found.last_stable_lr})
    one_cycle_steep, steep_study = baseline("e-one-cycle-steepest",
                                            {**one_cycle_params, "base_lr": found.steepest_lr})
    lr_find_iterations = len(found.points)  # the iterations the range test ran

    target = constant.intermediate_values[max(constant.intermediate_values)]
    # ctx (of any plan here: same config, data and runtime) segments and scores checkpoints
    readings = {"a": _reading(ctx, tpe.best_trial, target, constant.value)}
    for arm, study in variant_studies.items():
        readings[arm] = _reading(ctx, study.best_trial, target, constant.value)
        readings[arm].update(share=share(study), objective=variants[arm][1])
    compared = {other: (study.best_value, share(study))
                for other, study in others.items()}
    range_cost = {"iterations": lr_find_iterations, "seconds": lr_find_seconds,
                  "elapsed": lr_find_seconds}
    costs = {"a": _cost(tpe), **({"b": _cost(rnd)} if rnd else {}), "c": _cost(constant_study),
             "d": _cost(poly_study), "e": _add(_cost(one_cycle_study), range_cost),
             "e'": _add(_cost(steep_study), range_cost)}
    costs.update({arm: _cost(study) for arm, study in variant_studies.items()})
    return {
        "task": task, "seed": seed, "pruner": kind, "compared": compared,
        "curve_a": _iterations(tpe), "curve_b": _iterations(rnd) if rnd else [],
        "best_a": tpe.best_value, "best_b": rnd.best_value if rnd else float("nan"),
        "c": constant.value, "d": poly.value, "e": one_cycle.value,
        "e_steepest": one_cycle_steep.value, "lr_find": found.summary(),
        "target": target, "pruning_share": share(tpe),
        "readings": readings, "c_curve": checkpoint_curve(ctx, constant), "costs": costs,
        "delta": tpe.best_value - constant.value,
        "best_trial_max_iter": tpe.best_trial.user_attrs.get(TrialAttr.MAX_ITER, max_iter),
    }


def _add(cost: dict, more: dict) -> dict:
    return {key: cost[key] + more[key] for key in cost}


def _curve_text(curve: list[tuple[int, float]]) -> str:
    return ", ".join(f"{i}:{d:.4f}" for i, d in curve)


def _when(iteration: int | None, max_iter: int) -> str:
    return (f"at iteration {iteration} = {iteration / max_iter:.0%}" if iteration is not None
            else "never")


ARM_NAMES = {"a": "TPE + default pruner", "a+": "(a) aimed at speed", "a/2": "(a) at max_iter/2",
             "b": "random, unpruned", "c": "constant 1e-3", "d": "poly 0.9 @3e-4",
             "e": "range test + one-cycle @last stable",
             "e'": "range test + one-cycle @steepest"}
MAX_FRACTION = 0.5  # tissue target (1): reach (c)'s final Dice within half the budget
MIN_SEEDS = 3  # each tissue target must hold on at least 3 of 4 seeds


def _print_seed(r: dict, max_iter: int) -> None:
    print(f"  {r['lr_find']}")
    print("  cumulative iterations → best whole-volume Dice")
    for arm in ("a", "b"):
        points = ", ".join(f"{i}:{d:.3f}" for i, d in r[f"curve_{arm}"])
        print(f"   ({arm}) {points}")
    print(f"  whole-volume Dice: (a) TPE+{r['pruner']} {r['best_a']:.4f}  (b) random "
          f"{r['best_b']:.4f}  (c) constant 1e-3 {r['c']:.4f}  (d) poly 0.9 @3e-4 "
          f"{r['d']:.4f}  (e) one-cycle @last stable {r['e']:.4f}  (e') one-cycle "
          f"@steepest {r['e_steepest']:.4f}")
    print(f"  (c)'s checkpoints, whole-volume Dice: {_curve_text(r['c_curve'])}")
    for arm, reading in r["readings"].items():
        print(f"  ({arm})'s best: {reading['text']}; whole-volume Dice {reading['dice']:.4f}")
        print(f"      checkpoints, whole-volume Dice: {_curve_text(reading['curve'])}")
        print(f"      reaches (c)'s final validation Dice {r['target']:.4f}: "
              f"{_when(reading['reached'], max_iter)}; (c)'s final whole-volume Dice "
              f"{r['c']:.4f}: {_when(reading['volume_reached'], max_iter)} (target ≤ 50 %)")
        if "share" in reading:
            print(f"      ({arm}) [{reading['objective']}] ran {reading['share']:.0%} of "
                  f"(b)'s training iterations")
    print(f"  (a) ran {r['pruning_share']:.0%} of (b)'s training iterations; best Dice "
          f"(a) − (b) = {r['best_a'] - r['best_b']:+.4f}")
    for other, (best, share) in r["compared"].items():
        print(f"  (a) with the {other} pruner instead: best {best:.4f} "
              f"((a) − (b) = {best - r['best_b']:+.4f}), {share:.0%} of (b)'s iterations")
    print("  cost per arm: training iterations, compute-seconds (trial wall times summed), "
          "elapsed; × the cheapest baseline (c)")
    c_cost = r["costs"]["c"]
    for arm, cost in r["costs"].items():
        print(f"   ({arm:3s}) {ARM_NAMES.get(arm, arm):38s} {cost['iterations']:6d} it "
              f"{cost['seconds']:7.0f} s {cost['elapsed']:7.0f} s elapsed   "
              f"×{cost['iterations'] / c_cost['iterations']:.1f} it, "
              f"×{cost['seconds'] / c_cost['seconds']:.1f} s")


def _targets(results: list[dict], max_iter: int) -> None:
    """The tissue task's two payoff targets, per seed and over seeds."""
    reached, gained = [], []
    print(f"\ntissue targets, per seed: (1) (a)'s best reaches (c)'s final whole-volume Dice "
          f"within {MAX_FRACTION:.0%} of {max_iter} iterations; (2) Δ Dice (a) − (c) > 0")
    for r in results:
        at = r["readings"]["a"]["volume_reached"]
        first = at is not None and at <= MAX_FRACTION * max_iter
        second = r["delta"] > 0
        reached.append(first)
        gained.append(second)
        print(f"  seed {r['seed']}: (1) {_when(at, max_iter)}: {'met' if first else 'NOT met'};"
              f" (2) Δ {r['delta']:+.4f} ((a) {r['best_a']:.4f} − (c) {r['c']:.4f}): "
              f"{'met' if second else 'NOT met'}")
    deltas = [r["delta"] for r in results]
    spread = (f"mean {statistics.mean(deltas):+.4f}, sd {statistics.stdev(deltas):.4f}, "
              f"min {min(deltas):+.4f} … max {max(deltas):+.4f}" if len(deltas) > 1 else "")
    needed = min(MIN_SEEDS, len(results))
    print(f"  (1) met on {sum(reached)} of {len(results)} seeds (target ≥ {needed}): "
          f"{'PASS' if sum(reached) >= needed else 'FAIL'}")
    print(f"  (2) met on {sum(gained)} of {len(results)} seeds (target ≥ {needed}): "
          f"{'PASS' if sum(gained) >= needed else 'FAIL'}; Δ over seeds {spread}")
    cs = [r["c"] for r in results]
    if len(cs) > 1:
        print(f"  seed-to-seed noise of the config itself, (c): sd {statistics.stdev(cs):.4f}, "
              f"{min(cs):.4f} … {max(cs):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", choices=sorted(DEMOS), default=["brain", "tissue"])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--lr-find-iterations", type=int, default=search_range_test.ITERATIONS)
    parser.add_argument("--compare-pruners", nargs="*", default=[], metavar="KIND",
                        help="also run (a) with these [pruner] kinds (median, hyperband, curve, "
                             "top_k_rung, none)")
    parser.add_argument("--fast-objective", default="dice_auc", metavar="OBJECTIVE",
                        help="objective of arm (a+), the same search aimed at training speed "
                             "(default: dice_auc; 'none' skips the arm)")
    parser.add_argument("--no-half", action="store_true",
                        help="skip arm (a/2), the default search at half the iterations")
    parser.add_argument("--no-random", action="store_true",
                        help="skip arm (b), unpruned random search (the costliest arm)")
    parser.add_argument("--work", type=Path, default=None,
                        help="work folder to use (and continue); default: a new one")
    parser.add_argument("--quick", action="store_true",
                        help="4 trials of 20 iterations, one seed, a 20-iteration range test")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.max_iter, args.seeds, args.lr_find_iterations = 4, 20, [0], 20
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")  # Optuna's experimental/heartbeat notes, as optimize does
    work = (args.work or Path(tempfile.mkdtemp(prefix="lrsearch-efficiency-"))).absolute()
    work.mkdir(parents=True, exist_ok=True)
    print(f"work folder {work}; tasks {args.tasks}; {args.trials} trials x {args.max_iter} "
          f"iterations; seeds {args.seeds}", flush=True)
    for task in args.tasks:
        ensure_demo_data(DEMOS[task][1], task=task)  # the configs read ./demo_data*
        results = []
        for seed in args.seeds:
            started = time.monotonic()
            r = one_seed(work, task, seed, args.trials, args.max_iter, args.lr_find_iterations,
                         args.compare_pruners,
                         None if args.fast_objective == "none" else args.fast_objective,
                         not args.no_half, not args.no_random)
            results.append(r)
            print(f"\n{task}, seed {seed} ({(time.monotonic() - started) / 60:.1f} min)")
            _print_seed(r, args.max_iter)
            sys.stdout.flush()
        if len(results) > 1:
            print(f"\n{task} over seeds (mean, sd, min … max):")
            for key in ("best_a", "best_b", "c", "d", "e", "e_steepest", "delta",
                        "pruning_share"):
                values = [r[key] for r in results if not math.isnan(r[key])]
                if len(values) < 2:  # an arm not run (--no-random: (b) and its share)
                    continue
                print(f"  {key:14s} {statistics.mean(values):.4f}  sd "
                      f"{statistics.stdev(values):.4f}  {min(values):.4f} … {max(values):.4f}")
            for arm in results[0]["costs"]:
                it = [r["costs"][arm]["iterations"] for r in results]
                sec = [r["costs"][arm]["seconds"] for r in results]
                print(f"  cost ({arm}) {statistics.mean(it):.0f} it, "
                      f"{statistics.mean(sec):.0f} compute-s on average")
        if task == "tissue":
            _targets(results, args.max_iter)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
