"""``lrsearch report``: one self-contained HTML file about a study."""

from __future__ import annotations

from pathlib import Path

from lrsearch.commands.options import add_storage_argument, add_study_argument, storage_url

NAME = "report"
HELP = "write a study's results as one HTML file"
DESCRIPTION = (
    "Write one HTML file (works offline, plotly inlined) with the best trials' learning-rate "
    "schedules, validation Dice curves by family, the optimisation history, Dice by family, "
    "parameter importances, the compute pruning saved and a table of the best trials."
)


def configure(parser) -> None:
    add_study_argument(parser)
    add_storage_argument(parser)
    parser.add_argument("-o", "--output", type=Path, default=Path("report.html"),
                        help="HTML file to write (default: report.html)")
    parser.add_argument("--top", type=int, default=10,
                        help="best trials to overlay and list (default: 10)")


def run(args) -> int:
    import time

    from lrsearch.errors import LRSearchError
    from lrsearch.results.report import write_html
    from lrsearch.run.studies import load_study

    if args.top < 1:
        raise LRSearchError(f"--top must be at least 1, but got {args.top}")
    started = time.monotonic()
    study = load_study(storage_url(args), args.study)
    info = write_html(study, args.output, args.top)
    if not args.quiet:
        best = info.leader()  # the best mean once finalists have repeats
        best_text = (f"best trial {best.number}, Dice {best.value:.4f}" if best
                     else "no complete trial yet")
        print(f"wrote {args.output} (study '{info.name}', {len(info.trials)} trials, "
              f"{best_text}) in {time.monotonic() - started:.1f} s")
    return 0
