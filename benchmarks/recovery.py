"""Recovery from a killed worker: time until its trial trains again, and iterations redone.

A worker (``lrsearch optimize`` on tiny demo data, PostgreSQL storage) is SIGKILLed mid-trial
right after a checkpoint; a second worker is started at once. Printed: time from the SIGKILL to
the re-queued trial training again (first new iteration in NiftyNet's log), how that splits
into waiting for the heartbeat grace period and NiftyNet's start-up, and iterations redone
(last iteration trained before the kill − the checkpoint resumed from; at most save_every_n).

    python benchmarks/recovery.py [--heartbeat 5] [--save-every 10] [--checkpoint-store]

``--checkpoint-store``: the two workers train in run folders of their own (node-local scratch;
the first one's is deleted after the kill) and the retry resumes from the copy in the study's
checkpoint store (an Optuna artifact store).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lrsearch.nifty.contract import checkpoint_iteration  # noqa: E402
from tests.postgres import PostgresServer  # noqa: E402
from tests.tiny import TINY_SPACE, tiny_config  # noqa: E402

ITER = re.compile(r"training iter (\d+),")


def iterations(log: Path) -> list[int]:
    if not log.exists():
        return []
    return [int(m.group(1)) for m in map(ITER.search, log.read_text().splitlines()) if m]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heartbeat", type=float, default=5)
    parser.add_argument("--save-every", type=int, default=10)
    parser.add_argument("--kill-after-checkpoint", type=int, default=20)
    parser.add_argument("--checkpoint-store", action="store_true",
                        help="node-local run folders; resume through the checkpoint store")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lrsearch-recovery-"))
    config = tiny_config(work, save_every=args.save_every)
    server = PostgresServer().init()
    command = [sys.executable, "-m", "lrsearch.cli", "optimize", "-c", str(config),
               "--space", str(TINY_SPACE), "--storage", server.url, "--study", "recovery",
               "--trials", "1", "--max-iter", "200", "--jobs", "1",
               "--heartbeat", str(args.heartbeat)]
    model = work / "models" / "recovery" / "trial-0000" / "model"
    a_command = b_command = command
    retry_model = model
    if args.checkpoint_store:
        store = work / "shared-store"
        a_command = command + ["--runs-dir", str(work / "node-a"), "--checkpoint-store",
                               str(store)]
        b_command = command + ["--runs-dir", str(work / "node-b")]
        model = work / "node-a" / "trial-0000" / "model"
        retry_model = work / "node-b" / "trial-0001" / "model"
    log = model / "training_niftynet_log"
    try:
        a = subprocess.Popen(a_command, cwd=work, stdout=subprocess.DEVNULL,
                             stderr=subprocess.STDOUT)
        while (checkpoint_iteration(model) or 0) < args.kill_after_checkpoint:
            if a.poll() is not None:
                sys.exit("the first worker ended before its checkpoint")
            time.sleep(0.1)
        time.sleep(args.save_every * 0.1)  # a few iterations past the checkpoint
        a.kill()
        killed = time.monotonic()
        a.wait()
        time.sleep(0.5)
        before = iterations(log)
        last_trained = before[-1]
        if args.checkpoint_store:
            import shutil

            stored = [f"{p.stat().st_size / 1e6:.1f} MB" for p in store.iterdir()]
            shutil.rmtree(work / "node-a")  # the node's scratch is gone
            log, before = retry_model / "training_niftynet_log", []
        b = subprocess.Popen(b_command, cwd=work, stdout=(work / "b.log").open("w"),
                             stderr=subprocess.STDOUT)
        started_again = None
        while b.poll() is None:
            if len(iterations(log)) > len(before):
                started_again = time.monotonic()
                break
            time.sleep(0.1)
        text = (work / "b.log").read_text()
        b.wait()
        resumed = checkpoint_iteration(retry_model)
        after = iterations(log)[len(before):]
        if started_again is None or not after:
            sys.exit(f"the retry did not train again:\n{text[-2000:]}")
        resumed_from = after[0] - 1
        where = (f"resumed through the checkpoint store (copy: {', '.join(stored)})"
                 if args.checkpoint_store else "resumed in the shared run folder")
        print(f"heartbeat {args.heartbeat:g} s (grace {3 * args.heartbeat:g} s), "
              f"save_every_n {args.save_every}; {where}")
        print(f"  SIGKILL → retry training again: {started_again - killed:.1f} s")
        redone = last_trained - resumed_from
        print(f"  last iteration trained before the kill: {last_trained}; resumed from "
              f"checkpoint {resumed_from}; iterations redone: {redone} "
              f"(≤ save_every_n {args.save_every}: {redone <= args.save_every})")
        print(f"  retry finished: {b.returncode == 0}, final checkpoint {resumed}")
    finally:
        server.destroy()


if __name__ == "__main__":
    main()
