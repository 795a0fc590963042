"""``lrsearch status``: the studies of a storage and their trials by state."""

from __future__ import annotations

from lrsearch.commands.options import add_storage_argument, storage_url

NAME = "status"
HELP = "list studies and their trial counts by state"
DESCRIPTION = "List the studies of an Optuna storage with their trials by state and best Dice."


VS_CONFIG = "Δ Dice vs config"  # the best trial's final Dice minus your config's trial's


def configure(parser) -> None:
    add_storage_argument(parser)


def run(args) -> int:
    from lrsearch.monitor.records import STATES
    from lrsearch.run.studies import open_existing_storage, storage_status
    from lrsearch.urls import redact

    url = storage_url(args)
    statuses = storage_status(open_existing_storage(url))
    print(f"{redact(url)}: {len(statuses)} {'study' if len(statuses) == 1 else 'studies'}")
    if not statuses:
        return 0
    width = max(len("study"), *(len(s.name) for s in statuses))
    header = f"{'study':<{width}}  {'trials':>6}  " + "  ".join(f"{s:>8}" for s in STATES)
    print(header + f"  {VS_CONFIG:>{len(VS_CONFIG)}}  best Dice")
    for status in statuses:
        counts = "  ".join(f"{status.counts[s]:>8}" for s in STATES)
        best = (f"{status.best[1]:.4f} (trial {status.best[0]})" if status.best else "-")
        delta = f"{status.vs_config:+.4f}" if status.vs_config is not None else "—"
        print(f"{status.name:<{width}}  {sum(status.counts.values()):>6}  {counts}  "
              f"{delta:>{len(VS_CONFIG)}}  {best}")
    return 0
