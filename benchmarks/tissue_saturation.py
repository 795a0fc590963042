"""Is the tissue demo still being learnt at its budget? (Unlike the brain demo, it should be.)

Trains ``configs/demo_tissue.ini`` as NiftyNet's users would, with its own constant learning
rate, for 4 x its budget N (``max_iter``), one run per seed, and scores the whole-volume
foreground Dice (mean over CSF, grey and white matter, on the study's validation subjects, as
trials are scored) of the checkpoints at N, 2N, 3N and of the final model at 4N, and each
class's Dice at N and 4N. The task leaves room for a faster schedule only if the constant rate
is still improving at N: the check is Dice(4N) - Dice(N) >= 0.03 on every seed.

    python benchmarks/tissue_saturation.py [--seeds 0 1] [--budget 200] [--factor 4] [--work DIR]

Each run trains with its seed (initial weights, windows, shuffles; lrsearch.engines.child.main),
as in benchmarks/runtime_fidelity.py. ``--work DIR`` reads back seeds that finished there
(``seed<k>.json``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import optuna  # noqa: E402

from lrsearch.demo import TISSUE_CLASSES, ensure_demo_data  # noqa: E402
from lrsearch.engines.runtime import get_runtime  # noqa: E402
from lrsearch.nifty.config import load_config  # noqa: E402
from lrsearch.nifty.metrics import foreground_dice, read_inferred  # noqa: E402
from lrsearch.paths import DEFAULT_SPACE, DEMO_TISSUE_CONFIG  # noqa: E402
from lrsearch.run import study  # noqa: E402
from lrsearch.run.payoff import checkpoint_curve  # noqa: E402
from lrsearch.run.plan import StudyOptions  # noqa: E402
from lrsearch.selfcheck import single_trial  # noqa: E402

MIN_GAIN = 0.03


def _config(work: Path, budget: int) -> tuple[Path, float]:
    """The tissue demo config over ``work``'s data, saving a checkpoint at the budget; its lr."""
    data = work / "demo_data_tissue"
    ensure_demo_data(data, task="tissue")
    cfg = load_config(DEMO_TISSUE_CONFIG)
    changes: dict[str, dict[str, object]] = {
        section: {"path_to_search": str(data)} for section in cfg.input_sections}
    changes["SYSTEM"] = {"model_dir": str(work / "models")}
    changes["TRAINING"] = {"save_every_n": budget}
    path = work / "demo_tissue.ini"
    cfg.with_values(changes).write(path)
    return path, float(cfg.get("TRAINING", "lr"))


def _class_dice(segmentations: Path, labels: dict[str, Path], subjects) -> dict[str, float]:
    """Each foreground class's whole-volume Dice (lrsearch's, on that class alone), mean over
    ``subjects``."""
    import nibabel

    found = read_inferred(segmentations)
    volumes = [(np.rint(np.asanyarray(nibabel.load(str(found[s])).dataobj)).astype(np.int64),
                np.asanyarray(nibabel.load(str(labels[s])).dataobj).astype(np.int64))
               for s in subjects]
    return {name: float(np.mean([foreground_dice(seg == c, truth == c, 2)
                                 for seg, truth in volumes]))
            for c, name in enumerate(TISSUE_CLASSES[1:], start=1)}


def _seed_run(config: Path, lr: float, work: Path, seed: int, budget: int, factor: int,
              runtime) -> dict:
    """Whole-volume Dice at every checkpoint (N, 2N, ... segmented again; the last is the
    trial's own score) and per class at N and factor*N."""
    saved = work / f"seed{seed}.json"
    if saved.is_file():
        return json.loads(saved.read_text())
    started = time.monotonic()
    trial = single_trial(config, runtime, work / f"seed{seed}", lr=lr, max_iter=factor * budget,
                         seed=seed)
    seconds = time.monotonic() - started
    if trial.state != optuna.trial.TrialState.COMPLETE:
        raise SystemExit(f"seed {seed}: {trial.state.name}: "
                         f"{trial.user_attrs.get('stop_reason', 'see the run folder')}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        options = StudyOptions(config, DEFAULT_SPACE, storage_url="sqlite:///:memory:", trials=1,
                               max_iter=factor * budget, runs_dir=work / "scoring",
                               runtime=runtime)
        plan = study.prepare(options)
    curve = dict(checkpoint_curve(plan.context, trial))
    model = Path(trial.user_attrs["run_dir"]) / "model"
    labels = plan.context.dataset.files[plan.context.config.label_sections[0]]
    subjects = sorted(trial.user_attrs["volume_dice"])
    run = {"seed": seed, "dice_n": curve[budget], "dice_kn": trial.value,
           "curve": {str(i): d for i, d in curve.items()}, "seconds": seconds,
           "classes_n": _class_dice(model / f"segmentation-{budget}" / "inferred.csv", labels,
                                    subjects),
           "classes_kn": _class_dice(model / "segmentation" / "inferred.csv", labels, subjects),
           "validation": {str(i): d for i, d in sorted(trial.intermediate_values.items())}}
    saved.write_text(json.dumps(run, indent=1))
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--budget", type=int, default=None,
                        help="N, the demo budget (default: the config's max_iter)")
    parser.add_argument("--factor", type=int, default=4, help="train to factor x N (4)")
    parser.add_argument("--runtime", default="tf2")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    budget = args.budget or int(load_config(DEMO_TISSUE_CONFIG).get("TRAINING", "max_iter"))
    work = (args.work or Path(tempfile.mkdtemp(prefix="lrsearch-tissue-"))).absolute()
    work.mkdir(parents=True, exist_ok=True)
    config, lr = _config(work, budget)
    runtime = get_runtime(args.runtime)
    kn = args.factor * budget
    print(f"work folder {work}; {DEMO_TISSUE_CONFIG.name}, constant lr {lr:g}, "
          f"N = {budget}, {args.factor}N = {kn}, seeds {args.seeds}", flush=True)
    runs = []
    for seed in args.seeds:
        run = _seed_run(config, lr, work, seed, budget, args.factor, runtime)
        runs.append(run)
        gain = run["dice_kn"] - run["dice_n"]
        curve = ", ".join(f"{i}: {d:.4f}" for i, d in run["curve"].items())
        validation = ", ".join(f"{i}: {d:.2f}" for i, d in run["validation"].items()
                               if int(i) % budget == 0)
        classes = "; ".join(
            f"{name} {run['classes_n'][name]:.3f} -> {run['classes_kn'][name]:.3f}"
            for name in TISSUE_CLASSES[1:])
        print(f"seed {seed}: whole-volume Dice at N={budget} {run['dice_n']:.4f}, at {kn} "
              f"{run['dice_kn']:.4f}, difference {gain:+.4f} "
              f"({'ok' if gain >= MIN_GAIN else 'FAILS'}: >= {MIN_GAIN}); "
              f"{run['seconds']:.0f} s wall\n"
              f"  whole-volume Dice at each checkpoint: {curve}\n"
              f"  per class, N -> {kn}: {classes}\n"
              f"  validation Dice (windows): {validation}", flush=True)
    gains = [r["dice_kn"] - r["dice_n"] for r in runs]
    print(f"difference over seeds: mean {statistics.mean(gains):+.4f}, min {min(gains):+.4f}; "
          f"check (every seed >= {MIN_GAIN}): {'PASS' if min(gains) >= MIN_GAIN else 'FAIL'}")
    return 0 if min(gains) >= MIN_GAIN else 1


if __name__ == "__main__":
    raise SystemExit(main())
