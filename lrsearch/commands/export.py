"""``lrsearch export``: a NiftyNet config that trains with a trial's schedule."""

from __future__ import annotations

from pathlib import Path

from lrsearch.commands.options import add_storage_argument, add_study_argument, storage_url

NAME = "export"
HELP = "write a NiftyNet config (and command) that trains with a trial's schedule"
DESCRIPTION = (
    "Write the study's NiftyNet INI with a trial's optimiser, learning rate and iterations (paths "
    "absolute, its own model folder) and the schedule JSON next to it, and print the command "
    "that trains it on NiftyNet through lrsearch's scheduled application. Default: the best "
    "trial."
)


def configure(parser) -> None:
    parser.add_argument("--trial", type=int, default=None,
                        help="trial number (default: the best trial)")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="INI file to write (default: best.ini, or trialN.ini with --trial)")
    parser.add_argument("--max-iter", type=int, default=None,
                        help="train this many iterations; the schedule is rebuilt from the "
                             "trial's parameters for the longer (or shorter) run")
    add_study_argument(parser)
    add_storage_argument(parser)


def run(args) -> int:
    from lrsearch.results.export import export_trial
    from lrsearch.run.studies import ResultError, load_study

    study = load_study(storage_url(args), args.study)
    number = args.trial
    if number is None:  # the best mean once finalists have repeats
        from lrsearch.monitor.records import study_info

        best = study_info(study).leader()
        if best is None:
            raise ResultError(f"study '{study.study_name}' has no complete trial yet; "
                              "name one with --trial N")
        number = best.number
    output = args.output or Path("best.ini" if args.trial is None else f"trial{number}.ini")
    exported = export_trial(study, number, output, args.max_iter)
    if not args.quiet:
        print(f"wrote {exported.config} and {exported.schedule.name} (trial {number}, "
              f"{exported.max_iter} iterations; model folder {exported.model_dir})")
        print("train it with:")
    print(exported.command_line())
    return 0
