"""How closely does a trial's seed reproduce its run? Same seed twice against another seed.

    python benchmarks/reproducibility.py [--runtime tf2] [--seed 7] [--other-seed 8] [--k 20]
                                         [--num-threads N] [--max-iter N] [--work DIR]

Trains the demo config (HighRes3DNet, 16^3 windows, batch 2, Adam at its constant 1e-3, the
demo's 60 iterations, validation every 10) three times as a trial does, through
``single_trial``: with ``--seed`` twice (runs A and A') and with ``--other-seed`` once (B).
``--num-threads`` overrides the config's sampler threads (the demo's is 2).

Printed, A vs A' beside A vs B: whether the first-iteration training losses are equal, the
first iteration whose loss differs, max |delta| of the training loss over the first K
iterations and over all of them, max |delta| of the validation Dice curve (the values Optuna
saw), and the difference of the final whole-volume Dice (the trial's score).

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lrsearch.demo import ensure_demo_data  # noqa: E402
from lrsearch.engines.runtime import get_runtime  # noqa: E402
from lrsearch.nifty.config import load_config  # noqa: E402
from lrsearch.nifty.console import parse_line  # noqa: E402
from lrsearch.paths import DEMO_CONFIG  # noqa: E402
from lrsearch.selfcheck import single_trial  # noqa: E402


def _config(work: Path, num_threads: int | None, max_iter: int | None) -> tuple[Path, float]:
    data = work / "demo_data"
    ensure_demo_data(data)
    cfg = load_config(DEMO_CONFIG)
    changes: dict[str, dict[str, object]] = {
        section: {"path_to_search": str(data)} for section in cfg.input_sections}
    changes["SYSTEM"] = {"model_dir": str(work / "models")}
    if num_threads is not None:
        changes["SYSTEM"]["num_threads"] = num_threads
    if max_iter is not None:
        changes["TRAINING"] = {"max_iter": max_iter}
    path = work / "demo.ini"
    cfg.with_values(changes).write(path)
    return path, float(cfg.get("TRAINING", "lr"))


def _run(config: Path, lr: float, runtime, runs: Path, seed: int) -> dict:
    started = time.monotonic()
    trial = single_trial(config, runtime, runs, lr=lr, seed=seed)
    if trial.state.name != "COMPLETE":
        raise SystemExit(f"seed {seed}: {trial.state.name}: {trial.user_attrs.get('stop_reason')}")
    assert trial.user_attrs["seed"] == seed
    losses: dict[int, float] = {}
    with open(trial.user_attrs["log_path"], encoding="utf-8", errors="replace") as log:
        for line in log:
            event = parse_line(line)
            if event is not None and event.phase == "training" and "loss" in event.values:
                losses[event.iteration] = event.values["loss"]
    print(f"  seed {seed}: {len(losses)} iterations, first loss {losses.get(1)!r}, final Dice "
          f"{trial.value:.5f}, {trial.user_attrs.get('iterations_per_second')} it/s, "
          f"{time.monotonic() - started:.0f} s ({runs})", flush=True)
    return {"losses": losses, "dice": dict(trial.intermediate_values), "final": trial.value}


def _compare(a: dict, b: dict, k: int) -> dict[str, str]:
    common = sorted(set(a["losses"]) & set(b["losses"]))
    deltas = {i: abs(a["losses"][i] - b["losses"][i]) for i in common}
    first = next((i for i in common if deltas[i] != 0.0), None)
    rounds = sorted(set(a["dice"]) & set(b["dice"]))
    dice = [abs(a["dice"][i] - b["dice"][i]) for i in rounds]
    return {
        "first-iteration loss equal": str(a["losses"].get(1) == b["losses"].get(1)),
        "first iteration that differs": str(first) if first is not None else "none",
        f"max |d loss|, iterations 1-{k}": f"{max(deltas[i] for i in common if i <= k):.2e}",
        f"max |d loss|, iterations 1-{common[-1]}": f"{max(deltas.values()):.2e}",
        f"max |d validation Dice| ({len(rounds)} rounds)": f"{max(dice):.2e}",
        "validation rounds that differ": f"{sum(d != 0.0 for d in dice)} of {len(rounds)}",
        "|d final whole-volume Dice|": f"{abs(a['final'] - b['final']):.2e}",
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", default="tf2", choices=("tf2", "tf1"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--other-seed", type=int, default=8)
    parser.add_argument("--k", type=int, default=20, help="first iterations compared apart")
    parser.add_argument("--num-threads", type=int, default=None)
    parser.add_argument("--max-iter", type=int, default=None)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="lrsearch-repro-"))
    work.mkdir(parents=True, exist_ok=True)
    config, lr = _config(work, args.num_threads, args.max_iter)
    runtime = get_runtime(args.runtime)
    threads = args.num_threads if args.num_threads is not None else "the config's"
    print(f"{args.runtime}, demo config, sampler threads: {threads}, work {work}")
    a = _run(config, lr, runtime, work / "A", args.seed)
    again = _run(config, lr, runtime, work / "A-again", args.seed)
    other = _run(config, lr, runtime, work / "B", args.other_seed)
    same, different = _compare(a, again, args.k), _compare(a, other, args.k)
    print(f"\n{'':44} {'same seed':>16} {'different seed':>16}")
    for name in same:
        print(f"{name:44} {same[name]:>16} {different[name]:>16}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
