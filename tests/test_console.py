"""Parsing NiftyNet's console and log lines (formats as NiftyNet 0.6.0 prints them)."""

import math

from lrsearch.nifty.console import ValidationRounds, parse_line

CONSOLE_TRAIN = ("\x1b[1mINFO:niftynet:\x1b[0m training iter 4, total_loss=0.5556, "
                 "loss=0.5555, lr=0.0003, dice_fg=0.25 (0.137380s)\n")
CONSOLE_VALID = ("\x1b[1mINFO:niftynet:\x1b[0m     validation iter 10, total_loss=0.3962, "
                 "loss=0.3961, lr=0.0003, dice_fg={} (0.043569s)\n")
FILE_LOG = ("INFO:niftynet:2026-11-27 06:17:06,988: training iter 1, "
            "total_loss=0.517035722732544, loss=0.5169000625610352 (2.709047s)\n")


def test_training_line_from_console():
    event = parse_line(CONSOLE_TRAIN)
    assert event.phase == "training"
    assert event.iteration == 4
    assert event.values == {"total_loss": 0.5556, "loss": 0.5555, "lr": 0.0003, "dice_fg": 0.25}
    assert math.isclose(event.seconds, 0.13738)
    assert not event.diverged


def test_validation_line_and_file_log_format():
    event = parse_line(CONSOLE_VALID.format("0.8"))
    assert (event.phase, event.iteration, event.values["dice_fg"]) == ("validation", 10, 0.8)
    logged = parse_line(FILE_LOG)
    assert (logged.phase, logged.iteration) == ("training", 1)
    assert logged.values["loss"] == 0.5169000625610352


def test_other_lines_are_not_iterations():
    assert parse_line("\x1b[1mINFO:niftynet:\x1b[0m iter 10 saved: /m/models/model.ckpt\n") is None
    assert parse_line("INFO:niftynet: inference iter 3,  (0.27s)") is None
    assert parse_line("Traceback (most recent call last):") is None


def test_nan_and_inf_mark_divergence():
    event = parse_line("INFO:niftynet: training iter 7, total_loss=nan, loss=inf (0.1s)")
    assert event.diverged
    assert math.isnan(event.values["total_loss"]) and math.isinf(event.values["loss"])


def test_validation_rounds_average_windows_of_one_iteration():
    rounds = ValidationRounds("dice_fg")
    lines = [CONSOLE_TRAIN.replace("iter 4", "iter 10"),
             CONSOLE_VALID.format("0.5"), CONSOLE_VALID.format("0.7"),
             CONSOLE_TRAIN.replace("iter 4", "iter 11")]
    done = [rounds.feed(parse_line(line)) for line in lines]
    assert done[:3] == [None, None, None]
    iteration, mean = done[3]
    assert iteration == 10 and math.isclose(mean, 0.6)
    assert rounds.close() is None


def test_last_round_closes_at_end_of_stream():
    rounds = ValidationRounds("dice_fg")
    rounds.feed(parse_line(CONSOLE_VALID.format("0.9")))
    rounds.feed(parse_line(CONSOLE_VALID.replace("iter 10", "iter 20").format("0.4")))
    assert rounds.close() == (20, 0.4)
