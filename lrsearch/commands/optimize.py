"""``lrsearch optimize``: run or continue a study."""

from __future__ import annotations

from pathlib import Path

from lrsearch.commands.options import (
    add_config_arguments,
    add_repeat_arguments,
    add_runtime_arguments,
    add_slot_arguments,
    add_storage_argument,
    add_study_argument,
    build_reporter,
    storage_url,
)
from lrsearch.paths import DEFAULT_SPACE, DEMO_DATA_DIR, DEMO_TISSUE_DATA_DIR

NAME = "optimize"
HELP = "run (or continue) a study of LR schedules"
DESCRIPTION = (
    "Run an Optuna study in which every trial is a NiftyNet training run with a sampled "
    "learning-rate schedule. Without -c, runs on a built-in demo: --demo brain (the default; "
    f"data written to ./{DEMO_DATA_DIR} on first use) or --demo tissue (./{DEMO_TISSUE_DATA_DIR})."
)


def configure(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--trials", type=int, default=50,
                        help="finished trials the study should hold; re-running continues up "
                             "to this total (default: 50)")
    add_study_argument(parser, "default: the config file's name")
    add_storage_argument(parser)
    parser.add_argument("--space", type=Path, default=None,
                        help="search space TOML (default: studies/default.toml, every family)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="start no trial (searched, or a finalist repeat) after this many "
                        "seconds")
    parser.add_argument("--seed", type=int, default=None,
                        help="sampler seed; each trial's training seed derives from it")
    parser.add_argument("--max-iter", type=int, default=None,
                        help="training iterations per trial (default: the space's, else the "
                             "config's max_iter)")
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help="where trials train (default: <model_dir>/<study>/); put it on "
                             "shared storage when several nodes work on one study, so a "
                             "re-queued trial resumes from its checkpoint anywhere")
    parser.add_argument("--checkpoint-store", type=Path, default=None, metavar="DIR",
                        help="an Optuna artifact store (a folder every node can reach) that "
                             "keeps each trial's latest checkpoint, so a re-queued trial resumes "
                             "on a node that cannot see its run folder; recorded on the study")
    add_slot_arguments(parser)
    parser.add_argument("--objective", default=None,
                        help="final_dice, dice_auc or iters_to:<dice> (default: the space's "
                             "objective, else final_dice); see README 'which objective when'")
    parser.add_argument("--max-failures", type=int, default=None, metavar="K",
                        help="stop when K trials in a row failed the same way (default: 3; "
                             "0: never), with exit status 1")
    parser.add_argument("--baselines", default=None, metavar="LIST",
                        help="reference schedules run first as trials, comma-separated: "
                             "config (your INI as written: constant lr, its optimiser), poly "
                             "(nnU-Net's poly 0.9 at the INI's lr), one-cycle (peaking at the "
                             "LR range test's steepest descent; needs --lr-bounds auto); none "
                             "for no baseline. They count toward --trials, are never pruned "
                             "and are queued once per study (default: the space's baselines, "
                             "else config)")
    add_repeat_arguments(parser, "once the study holds its trials")
    parser.add_argument("--lr-bounds", choices=("auto",), default=None,
                        help="auto: run the LR range test once per study and search base_lr "
                             "within its suggested range")
    add_runtime_arguments(parser, default_text="the space's runtime, else tf2")
    parser.add_argument("--no-fork-server", action="store_true",
                        help="start every trial as a new process that imports TensorFlow "
                             "(about 3 s each) instead of forking it from one that already "
                             "has; for a node where forking misbehaves")


def run(args) -> int:
    from lrsearch.demo import config_or_demo
    from lrsearch.errors import ConfigError
    from lrsearch.run import plan as run_plan
    from lrsearch.run import study as run_study
    from lrsearch.search.baselines import parse_baselines

    baselines = None
    if args.baselines is not None:  # refused before the demo's data is written
        try:
            baselines = parse_baselines(args.baselines)
        except ValueError as error:
            raise ConfigError(str(error)) from None
    options = run_plan.StudyOptions(
        config=config_or_demo(args.config, args.demo),
        space=args.space or DEFAULT_SPACE,
        study_name=args.study,
        storage_url=storage_url(args),
        trials=args.trials,
        timeout=args.timeout,
        seed=args.seed,
        max_iter=args.max_iter,
        runs_dir=args.runs_dir,
        runtime=args.runtime,
        python=args.python,
        fork_server=not args.no_fork_server,
        slots=run_plan.make_slots(args.jobs, args.gpus),
        objective=args.objective,
        lr_bounds=args.lr_bounds,
        baselines=baselines,
        checkpoint_store=args.checkpoint_store,
        finalists=args.finalists,
        repeats=args.repeats,
        **({"heartbeat": args.heartbeat} if args.heartbeat else {}),
        **({"max_failures": args.max_failures} if args.max_failures is not None else {}),
    )
    return run_with_progress(args, options, run_study.optimize)


def run_with_progress(args, options, step) -> int:
    """Prepares ``options`` (its checks and reports), runs ``step(plan, progress)`` with a
    progress display and prints the outcome: optimize and confirm alike."""
    from lrsearch.monitor.progress import Progress
    from lrsearch.run import study as run_study

    plan = run_study.prepare(options, build_reporter(args))
    progress = Progress(plan.trials, args.verbosity)
    try:
        result = step(plan, progress)
    finally:
        progress.close()
    if not args.quiet:
        print_outcome(result)
    return 0


def print_outcome(study) -> None:
    """The best trial (the best mean once finalists have repeats) and the verdict."""
    from lrsearch.monitor.records import study_info

    info = study_info(study)
    best = info.leader()
    if best is None:
        print("No trial completed yet.")
        return
    score = "Dice" if info.objective == "final_dice" else info.objective
    confirmed = info.confirmed() if info.repeats() else None
    if confirmed is None:
        print(f"Best trial {best.number}: {score} {best.value:.4f}, "
              f"{best.schedule_text or best.params}")
    else:
        runs = confirmed.leader
        head = "Best" if confirmed.winner is not None or runs.label else "Highest mean:"
        print(f"{head} trial {best.number}: mean Dice {runs.mean:.4f} over {runs.runs} runs "
              f"(spread {runs.spread:.4f}), {best.schedule_text or best.params}")
    verdict = info.verdict()
    if verdict:
        print(f"  {verdict[0].upper()}{verdict[1:]}")
    print(f"  model: {best.run_dir}")
