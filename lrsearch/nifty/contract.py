"""The contract between lrsearch and the NiftyNet child process, written down once.

A trial (and a range test, and an exported run) is a folder holding NiftyNet's config, a
schedule file and a console log; the parent starts ``python -m lrsearch.engines.child.main``
with NiftyNet ``net_run`` argument lists, the child's environment naming the schedule file
(``SCHEDULE_ENV``), giving the training seed (``SEED_ENV``), the study's validation seed
(``VALIDATION_SEED_ENV``) with the file the child logs each validation window to
(``VALIDATION_LOG_ENV``), optionally fewer of TensorFlow's graph rewrites
(``GRAPH_REWRITES_ENV``), and putting lrsearch, and nothing else, on its ``PYTHONPATH``. The
child prints the console variables ``DICE_NAME`` and ``LR_NAME`` and saves checkpoints where
NiftyNet does (``<model>/models/model.ckpt-N.*``, announced by ``iter N saved:`` lines). The
same runs may instead be requested from a fork server (``python -m
lrsearch.engines.child.server``), which forks a child that has imported TensorFlow already.

Imported by the child as well (:mod:`lrsearch.engines.child`): standard library only, Python 3.7.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from pathlib import Path

CHILD_MAIN = "lrsearch.engines.child.main"  # the module the child runs (``python -m``)
CHILD_SERVER = "lrsearch.engines.child.server"  # forks children that have imported TensorFlow
APPLICATION = "lrsearch.engines.child.application.ScheduledSegmentationApplication"
THEN = "--then"  # separates the NiftyNet runs one child makes (train, then inference)

SCHEDULE_ENV = "LRSEARCH_SCHEDULE"  # path of the run's schedule file
SEED_ENV = "LRSEARCH_SEED"  # the run's training seed (an integer); unset: NiftyNet's own randomness
SEED_RANGE = 2 ** 31  # training seeds are in [0, SEED_RANGE): numpy takes < 2**32

# the study's validation seed, in [0, SEED_RANGE): it fixes the windows of every validation
# round (lrsearch.engines.child.validation); unset: NiftyNet's random windows
VALIDATION_SEED_ENV = "LRSEARCH_VALIDATION_SEED"
VALIDATION_LOG_ENV = "LRSEARCH_VALIDATION_LOG"  # file the child appends each validation window to
# TensorFlow's graph rewrites (grappler) in the child's sessions: "on" (or unset) as TensorFlow
# sets them, "lean" only the passes that shrink the graph, once, "off" none
# (lrsearch.engines.child.sessions)
GRAPH_REWRITES_ENV = "LRSEARCH_GRAPH_REWRITES"
GRAPH_REWRITES = ("on", "lean", "off")


def graph_rewrites_mode(value):
    """The mode a ``GRAPH_REWRITES_ENV`` value asks for (``on`` when unset or blank); None
    when it names none of ``GRAPH_REWRITES``."""
    mode = (value or "").strip().lower() or "on"
    return mode if mode in GRAPH_REWRITES else None
DICE_NAME = "dice_fg"  # console variable: hard foreground Dice of each window
LR_NAME = "lr"  # console variable: the learning rate fed to the optimiser

# A trial's folder
TRIAL_CONFIG = "trial.ini"
SCHEDULE_FILE = "schedule.json"
CONSOLE_LOG = "console.log"
INFERENCE_SPLIT = "inference_split.csv"
MODEL = "model"  # NiftyNet's model_dir inside the run folder
SEGMENTATION = "segmentation"  # save_seg_dir inside model_dir
INFERRED_CSV = "inferred.csv"  # NiftyNet's list of the segmentations it wrote
VALIDATION_WINDOWS = "validation_windows.csv"  # the windows each validation round fed the network

_SAVED = re.compile(r"\biter (\d+) saved: ")
_CHECKPOINT = re.compile(r'model_checkpoint_path: ".*-(\d+)"')
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the lrsearch package


def derive_seed(study_seed: int | None, *salt: object) -> int:
    """A seed in [0, SEED_RANGE): from the study's ``--seed`` and ``salt`` (what it is for:
    a trial number, "validation", a repeat round), so the same command draws the same seeds;
    random without a study seed."""
    if study_seed is None:
        return secrets.randbelow(SEED_RANGE)
    text = ":".join(str(part) for part in (study_seed, *salt))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") % SEED_RANGE


# ------------------------------------------------------------------------------------------
# Schedule file
# ------------------------------------------------------------------------------------------

def write_schedule(path: Path, schedule: dict, history=()) -> None:
    """The schedule (``Schedule.to_dict()``) and the validation Dice of the rounds so far (a
    resumed reduce-on-plateau schedule replays them)."""
    Path(path).write_text(json.dumps({"schedule": schedule, "history": list(history)},
                                     indent=2) + "\n", encoding="utf-8")


def read_schedule(path) -> tuple[dict, list]:
    with open(path, encoding="utf-8") as handle:
        spec = json.load(handle)
    return spec["schedule"], list(spec.get("history", []))


# ------------------------------------------------------------------------------------------
# Validation windows
# ------------------------------------------------------------------------------------------

def validation_environment(seed: int, log_path: Path) -> dict:
    """The child's variables that fix its validation windows and log them to ``log_path``."""
    return {VALIDATION_SEED_ENV: str(seed), VALIDATION_LOG_ENV: str(log_path)}


def append_validation_windows(path, iteration: int, windows) -> None:
    """Appends one line per window, ``iteration,subject,x0,y0,z0,x1,y1,z1`` (NiftyNet's window
    location: start and end corners), of a validation batch fed at ``iteration``."""
    with open(path, "a", encoding="utf-8") as log:
        log.writelines(f"{iteration},{subject},{','.join(str(int(c)) for c in corners)}\n"
                       for subject, corners in windows)


def read_validation_windows(path) -> list[tuple[int, list[tuple]]]:
    """The log of :func:`append_validation_windows` as rounds: ``(iteration, windows)`` in the
    order fed, each window ``(subject, x0, y0, z0, x1, y1, z1)``."""
    rounds: list[tuple[int, list[tuple]]] = []
    with open(path, encoding="utf-8") as log:
        for line in log:
            iteration, subject, *corners = line.strip().split(",")
            if not rounds or rounds[-1][0] != int(iteration):
                rounds.append((int(iteration), []))
            rounds[-1][1].append((subject, *(int(c) for c in corners)))
    return rounds


# ------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------

def train_args(config_path: Path) -> list[str]:
    """NiftyNet's ``net_run`` arguments that train ``config_path`` with the scheduled LR."""
    return ["train", "-a", APPLICATION, "-c", str(config_path)]


def inference_args(config_path: Path, split_file: Path) -> list[str]:
    """NiftyNet's arguments for segmenting the subjects ``split_file`` marks for inference."""
    return ["inference", "-a", APPLICATION, "-c", str(config_path),
            "--dataset_split_file", str(split_file)]


def child_command(python: str, runs) -> list[str]:
    """One child process running NiftyNet argument lists one after the other."""
    argv = [python, "-m", CHILD_MAIN]
    for i, run in enumerate(runs):
        argv += ([THEN] if i else []) + list(run)
    return argv


def server_command(python: str, fd: int) -> list[str]:
    """A process that imports TensorFlow and NiftyNet once, then forks a child per request
    read from the Unix socket ``fd`` (:func:`encode_request`), each running like
    :func:`child_command`'s."""
    return [python, "-m", CHILD_SERVER, str(fd)]


# The variables that differ from one run to the next: a served child takes them from its
# request. The others (PYTHONPATH, CUDA_VISIBLE_DEVICES, TF_CPP_MIN_LOG_LEVEL, ...) are the
# server's, fixed before it imports TensorFlow; a request that changes one needs a new server.
RUN_ENV = (SCHEDULE_ENV, SEED_ENV, VALIDATION_SEED_ENV, VALIDATION_LOG_ENV)


def server_environment(env) -> dict:
    """What of a child's environment its server must have been started with."""
    return {key: value for key, value in env.items() if key not in RUN_ENV}


def encode_request(runs, env, cwd) -> bytes:
    """One request to :func:`server_command`'s process: run ``runs`` (NiftyNet argument lists)
    in ``cwd`` with ``env``. Sent with the file descriptor of the child's output (a pipe)."""
    body = json.dumps({"runs": [list(r) for r in runs], "env": dict(env), "cwd": str(cwd)})
    data = body.encode("utf-8")
    return b"%d\n" % len(data) + data


def decode_request(data: bytes):
    """``(runs, env, cwd)`` of :func:`encode_request`'s body (without its length line)."""
    request = json.loads(data.decode("utf-8"))
    return request["runs"], request["env"], request["cwd"]


# The server's replies, one line each: READY once its imports are done, then per request
# STARTED <pid of the child> and EXITED <status, negative: killed by that signal>.
READY, STARTED, EXITED = "ready", "started", "exited"


def split_runs(argv):
    """The argument lists of :func:`child_command`, back in the child."""
    run: list[str] = []
    for arg in argv:
        if arg == THEN:
            if run:
                yield run
            run = []
        else:
            run.append(arg)
    if run:
        yield run


def child_environment(pythonpath: str, extra=(), base=None) -> dict:
    """The child's environment: lrsearch importable, unbuffered output, TensorFlow quiet."""
    env = dict(os.environ if base is None else base)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = pythonpath + (os.pathsep + path if path else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(dict(extra))
    return env


def child_pythonpath(package_dir: Path | None = None, cache: Path | None = None) -> str:
    """What the child gets on PYTHONPATH to import lrsearch, and nothing else.

    From a source checkout (``pip install -e``) that is the checkout. From an installed wheel
    it would be lrsearch's site-packages, whose numpy, protobuf & co. for Python 3.11 would
    shadow a TF 1 environment's own; there it is a cache folder holding only a link to lrsearch.
    """
    package = Path(package_dir or _PACKAGE_ROOT / "lrsearch")
    root = package.parent
    if root.name not in ("site-packages", "dist-packages"):
        return str(root)
    if cache is None:
        from lrsearch.paths import cache_dir

        cache = cache_dir() / "runtimes"
    shim = Path(cache) / "pythonpath" / hashlib.sha256(str(package).encode()).hexdigest()[:12]
    link = shim / package.name
    if not (link.is_symlink() and link.resolve() == package.resolve()):
        shim.mkdir(parents=True, exist_ok=True)
        partial = shim / f".{package.name}.{os.getpid()}"
        if partial.is_symlink() or partial.exists():
            partial.unlink()
        partial.symlink_to(package, target_is_directory=True)
        os.replace(str(partial), str(link))
    return str(shim)


# ------------------------------------------------------------------------------------------
# Checkpoints
# ------------------------------------------------------------------------------------------

def saved_iteration(line: str) -> int | None:
    """The iteration of NiftyNet's ``iter N saved: <path>`` console line, else None."""
    match = _SAVED.search(line)
    return int(match.group(1)) if match else None


def checkpoint_iteration(model_dir: Path) -> int | None:
    """Iteration of the latest checkpoint NiftyNet saved in ``model_dir``, if any."""
    index = Path(model_dir) / "models" / "checkpoint"
    if not index.is_file():
        return None
    match = _CHECKPOINT.search(index.read_text())
    return int(match.group(1)) if match else None


def checkpoint_files(models_dir: Path, iteration: int) -> list[Path]:
    """The files of checkpoint ``iteration`` in NiftyNet's ``<model_dir>/models``."""
    return sorted(Path(models_dir).glob(f"model.ckpt-{iteration}.*"))
