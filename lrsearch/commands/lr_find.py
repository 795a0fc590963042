"""``lrsearch lr-find``: the LR range test on a NiftyNet config."""

from __future__ import annotations

from pathlib import Path

from lrsearch.commands.options import add_config_arguments, add_runtime_arguments, build_reporter

NAME = "lr-find"
HELP = "LR range test: bound the useful learning rates with one short run"
DESCRIPTION = (
    "Train once while the learning rate grows exponentially from --min-lr to --max-lr, "
    "smooth the training loss, stop when it diverges, and print the suggested learning-rate "
    "range (steepest descent … last stable) with a plot (HTML, and PNG where a browser is "
    "available). Validation is off for this run."
)


def configure(parser) -> None:
    from lrsearch.search import range_test as search_range_test

    add_config_arguments(parser)
    parser.add_argument("--min-lr", type=float, default=search_range_test.MIN_LR,
                        help=f"first learning rate (default: {search_range_test.MIN_LR:g})")
    parser.add_argument("--max-lr", type=float, default=search_range_test.MAX_LR,
                        help=f"last learning rate (default: {search_range_test.MAX_LR:g})")
    parser.add_argument("--iterations", type=int, default=search_range_test.ITERATIONS,
                        help="iterations from min to max (default: "
                             f"{search_range_test.ITERATIONS})")
    parser.add_argument("--smoothing", type=float, default=search_range_test.SMOOTHING,
                        help=f"EMA factor of the loss (default: {search_range_test.SMOOTHING:g})")
    parser.add_argument("--seed", type=int, default=None,
                        help="training seed (initial weights, windows): the same seed, the same "
                             "losses; default: NiftyNet's own randomness")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="folder for the run, lr_find.html/.png and lr_find.json "
                             "(default: <model_dir>/lr-find)")
    add_runtime_arguments(parser, default_text="tf2")


def run(args) -> int:
    import json

    from lrsearch.demo import config_or_demo
    from lrsearch.engines.runtime import get_runtime
    from lrsearch.errors import LRSearchError
    from lrsearch.monitor import figures
    from lrsearch.nifty import config as nifty_config
    from lrsearch.nifty import dataset as nifty_dataset
    from lrsearch.nifty import windows
    from lrsearch.run import range_test as run_range_test
    from lrsearch.search import range_test as search_range_test
    from lrsearch.search import schedules

    config = config_or_demo(args.config, args.demo)
    try:
        schedules.LRRange(args.min_lr, args.max_lr, args.iterations)
        search_range_test.LossTracker(args.smoothing)
    except ValueError as error:
        raise LRSearchError(f"lr-find: {error}") from None
    cfg = nifty_config.load_config(config)
    report = build_reporter(args)
    for warning in cfg.warnings if report else ():
        report(f"warning: {warning}")
    windows.check_training(cfg)
    dataset = nifty_dataset.scan_data(cfg, report=report)
    nifty_dataset.check_labels(cfg, dataset)  # every subject trains
    out = args.output or cfg.model_dir / "lr-find"
    nifty_config.check_model_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    split = out / "training_split.csv"  # every subject trains; nothing is validated
    split.write_text("".join(f"{s},training\n" for s in dataset.subjects))
    runtime = get_runtime(args.runtime or "tf2", args.python, report)
    echo = (lambda line: print(line, end="", flush=True)) if args.verbosity >= 3 else None
    result = run_range_test.run_range_test(cfg, out, split, runtime, min_lr=args.min_lr,
                                   max_lr=args.max_lr, iterations=args.iterations,
                                   smoothing=args.smoothing, on_line=echo, seed=args.seed)
    (out / "lr_find.json").write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    html, png, why = figures.save_plot(result, out / "lr_find.html")
    if not args.quiet:
        low, high = result.bounds
        print(result.summary())
        print(f"  steepest descent: {result.steepest_lr:.3g}   last stable: "
              f"{result.last_stable_lr:.3g}   search base_lr in [{low:.3g}, {high:.3g}]")
        print(f"  plot: {html}" + (f" and {png}" if png else f" ({why})"))
    return 0
