"""``lrsearch optimize``: run or continue a study."""

from __future__ import annotations

from pathlib import Path

from lrsearch.paths import DEFAULT_SPACE, DEMO_CONFIG, DEMO_DATA_DIR

NAME = "optimize"
HELP = "run (or continue) a study of LR schedules"
DESCRIPTION = (
    "Run an Optuna study in which every trial is a NiftyNet training run with a sampled "
    "learning-rate schedule. Without -c, runs on the built-in demo data (written to "
    f"./{DEMO_DATA_DIR} on first use)."
)


def configure(parser) -> None:
    parser.add_argument("-c", "--config", type=Path,
                        help="NiftyNet INI file (default: the built-in demo config)")
    parser.add_argument("--trials", type=int, default=50,
                        help="finished trials the study should hold; re-running continues up "
                             "to this total (default: 50)")
    parser.add_argument("--study", help="study name (default: the config file's name)")
    parser.add_argument("--storage", default=None,
                        help="Optuna storage URL (default: sqlite:///lrsearch.db in the working "
                             "directory)")
    parser.add_argument("--space", type=Path, default=None,
                        help="search space TOML (default: studies/default.toml, every family)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="stop starting trials after this many seconds")
    parser.add_argument("--seed", type=int, default=None, help="sampler seed")
    parser.add_argument("--max-iter", type=int, default=None,
                        help="training iterations per trial (default: the space's, else the "
                             "config's max_iter)")
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help="where trials train (default: <model_dir>/<study>/)")


def run(args) -> int:
    from lrsearch import study
    from lrsearch.progress import Progress
    from lrsearch.storage import DEFAULT_STORAGE

    config = args.config
    if config is None:
        from lrsearch.demo import ensure_demo_data

        ensure_demo_data(DEMO_DATA_DIR)
        config = DEMO_CONFIG
    plan = study.prepare(
        config,
        args.space or DEFAULT_SPACE,
        study_name=args.study,
        storage_url=args.storage or DEFAULT_STORAGE,
        trials=args.trials,
        timeout=args.timeout,
        seed=args.seed,
        max_iter=args.max_iter,
        runs_dir=args.runs_dir,
    )
    progress = Progress(plan.trials, args.verbosity)
    try:
        result = study.optimize(plan, progress)
    finally:
        progress.close()
    if not args.quiet:
        try:
            best = result.best_trial
        except ValueError:
            print("No trial completed yet.")
        else:
            print(f"Best trial {best.number}: Dice {best.value:.4f}, "
                  f"{best.user_attrs.get('schedule_text', best.params)}")
            print(f"  model: {best.user_attrs.get('run_dir')}")
    return 0
