"""Does lrsearch find better schedules for less compute than the usual choices?

On the demo data, per seed, side by side:

  (a) lrsearch defaults: TPE + the default pruner (successive halving) over every family
      (studies/default.toml); --compare-pruners median adds the same search with the median rule;
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

    python benchmarks/search_efficiency.py [--trials 30] [--max-iter 200] [--seeds 0 1 2]
        [--compare-pruners median] [--work DIR]
    python benchmarks/search_efficiency.py --quick     # 4 trials, 20 iterations, one seed

``--work DIR`` continues an earlier run's folder: arms whose studies are finished there are
read back, not run again (studies are named by arm, pruner and seed).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import optuna

from lrsearch.demo import ensure_demo_data
from lrsearch.monitor.progress import QUIET, Progress
from lrsearch.monitor.records import StudyAttr
from lrsearch.paths import DEFAULT_SPACE, DEMO_CONFIG
from lrsearch.run import range_test as run_range_test
from lrsearch.run import study as run_study
from lrsearch.run import workers
from lrsearch.run.payoff import checkpoint_curve
from lrsearch.run.plan import StudyOptions
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


def _plan(work: Path, name: str, space: Path, trials: int, max_iter: int, seed: int,
          objective: str | None = None):
    options = StudyOptions(DEMO_CONFIG, space, study_name=name,
                           storage_url=f"sqlite:///{work / 'bench.db'}", trials=trials, seed=seed,
                           max_iter=max_iter, runs_dir=work / name, objective=objective)
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
    progress = Progress(plan.trials, QUIET)
    workers.Workers(study, plan, progress).run()
    progress.close()
    return study


def _spent(study: optuna.Study) -> int:
    """Training iterations the study's trials ran."""
    return sum(t.user_attrs.get("iterations", 0) for t in study.trials)


def _iterations(study: optuna.Study) -> list[tuple[int, float]]:
    """(cumulative training iterations, best whole-volume Dice so far) trial by trial."""
    out, total, best = [], 0, float("nan")
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        total += t.user_attrs.get("iterations", 0)
        if t.state == optuna.trial.TrialState.COMPLETE and not t.value <= best:
            best = t.value
        out.append((total, best))
    return out


def _reading(ctx: TrialContext, trial: optuna.trial.FrozenTrial, target: float,
             volume_target: float) -> dict:
    """When ``trial`` reaches (c)'s final validation Dice and its final whole-volume Dice."""
    curve = checkpoint_curve(ctx, trial)
    return {"text": trial.user_attrs.get("schedule_text"), "dice": trial.user_attrs["final_dice"],
            "reached": first_reaching(trial.intermediate_values, target), "curve": curve,
            "volume_reached": first_reaching(dict(curve), volume_target)}


def _with_pruner(work: Path, kind: str) -> Path:
    """The default space with another [pruner] kind."""
    path = work / f"default-{kind}.toml"
    text = DEFAULT_SPACE.read_text()
    default_kind = f'kind = "{load_space(DEFAULT_SPACE).pruner}"'
    assert default_kind in text, default_kind
    path.write_text(text.replace(default_kind, f'kind = "{kind}"'))
    return path


def one_seed(work: Path, seed: int, trials: int, max_iter: int, lr_find_iters: int,
             compare: list[str], fast_objective: str | None, half: bool) -> dict:
    kind = load_space(DEFAULT_SPACE).pruner
    tpe = _run(_plan(work, f"a-tpe-{kind}-{seed}", DEFAULT_SPACE, trials, max_iter, seed))
    variants = {}  # arm: (plan, label), the default search changed in one respect
    if fast_objective:
        variants["a+"] = (_plan(work, f"a-tpe-{kind}-{fast_objective.replace(':', '')}-{seed}",
                                DEFAULT_SPACE, trials, max_iter, seed, objective=fast_objective),
                          fast_objective)
    if half:
        variants["a/2"] = (_plan(work, f"a-tpe-{kind}-half-{seed}", DEFAULT_SPACE, trials,
                                 max_iter // 2, seed), f"max_iter {max_iter // 2}")
    variant_studies = {arm: _run(plan) for arm, (plan, _) in variants.items()}
    others = {other: _run(_plan(work, f"a-tpe-{other}-{seed}", _with_pruner(work, other),
                                trials, max_iter, seed))
              for other in compare if other != kind}
    rnd = _run(_plan(work, f"b-random-{seed}", DEFAULT_SPACE, trials, max_iter, seed),
               optuna.samplers.RandomSampler(seed), optuna.pruners.NopPruner())
    space = work / "baselines.toml"
    space.write_text(BASELINE_SPACE)
    nop = optuna.pruners.NopPruner()

    def baseline(name, params):
        plan = _plan(work, f"{name}-{seed}", space, 1, max_iter, seed)
        return _run(plan, optuna.samplers.RandomSampler(seed), nop, params).trials[0]

    constant = baseline("c-constant", {"family": "constant", "base_lr": NIFTYNET_LR})
    poly = baseline("d-poly", {"family": "polynomial", "base_lr": NNUNET_ADAM_LR,
                               "polynomial.power": 0.9, "polynomial.end_ratio": 0.0})
    plan = _plan(work, f"e-lrfind-{seed}", space, 1, max_iter, seed)
    ctx = plan.context
    stored = run_study.load_or_create(plan).user_attrs.get(StudyAttr.LR_FIND)
    if stored:  # --work: (e) ran with this range test
        found = search_range_test.RangeTest.from_dict(stored)
    else:
        found = run_range_test.run_range_test(ctx.config, ctx.runs_dir / "lr-find", ctx.split_file,
                                      ctx.runtime, iterations=lr_find_iters)
        run_study.load_or_create(plan).set_user_attr(StudyAttr.LR_FIND, found.to_dict())
    one_cycle_params = {"family": "one_cycle", "one_cycle.pct_start": 0.3,
                        "one_cycle.anneal_strategy": "cos", "one_cycle.div_factor": 25.0,
                        "one_cycle.final_div_factor": 1e4, "one_cycle.three_phase": False}
    one_cycle = baseline("e-one-cycle", {**one_cycle_params, "base_lr": found.last_stable_lr})
    one_cycle_steep = baseline("e-one-cycle-steepest",
                               {**one_cycle_params, "base_lr": found.steepest_lr})

    target = constant.intermediate_values[max(constant.intermediate_values)]
    # ctx (of any plan here: same config, data and runtime) segments and scores checkpoints
    readings = {"a": _reading(ctx, tpe.best_trial, target, constant.value)}
    for arm, study in variant_studies.items():
        readings[arm] = _reading(ctx, study.best_trial, target, constant.value)
        readings[arm].update(share=_spent(study) / _spent(rnd), objective=variants[arm][1])
    compared = {other: (study.best_value, _spent(study) / _spent(rnd))
                for other, study in others.items()}
    return {
        "seed": seed, "pruner": kind, "compared": compared,
        "curve_a": _iterations(tpe), "curve_b": _iterations(rnd),
        "best_a": tpe.best_value, "best_b": rnd.best_value,
        "c": constant.value, "d": poly.value, "e": one_cycle.value,
        "e_steepest": one_cycle_steep.value, "lr_find": found.summary(),
        "target": target, "pruning_share": _spent(tpe) / _spent(rnd),
        "readings": readings, "c_curve": checkpoint_curve(ctx, constant),
    }


def _curve_text(curve: list[tuple[int, float]]) -> str:
    return ", ".join(f"{i}:{d:.4f}" for i, d in curve)


def _when(iteration: int | None, max_iter: int) -> str:
    return (f"at iteration {iteration} = {iteration / max_iter:.0%}" if iteration is not None
            else "never")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--lr-find-iterations", type=int, default=search_range_test.ITERATIONS)
    parser.add_argument("--compare-pruners", nargs="*", default=[], metavar="KIND",
                        help="also run (a) with these [pruner] kinds (median, hyperband, curve, "
                             "top_k_rung, none)")
    parser.add_argument("--fast-objective", default="dice_auc", metavar="OBJECTIVE",
                        help="objective of arm (a+), the same search aimed at training speed "
                             "(default: dice_auc; 'none' skips the arm)")
    parser.add_argument("--no-half", action="store_true",
                        help="skip arm (a/2), the default search at half the iterations")
    parser.add_argument("--work", type=Path, default=None,
                        help="work folder to use (and continue); default: a new one")
    parser.add_argument("--quick", action="store_true",
                        help="4 trials of 20 iterations, one seed, a 20-iteration range test")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.max_iter, args.seeds, args.lr_find_iterations = 4, 20, [0], 20
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")  # Optuna's experimental/heartbeat notes, as optimize does
    work = args.work or Path(tempfile.mkdtemp(prefix="lrsearch-efficiency-"))
    work.mkdir(parents=True, exist_ok=True)
    ensure_demo_data(Path("demo_data"))  # demo.ini reads ./demo_data
    print(f"work folder {work}; {args.trials} trials x {args.max_iter} iterations; "
          f"seeds {args.seeds}", flush=True)
    results = []
    for seed in args.seeds:
        started = time.monotonic()
        r = one_seed(work, seed, args.trials, args.max_iter, args.lr_find_iterations,
                     args.compare_pruners,
                     None if args.fast_objective == "none" else args.fast_objective,
                     not args.no_half)
        results.append(r)
        print(f"\nseed {seed} ({(time.monotonic() - started) / 60:.1f} min); {r['lr_find']}")
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
                  f"{_when(reading['reached'], args.max_iter)}; (c)'s final whole-volume Dice "
                  f"{r['c']:.4f}: {_when(reading['volume_reached'], args.max_iter)} "
                  f"(target ≤ 50 %)")
            if "share" in reading:
                print(f"      ({arm}) [{reading['objective']}] ran {reading['share']:.0%} of "
                      f"(b)'s training iterations")
        print(f"  (a) ran {r['pruning_share']:.0%} of (b)'s training iterations (target ≤ 50 %)"
              f"; best Dice (a) − (b) = {r['best_a'] - r['best_b']:+.4f} (target ≥ −0.01)")
        for other, (best, share) in r["compared"].items():
            print(f"  (a) with the {other} pruner instead: best {best:.4f} "
                  f"((a) − (b) = {best - r['best_b']:+.4f}), {share:.0%} of (b)'s iterations")
    if len(results) > 1:
        print("\nover seeds (mean, min … max):")
        for key in ("best_a", "best_b", "c", "d", "e", "e_steepest", "pruning_share"):
            values = [r[key] for r in results]
            print(f"  {key:14s} {statistics.mean(values):.4f}  "
                  f"{min(values):.4f} … {max(values):.4f}")


if __name__ == "__main__":
    main()
