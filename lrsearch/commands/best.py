"""``lrsearch best``: the best trial of a study, and where its model is."""

from __future__ import annotations

import re
from pathlib import Path

from lrsearch.commands.options import add_storage_argument, add_study_argument, storage_url

NAME = "best"
HELP = "show the best trial: schedule, Dice, model"
DESCRIPTION = ("Show the best complete trial of a study: its schedule, its Dice and where its "
               "trained model is (--json for machine-readable output).")


def configure(parser) -> None:
    add_study_argument(parser)
    add_storage_argument(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--payoff", action="store_true",
                        help="segment the validation subjects with every checkpoint of your "
                             "config's trial and the best (if not done yet) to time the "
                             "speed-up; prints what it cost")


def latest_checkpoint(model_dir: Path) -> Path | None:
    """NiftyNet's newest ``models/model.ckpt-N`` in a model folder, if it is on this machine."""
    found = []
    for index in (model_dir / "models").glob("model.ckpt-*.index"):
        match = re.fullmatch(r"model\.ckpt-(\d+)\.index", index.name)
        if match:
            found.append((int(match.group(1)), index.with_suffix("")))
    return max(found)[1] if found else None


def _no_baseline(info) -> str:
    """Why there is nothing to compare the best with."""
    from lrsearch.search.baselines import CONFIG

    own = next((t for t in info.trials if t.baseline == CONFIG), None)
    if own is None:
        return "vs your config: the study has no trial of your config (baseline = \"config\")"
    return f"vs your config: its trial {own.number} is {own.state}, not complete"


def _finalists_table(verdict) -> str:
    """The finalists and baselines by mean Dice: runs, mean, spread (max − min)."""
    lines = ["  finalists  (whole-volume Dice over each one's runs; spread = max − min)"]
    for runs in verdict.ranked:
        lines.append(f"    trial {runs.trial:>4}  {runs.runs} run{'s' * (runs.runs != 1)}  "
                     f"mean {runs.mean:.4f}  spread {runs.spread:.4f}  "
                     f"{f'{runs.label}: ' if runs.label else ''}{runs.schedule_text}")
    return "\n".join(lines)


def run(args) -> int:
    import json

    from lrsearch.monitor.records import study_info, trial_summary
    from lrsearch.run.studies import ResultError, load_study

    study = load_study(storage_url(args), args.study)
    if args.payoff:
        from lrsearch.run.payoff import compute

        compute(study, message=None if args.json else print)
    info = study_info(study)
    trial = info.leader()
    if trial is None:
        counts = ", ".join(f"{n} {s}" for s, n in info.counts().items() if n) or "no trials"
        raise ResultError(f"study '{info.name}' has no complete trial yet ({counts})")
    summary = trial_summary(trial, info)
    checkpoint = latest_checkpoint(Path(summary["model_dir"])) if summary["model_dir"] else None
    summary["checkpoint"] = str(checkpoint) if checkpoint else None
    payoff = info.payoff()
    summary.update(payoff.to_json() if payoff else {"baseline": None, "vs_baseline": None})
    confirmed = info.confirmed()
    if confirmed is not None:  # runs, mean and spread per finalist; the interval
        found = confirmed.to_json()
        summary["finalists"], summary["verdict"] = found["finalists"], found["verdict"]
        summary["vs_baseline"] = {**(summary["vs_baseline"] or {}), **found["vs_baseline"]}
    else:
        summary["finalists"], summary["verdict"] = [info.runs(trial).to_json()], None
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    counts = info.counts()
    named = f"trial {trial.number}{f' ({trial.label})' if trial.label else ''}"
    head = (f"Highest mean of study '{info.name}'" if confirmed is not None and
            confirmed.status == "no_measurable_gain" else f"Best of study '{info.name}'")
    print(f"{head} ({len(info.trials)} trials, {counts['complete']} complete): {named}")
    verdict = info.verdict()
    if verdict:
        print(f"  {verdict}")
    if confirmed is not None and info.repeats():
        print(_finalists_table(confirmed))
    window = (f"; last validation window {trial.last_window_dice:.4f}"
              if trial.last_window_dice is not None else "")
    print(f"  Dice       {trial.value:.4f} (whole volumes of the validation subjects){window}")
    print(f"  schedule   {trial.schedule_text}")
    speed = (f", {trial.wall_seconds:,.0f} s" if trial.wall_seconds is not None else "") + \
        (f", {trial.iterations_per_second:.2f} it/s" if trial.iterations_per_second else "")
    print(f"  training   {trial.optimiser or '?'}, {trial.iterations} iterations{speed}")
    print(f"  {payoff.line() if payoff else _no_baseline(info)}")
    if summary["model_dir"]:
        where = (f" (checkpoint {checkpoint.name})" if checkpoint else
                 " (not on this machine)" if not Path(summary["model_dir"]).is_dir() else "")
        print(f"  model      {summary['model_dir']}{where}")
        print(f"  config     {Path(trial.run_dir) / 'trial.ini'}")
    print(f"  export     lrsearch export --trial {trial.number} -o best.ini")
    return 0
