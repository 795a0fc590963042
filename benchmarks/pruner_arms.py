"""The default pruner as a real study against unpruned random search, seed by seed.

Per ``--tasks`` task and ``--seeds`` seed, one study after the other, one trial at a time:

  (a) TPE + the default pruner (studies/default.toml's [pruner]): what ``lrsearch optimize``
      searches with, minus the config baseline (search_efficiency's arm (a));
  (b) random search over the same space, no pruning, the same trial count: the reference
      (search_efficiency's arm (b)).

Each arm prints its trials (how many stopped), training iterations, compute-seconds (trial wall
times summed: imports, set-up, training, evaluation), elapsed wall time, and best whole-volume
Dice; then (a)'s share of (b)'s compute-seconds and iterations, and Δ best = (a) − (b), per
seed and over seeds (mean, sd), against the target: ≤ 20 % of (b)'s compute-seconds with the
best within 0.005, on ≥ 3 of 4 seeds. Unlike benchmarks/pruning_replay.py, (a) is TPE
proposing after its 10 random start-up trials, and every trial's cost is measured, not
replayed. Trials are forked from the fork server (the default), in both arms.

Studies are named as search_efficiency.py names them: ``--work`` continues a folder, so a
second run with another ``--space`` (arm (a) with that TOML's pruner; its name carries the
file's stem) runs only its (a) against the (b) already there. ``--pruners`` runs several (a)
arms in one go, each the default space with another ``[pruner]`` table, written to
DIR/spaces/ (the spec reads as benchmarks/pruning_replay.py's ``--arms``:
``kind[@warmup_fraction][:top_k]``), every arm against the same (b).

    python benchmarks/pruner_arms.py --work DIR [--tasks tissue brain] [--seeds 0 1 2 3] \
        [--trials 15] [--max-iter 200] [--space studies/other.toml]
    python benchmarks/pruner_arms.py --work DIR --pruners default asha@0.25 hyperband@0.05 curve
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import optuna

from lrsearch.demo import ensure_demo_data
from lrsearch.paths import DEFAULT_SPACE, DEMOS
from lrsearch.search.space import load_space

TARGET_SHARE = 0.2
TARGET_DICE = 0.005


def _row(name: str, study: optuna.Study) -> str:
    import search_efficiency as se  # the sibling script: the same studies, names and workers

    cost = se._cost(study)
    stopped = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    return (f"  {name}: {len(study.trials)} trials ({stopped} stopped), {cost['iterations']} it, "
            f"{cost['seconds']:.0f} compute-s, elapsed {cost['elapsed']:.0f} s, best "
            f"{study.best_value:.4f}")


def one_seed(work: Path, task: str, seed: int, trials: int, max_iter: int,
             space: Path = DEFAULT_SPACE) -> dict:
    import search_efficiency as se

    kind = load_space(space).pruner
    name = f"a-tpe-{kind}" + ("" if space == DEFAULT_SPACE else f"-{space.stem}")

    def plan(name: str, space: Path = DEFAULT_SPACE):
        return se._plan(work, task, f"{name}-{seed}", space, trials, max_iter, seed)

    started = time.monotonic()
    pruned = se._run(plan(name, space))
    reference = se._run(plan("b-random"), optuna.samplers.RandomSampler(seed),
                        optuna.pruners.NopPruner())
    a, b = se._cost(pruned), se._cost(reference)
    result = {"share": a["seconds"] / b["seconds"], "iterations": a["iterations"] / b["iterations"],
              "delta": pruned.best_value - reference.best_value}
    print(f"{task}, seed {seed} ({(time.monotonic() - started) / 60:.1f} min this run):")
    print(_row(f"(a) TPE + {kind} ({'default' if space == DEFAULT_SPACE else space})", pruned))
    print(_row("(b) random, unpruned", reference))
    met = result["share"] <= TARGET_SHARE and result["delta"] >= -TARGET_DICE
    print(f"  (a) / (b): {result['share']:.0%} of the compute-seconds, {result['iterations']:.0%} "
          f"of the iterations, Δ best {result['delta']:+.4f}{'  target met' if met else ''}",
          flush=True)
    return {**result, "met": met}


def pruner_space(work: Path, spec: str) -> Path:
    """The default space with its ``[pruner]`` table replaced by the one ``spec`` names
    (``default``: the default space itself), written to ``work/spaces/``."""
    if spec == "default":
        return DEFAULT_SPACE
    from pruning_replay import parse_arm  # the sibling script's arm syntax

    kind, fraction, top_k, after_warmup, hold_until, whole_volume = parse_arm(spec)
    if whole_volume:
        raise SystemExit(f"--pruners {spec}: +wv exists only in replays (pruning_replay.py)")
    table = [f'kind = "{kind}"']
    table += [f"warmup_fraction = {fraction}"] if fraction is not None else []
    table += [f"top_k = {top_k}"] if top_k else []
    table += ["after_warmup = true"] if after_warmup else []
    table += [f"hold_until = {hold_until}"] if hold_until else []
    text = DEFAULT_SPACE.read_text()
    head, found, _ = text.partition("\n[pruner]\n")
    if not found:
        raise SystemExit(f"{DEFAULT_SPACE}: no [pruner] table to replace")
    slug = spec.replace("@", "-at-").replace(":", "-top").replace("/", "-hold").replace("+", "-")
    path = work / "spaces" / f"{slug}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head + "\n[pruner]\n" + "\n".join(table) + "\n")
    return path


def _spread(values: list[float], fmt: str) -> str:
    if len(values) < 2:
        return format(values[0], fmt)
    return f"{format(statistics.mean(values), fmt)} (sd {format(statistics.stdev(values), fmt)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--tasks", nargs="+", choices=sorted(DEMOS), default=["tissue", "brain"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("--space", type=Path, default=DEFAULT_SPACE,
                        help="arm (a)'s study TOML (its [pruner]); (b) always searches the "
                        "default space, so that a second --space reuses the finished (b)")
    parser.add_argument("--pruners", nargs="+", metavar="SPEC",
                        help="arms (a), each the default space with this pruner "
                        "(kind[@warmup_fraction][:top_k], or default); replaces --space")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    work = args.work.absolute()
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)  # the demo configs find their data relative to the working directory
    spaces = ([pruner_space(work, spec) for spec in args.pruners] if args.pruners
              else [args.space.absolute()])
    for task in args.tasks:
        ensure_demo_data(DEMOS[task][1], task=task)
        for space in spaces:
            _summary(task, args.trials, [one_seed(work, task, seed, args.trials, args.max_iter,
                                                  space) for seed in args.seeds], space)


def _summary(task: str, trials: int, results: list[dict], space: Path) -> None:
    met = sum(r["met"] for r in results)
    print(f"{task}, {load_space(space).pruner} ({space.stem}), {len(results)} seeds of "
          f"{trials} trials: (a) spends "
          f"{_spread([r['share'] for r in results], '.0%')} of (b)'s compute-seconds, "
          f"{_spread([r['iterations'] for r in results], '.0%')} of its iterations, "
          f"Δ best {_spread([r['delta'] for r in results], '+.4f')}; target (≤ "
          f"{TARGET_SHARE:.0%}, Δ ≥ −{TARGET_DICE:g}) met on {met} of {len(results)}\n",
          flush=True)


if __name__ == "__main__":
    sys.exit(main())
