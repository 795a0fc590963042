"""Does NiftyNet on TF 2 (lrsearch's bridge) train like stock NiftyNet on TF 1.15? How fast?

    python benchmarks/runtime_fidelity.py [--iters 150] [--seeds 0 1 2] [--speed-windows 32 48]
                                          [--with-80] [--json out.json] [--python PATH]

Fidelity: the demo config (HighRes3DNet, Dice, Adam, 16^3 windows) on 12 demo subjects, a
constant learning rate, the study's deterministic split, trained on both runtimes with each
seed. Each trial trains with its seed (lrsearch.engines.child.main seeds Python, numpy and
TensorFlow's graph seed; NiftyNet 0.6.0 sets none but its initialisers' op seed), and the
sampler runs in one thread so a seed also fixes the order windows are drawn in. Printed: the
validation Dice curve of each runtime (mean over seeds), their difference and the spread between
seeds at every validation, and the final whole-volume Dice of every run. Checks: the gap between
the runtimes' mean final Dice is no larger than the spread (max - min) between seeds of the
runtime that spreads more, and |mean TF 2 - mean TF 1| <= 0.03.

Speed: iterations/s of training (first to last iteration, so imports, graph building and the
final evaluation are left out) at 32^3 and 48^3 windows (80^3 with --with-80: minutes per
iteration on TF 1 on a small CPU), batch 1, on each runtime, and the ratio TF 2 / TF 1.

Prints figures; asserts nothing about time. Exit status 1 when a fidelity check fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lrsearch.engines.checks import probe  # noqa: E402
from lrsearch.engines.runtime import Runtime, get_runtime  # noqa: E402
from lrsearch.selfcheck import Tiny, single_trial, write_tiny_config  # noqa: E402

LR = 1e-3
MAX_GAP = 0.03
FIDELITY = Tiny(window=16, volume=40, subjects=12, validation_every_n=10,
                validation_max_iter=2, batch_size=2, sample_per_volume=4, num_threads=1)


def _train(config: Path, runtime: Runtime, runs: Path, seed: int, max_iter: int) -> dict:
    started = time.monotonic()
    trial = single_trial(config, runtime, runs, lr=LR, max_iter=max_iter, seed=seed)
    if trial.state.name != "COMPLETE":
        raise SystemExit(f"{runtime.name} seed {seed}: {trial.state.name}: "
                         f"{trial.user_attrs.get('stop_reason')} "
                         f"(log {trial.user_attrs.get('log_path')})")
    return {
        "runtime": runtime.name,
        "seed": seed,
        "curve": {int(k): v for k, v in sorted(trial.intermediate_values.items())},
        "final_dice": trial.value,
        "last_window_dice": trial.user_attrs.get("last_window_dice"),
        "iterations_per_second": trial.user_attrs.get("iterations_per_second"),
        "seconds": round(time.monotonic() - started, 1),
    }


def fidelity(runtimes: dict[str, Runtime], seeds: list[int], iters: int, work: Path) -> dict:
    config = write_tiny_config(work / "fidelity", dataclasses.replace(FIDELITY, max_iter=iters))
    runs = []
    for seed in seeds:
        for name, runtime in runtimes.items():
            run = _train(config, runtime, work / "fidelity" / f"{name}-seed{seed}", seed, iters)
            print(f"  {name} seed {seed}: final Dice {run['final_dice']:.4f}, last window Dice "
                  f"{run['last_window_dice']:.4f}, {run['iterations_per_second']:.2f} it/s, "
                  f"{run['seconds']:.0f} s", flush=True)
            runs.append(run)
    return {"config": str(config), "iters": iters, "seeds": seeds, "lr": LR, "runs": runs}


def _spread(values: list[float]) -> float:
    return max(values) - min(values) if values else float("nan")


def report_fidelity(result: dict) -> bool:
    runs = result["runs"]
    by = {name: [r for r in runs if r["runtime"] == name] for name in ("tf2", "tf1")}
    steps = sorted(set.intersection(*(set(r["curve"]) for r in runs)))
    print("\nValidation Dice (dice_fg, mean over seeds) at NiftyNet's validation iterations:")
    print(f"{'iter':>6} {'TF1':>8} {'TF2':>8} {'TF2-TF1':>8} {'seed SD TF1':>12} "
          f"{'seed SD TF2':>12}")
    deltas, sds = [], []
    for step in steps:
        tf1 = [r["curve"][step] for r in by["tf1"]]
        tf2 = [r["curve"][step] for r in by["tf2"]]
        delta = statistics.mean(tf2) - statistics.mean(tf1)
        sd1 = statistics.stdev(tf1) if len(tf1) > 1 else 0.0
        sd2 = statistics.stdev(tf2) if len(tf2) > 1 else 0.0
        deltas.append(abs(delta))
        sds.append((sd1 + sd2) / 2)
        print(f"{step:>6} {statistics.mean(tf1):>8.4f} {statistics.mean(tf2):>8.4f} "
              f"{delta:>+8.4f} {sd1:>12.4f} {sd2:>12.4f}")
    if steps:
        print(f"curve: mean |TF2-TF1| {statistics.mean(deltas):.4f}, max {max(deltas):.4f}; "
              f"mean between-seed SD {statistics.mean(sds):.4f}")

    print("\nFinal whole-volume Dice (validation subjects):")
    for seed in result["seeds"]:
        pair = {r["runtime"]: r["final_dice"] for r in runs if r["seed"] == seed}
        print(f"  seed {seed}: TF1 {pair['tf1']:.4f}  TF2 {pair['tf2']:.4f}  "
              f"TF2-TF1 {pair['tf2'] - pair['tf1']:+.4f}")
    finals = {name: [r["final_dice"] for r in rs] for name, rs in by.items()}
    means = {name: statistics.mean(v) for name, v in finals.items()}
    spreads = {name: _spread(v) for name, v in finals.items()}
    gap = abs(means["tf2"] - means["tf1"])
    allowed = max(spreads.values())
    print(f"  mean: TF1 {means['tf1']:.4f}  TF2 {means['tf2']:.4f}  |gap| {gap:.4f}")
    print(f"  spread between seeds (max-min): TF1 {spreads['tf1']:.4f}  TF2 {spreads['tf2']:.4f}")
    within_noise = gap <= allowed
    within_limit = gap <= MAX_GAP
    print(f"check: |gap| {gap:.4f} <= seed spread {allowed:.4f}: "
          f"{'PASS' if within_noise else 'FAIL'}")
    print(f"check: |gap| {gap:.4f} <= {MAX_GAP}: {'PASS' if within_limit else 'FAIL'}")
    result["summary"] = {"means": means, "spreads": spreads, "gap": gap,
                         "within_seed_spread": within_noise, "within_0_03": within_limit}
    return within_noise and within_limit


def speed(runtimes: dict[str, Runtime], windows: list[int], iters: int, repeats: int,
          work: Path) -> dict:
    """Median iterations/s per runtime and window; runtimes alternate so load drifts cancel."""
    rows = {}
    for window in windows:
        volume = max(window + 8, 40)
        n = min(iters, 3) if window >= 80 else iters  # 80^3: 1-1.5 min per iteration on TF 1
        tiny = Tiny(window=window, volume=volume, subjects=4, max_iter=n,
                    validation_every_n=n, validation_max_iter=1)
        directory = work / f"speed{window}"
        config = write_tiny_config(directory, tiny)
        rates: dict[str, list[float]] = {name: [] for name in runtimes}
        for repeat in range(repeats):
            order = list(runtimes) if repeat % 2 == 0 else list(reversed(runtimes))
            for name in order:
                load = os.getloadavg()[0]
                trial = single_trial(config, runtimes[name], directory / f"{name}-{repeat}",
                                     lr=LR, max_iter=n)
                rate = trial.user_attrs.get("iterations_per_second")
                if rate:
                    rates[name].append(rate)
                shown = f"{rate:.4f} it/s ({1 / rate:.2f} s/it)" if rate else \
                    f"no rate ({trial.state.name}: {trial.user_attrs.get('stop_reason')})"
                print(f"  {window}^3 {name} run {repeat + 1}: {shown}, load average before "
                      f"{load:.1f}", flush=True)
        rows[window] = {name: statistics.median(r) if r else None for name, r in rates.items()}
        rows[window]["runs"] = rates
    print(f"\nIterations/s (median of {repeats}), HighRes3DNet, batch 1, {iters} iterations "
          "(80^3: 3), this machine:")
    print(f"{'window':>8} {'TF1':>10} {'TF2':>10} {'TF2/TF1':>8}")
    for window, rates in rows.items():
        ratio = rates["tf2"] / rates["tf1"] if rates.get("tf1") and rates.get("tf2") else None
        print(f"{str(window) + '^3':>8} {rates.get('tf1') or float('nan'):>10.4f} "
              f"{rates.get('tf2') or float('nan'):>10.4f} "
              f"{ratio if ratio is not None else float('nan'):>8.2f}")
    return {"iters": iters, "repeats": repeats, "rates": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=150, help="fidelity iterations per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--speed-windows", type=int, nargs="*", default=[32, 48])
    parser.add_argument("--speed-iters", type=int, default=8)
    parser.add_argument("--speed-repeats", type=int, default=2,
                        help="runs per runtime and window (median reported)")
    parser.add_argument("--with-80", action="store_true", help="also time 80^3 windows")
    parser.add_argument("--skip-fidelity", action="store_true")
    parser.add_argument("--python", default=None, help="as `lrsearch optimize --python`")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    runtimes = {"tf2": get_runtime("tf2"),
                "tf1": get_runtime("tf1", args.python, lambda t: print(f"tf1 setup: {t}"))}
    result: dict = {"versions": {}}
    for name, runtime in runtimes.items():
        info = probe(runtime)
        result["versions"][name] = info.versions()
        print(f"{name}: Python {info.python}, TensorFlow {info.tensorflow}, NiftyNet "
              f"{info.niftynet}, GPU: {', '.join(info.gpus) or 'none'}")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lrsearch-fidelity-"))
    print(f"working in {work}", flush=True)

    ok = True
    if not args.skip_fidelity:
        print(f"\nFidelity: {args.iters} iterations, constant lr {LR}, seeds {args.seeds}")
        result["fidelity"] = fidelity(runtimes, args.seeds, args.iters, work)
        ok = report_fidelity(result["fidelity"])
    windows = list(args.speed_windows) + ([80] if args.with_80 else [])
    if windows:
        print(f"\nSpeed: windows {windows}")
        result["speed"] = speed(runtimes, windows, args.speed_iters, args.speed_repeats, work)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
