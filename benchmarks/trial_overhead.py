"""Per-trial overhead: an lrsearch trial vs plain NiftyNet training of the same config.

Both sides train configs/demo.ini (demo data, same split, same iterations, constant lr 1e-3) on
the same runtime (NiftyNet 0.6.0 on TensorFlow 2 through lrsearch's bridge):

- plain:    ``net_run train -a niftynet...SegmentationApplication -c plain.ini`` (stock app)
- lrsearch: a one-trial study whose trial is pinned to ``constant, base_lr 1e-3``

and the figure is wall time from launch to the last training iteration line, alternating the
two sides (ABAB…) so both see the same machine. Also printed: where an lrsearch trial's fixed
cost goes (imports, graph build + session + first iteration, training) and the final
whole-volume evaluation (NiftyNet inference + Dice) as its own figure.

    python benchmarks/trial_overhead.py [--repeats 3] [--iterations 60]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

from lrsearch.demo import ensure_demo_data
from lrsearch.engines.runtime import get_runtime
from lrsearch.monitor.progress import QUIET, Progress
from lrsearch.nifty.config import load_config
from lrsearch.nifty.console import parse_line
from lrsearch.run import study as run_study
from lrsearch.run.plan import StudyOptions

REPO = Path(__file__).resolve().parents[1]
STOCK_APP = "niftynet.application.segmentation_application.SegmentationApplication"
SPACE = """
[study]
families = ["constant"]
base_lr = [1e-4, 1e-2]
optimisers = ["adam"]
"""


def plain_run(work: Path, split: Path, iterations: int, k: int) -> float:
    cfg = load_config(REPO / "configs" / "demo.ini")
    model_dir = work / f"plain-{k}"
    plain_ini = work / f"plain-{k}.ini"
    cfg.with_values({
        "SYSTEM": {"model_dir": str(model_dir), "dataset_split_file": str(split)},
        "TRAINING": {"max_iter": iterations, "lr": 1e-3},
    }).write(plain_ini)
    runtime = get_runtime("tf2")
    command = runtime.command([["train", "-a", STOCK_APP, "-c", str(plain_ini)]])
    started = time.monotonic()
    last = None
    with subprocess.Popen(command, env=runtime.environment(), cwd=work, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        for line in proc.stdout:
            event = parse_line(line)
            if event is not None and event.phase == "training":
                last = time.monotonic()
                if event.iteration == iterations:
                    break
        proc.wait()
    if last is None:
        sys.exit("plain NiftyNet did not train; see " + str(model_dir))
    return last - started


def lrsearch_run(work: Path, space: Path, iterations: int, k: int) -> dict:
    storage = f"sqlite:///{work / 'overhead.db'}"
    name = f"overhead-{k}"
    options = StudyOptions(REPO / "configs" / "demo.ini", space, study_name=name,
                           storage_url=storage, trials=1, max_iter=iterations,
                           runs_dir=work / name, repeats=0)  # one trial's overhead only
    plan = run_study.prepare(options)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    study.enqueue_trial({"family": "constant", "base_lr": 1e-3, "optimiser": "adam"})
    run_study.optimize(plan, Progress(1, QUIET))
    trial = optuna.load_study(study_name=name, storage=storage).trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE, trial.user_attrs.get("stop_reason")
    return {"wall": trial.user_attrs["wall_seconds"], **trial.user_attrs["timing"],
            "dice": trial.value}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=60)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lrsearch-overhead-"))
    import os

    os.chdir(work)  # demo.ini finds demo_data/ relative to the working directory
    ensure_demo_data(work / "demo_data")
    space = work / "space.toml"
    space.write_text(SPACE)
    # one split for both sides: the one the first lrsearch study writes
    options = StudyOptions(REPO / "configs" / "demo.ini", space, study_name="split",
                           storage_url=f"sqlite:///{work / 'split.db'}", trials=1,
                           runs_dir=work / "split")
    plan = run_study.prepare(options)
    split = plan.context.split_file

    plain, ours = [], []
    for k in range(args.repeats):
        plain.append(plain_run(work, split, args.iterations, k))
        ours.append(lrsearch_run(work, space, args.iterations, k))
        print(f"run {k}: plain {plain[-1]:.2f} s, lrsearch {ours[-1]['wall']:.2f} s "
              f"(imports {ours[-1]['imports']:.2f}, setup {ours[-1]['setup']:.2f}, "
              f"training {ours[-1]['training']:.2f}, evaluation {ours[-1]['evaluation']:.2f})",
              flush=True)

    def med(key):
        return statistics.median(r[key] for r in ours)

    p, o = statistics.median(plain), med("wall")
    print(f"\nconfigs/demo.ini, {args.iterations} iterations, {args.repeats} runs each, "
          f"NiftyNet 0.6.0 on TF 2 (median wall time, launch → last training iteration):")
    print(f"  plain NiftyNet (stock application): {p:.2f} s")
    print(f"  lrsearch trial:                     {o:.2f} s")
    print(f"  overhead ratio lrsearch / plain:    {o / p:.3f}   (target ≤ 1.10)")
    print("  lrsearch trial fixed cost: "
          f"imports {med('imports'):.2f} s, graph build + session + first iteration "
          f"{med('setup'):.2f} s, training {med('training'):.2f} s")
    print(f"  final whole-volume evaluation (NiftyNet inference + Dice): "
          f"{med('evaluation'):.2f} s")
    print(f"  work directory: {work}")


if __name__ == "__main__":
    main()
