"""Cost of a validation round: the study's fixed windows against NiftyNet's random ones.

    python benchmarks/validation_cost.py [--runtime tf2] [--iterations 60] [--repeats 2]

Trains configs/demo.ini (HighRes3DNet, 16^3 windows, batch 2, validation every 10 iterations
on 2 batches) in lrsearch's NiftyNet application as a trial's child does, without the final
evaluation, alternately with the study's validation seed (fixed windows) and without it
(NiftyNet's random windows), both with the same training seed. From NiftyNet's own
per-iteration times it prints: the first validation round (it also runs the validation branch
for the first time and, with fixed windows, reads and crops them all), the median of the later
rounds, and that as a fraction of the training iterations between two rounds.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lrsearch.demo import ensure_demo_data  # noqa: E402
from lrsearch.engines.runtime import get_runtime  # noqa: E402
from lrsearch.nifty import contract  # noqa: E402
from lrsearch.nifty.config import load_config  # noqa: E402
from lrsearch.nifty.console import parse_line  # noqa: E402
from lrsearch.paths import DEFAULT_SPACE, DEMO_CONFIG  # noqa: E402
from lrsearch.run import study as run_study  # noqa: E402
from lrsearch.run.plan import StudyOptions  # noqa: E402

TRAINING_SEED = 7
VALIDATION_SEED = 11


def validation_cost(events, every: int) -> dict:
    """The first round's seconds, the later rounds' median, and that median over the time of
    the ``every`` training iterations between two rounds (median iteration)."""
    rounds: dict[int, float] = {}
    training = []
    for event in events:
        if event.phase == "validation":
            rounds[event.iteration] = rounds.get(event.iteration, 0.0) + event.seconds
        else:
            training.append(event.seconds)
    if len(rounds) < 2 or not training:
        raise SystemExit(f"fewer than 2 validation rounds ({len(rounds)}): raise --iterations")
    first, *later = rounds.values()
    round_seconds = statistics.median(later)
    return {"first": first, "later": round_seconds,
            "fraction": round_seconds / (every * statistics.median(training))}


def train(work: Path, name: str, runtime, iterations: int, fixed: bool) -> dict:
    """One training run of the demo config; its validation cost."""
    cfg = load_config(work / "demo.ini")
    folder = work / name
    folder.mkdir()
    config = folder / contract.TRIAL_CONFIG
    cfg.with_values({"SYSTEM": {"model_dir": str(folder / contract.MODEL)},
                     "TRAINING": {"max_iter": iterations}}).write(config)
    env = {contract.SEED_ENV: str(TRAINING_SEED)}
    if fixed:
        env.update(contract.validation_environment(VALIDATION_SEED,
                                                   folder / contract.VALIDATION_WINDOWS))
    done = subprocess.run(runtime.command([contract.train_args(config)]), cwd=folder,
                          env=runtime.environment(env), text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, check=False)
    (folder / contract.CONSOLE_LOG).write_text(done.stdout)
    if done.returncode:
        raise SystemExit(f"{name}: NiftyNet failed; see {folder / contract.CONSOLE_LOG}")
    return validation_cost((e for e in map(parse_line, done.stdout.splitlines()) if e),
                           cfg.validation_every_n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", default="tf2", choices=("tf2", "tf1"))
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lrsearch-validation-cost-"))
    ensure_demo_data(work / "demo_data")
    cfg = load_config(DEMO_CONFIG)
    changes = {section: {"path_to_search": str(work / "demo_data")}
               for section in cfg.input_sections}
    cfg.with_values(changes).write(work / "demo.ini")
    # the split a study of this config validates on (prepare writes it)
    plan = run_study.prepare(StudyOptions(work / "demo.ini", DEFAULT_SPACE, trials=1,
                                          storage_url=f"sqlite:///{work / 'split.db'}",
                                          runs_dir=work / "study"))
    load_config(work / "demo.ini").with_values(
        {"SYSTEM": {"dataset_split_file": str(plan.context.split_file)}}).write(work / "demo.ini")
    runtime = get_runtime(args.runtime)

    runs: dict[str, list[dict]] = {"fixed": [], "random": []}
    for k in range(args.repeats):  # alternating, so both see the same machine
        for side in runs:
            runs[side].append(train(work, f"{side}-{k}", runtime, args.iterations,
                                    side == "fixed"))
            print(f"run {k} {side}: " + ", ".join(f"{key} {value:.3f}"
                                                 for key, value in runs[side][-1].items()),
                  flush=True)

    print(f"\nconfigs/demo.ini, {args.iterations} iterations, validation every "
          f"{cfg.validation_every_n} on {cfg.validation_max_iter} batches of {cfg.batch_size} "
          f"windows, {args.repeats} runs each, {args.runtime} (medians):")
    for side, label in (("fixed", "fixed windows (lrsearch)"), ("random", "random (NiftyNet)")):
        def med(key, side=side):
            return statistics.median(r[key] for r in runs[side])
        print(f"  {label:25} first round {med('first'):.3f} s, later rounds {med('later'):.3f} s "
              f"= {med('fraction'):.1%} of the training between two rounds")
    print(f"  work directory: {work}")


if __name__ == "__main__":
    main()
