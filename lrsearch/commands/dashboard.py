"""``lrsearch dashboard``: optuna-dashboard on 127.0.0.1 for a study storage."""

from __future__ import annotations

from pathlib import Path

from lrsearch.commands.options import add_storage_argument, storage_url

NAME = "dashboard"
HELP = "watch studies in optuna-dashboard (127.0.0.1)"
DESCRIPTION = (
    "Serve optuna-dashboard on 127.0.0.1 for a storage: every trial shows its learning-rate "
    "schedule, its validation Dice curve and a note with the schedule in words and the command "
    "that reproduces it, updated while it trains. Plain `optuna-dashboard URL --artifact-dir "
    "DIR` shows the same storage."
)


def configure(parser) -> None:
    add_storage_argument(parser)
    parser.add_argument("--port", type=int, default=8080,
                        help="port on 127.0.0.1 (default: 8080; 0 picks a free one)")
    parser.add_argument("--artifact-dir", type=Path, default=None,
                        help="folder of the trials' figures (default: next to a SQLite file, "
                             "else each study's runs folder)")


def run(args) -> int:
    from lrsearch.results.dashboard import start
    from lrsearch.urls import redact

    url = storage_url(args)
    dashboard = start(url, args.port, args.artifact_dir, quiet=args.verbose < 1)
    if args.verbose < 1:
        import warnings

        # optuna-dashboard recomputes importances per request; their "regimes with less than
        # 2 trials" warnings would fill the console.
        warnings.simplefilter("ignore")
    if not args.quiet:
        print(f"optuna-dashboard for {redact(url)}: {dashboard.url}", flush=True)
        for folder in dashboard.folders:
            print(f"  trial figures from {folder}")
        if len(dashboard.folders) == 1:
            print(f"  same with plain optuna-dashboard: optuna-dashboard '{redact(url)}' "
                  f"--artifact-dir {dashboard.folders[0]}")
        print("Ctrl-C to stop.", flush=True)
    try:
        dashboard.serve()
    except KeyboardInterrupt:
        pass
    return 0
