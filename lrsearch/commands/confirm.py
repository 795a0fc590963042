"""``lrsearch confirm``: retrain a study's finalists and baselines on fresh seeds."""

from __future__ import annotations

from pathlib import Path

from lrsearch.commands.options import (
    add_repeat_arguments,
    add_slot_arguments,
    add_storage_argument,
    add_study_argument,
    storage_url,
)

NAME = "confirm"
HELP = "retrain the best schedules and the baselines on fresh seeds; verdict with interval"
DESCRIPTION = (
    "Retrain the study's top schedules (--finalists, by its objective) and every baseline on "
    "--repeats fresh seeds, the same seeds for all, as trials of the same study (resumable, "
    "spread over workers, never repeated twice), then show the verdict: mean whole-volume Dice "
    "per schedule and a paired interval against your config. `lrsearch optimize` does this "
    "itself once the study holds its trials.")


def configure(parser) -> None:
    add_study_argument(parser)
    add_storage_argument(parser)
    parser.add_argument("-c", "--config", type=Path, default=None,
                        help="the study's NiftyNet INI (default: the one it was created from)")
    add_repeat_arguments(parser, "now", space=False)
    add_slot_arguments(parser)


def run(args) -> int:
    from lrsearch.commands.optimize import run_with_progress
    from lrsearch.run import plan as run_plan
    from lrsearch.run import study as run_study
    from lrsearch.run.studies import load_study

    url = storage_url(args)
    study = load_study(url, args.study)
    options = run_study.stored_options(
        study, url, args.config, slots=run_plan.make_slots(args.jobs, args.gpus),
        finalists=args.finalists, repeats=args.repeats,
        **({"heartbeat": args.heartbeat} if args.heartbeat else {}))
    return run_with_progress(args, options, run_study.confirm)
