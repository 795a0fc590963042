"""Start-up data check: reading every image in full, first time vs. with the remembered files.

``lrsearch optimize`` and ``lr-find`` read every image of the config in full before anything
trains, so that a corrupt or truncated file fails at once, naming it. On a real dataset that is
minutes (IXI: 581 subjects, two files each), paid by every worker on every start unless the
files read before are remembered (``~/.cache/lrsearch/verified-images.json``, by path, size and
modification time). This writes demo phantoms at IXI's T1 shape, then times, alternating,
``scan_data`` with an empty cache (cold) and with the cache the previous scan left (warm).

    python benchmarks/scan_data.py [--subjects 6] [--shape 256 256 150] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from lrsearch.demo import write_demo_data
from lrsearch.nifty.config import load_config
from lrsearch.nifty.dataset import scan_data
from lrsearch.nifty.images import verified_images_path

REPO = Path(__file__).resolve().parents[1]
IXI_SUBJECTS = 581


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=6)
    parser.add_argument("--shape", type=int, nargs=3, default=[256, 256, 150])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lrsearch-scan-"))
    os.environ["XDG_CACHE_HOME"] = str(work / "cache")
    os.chdir(work)
    started = time.monotonic()
    write_demo_data(work / "demo_data", subjects=args.subjects, shape=tuple(args.shape))
    files = sorted((work / "demo_data").glob("*.nii.gz"))
    size = sum(f.stat().st_size for f in files)
    print(f"{len(files)} files ({args.subjects} subjects, {'x'.join(map(str, args.shape))}), "
          f"{size / 1e6:.0f} MB gzipped, written in {time.monotonic() - started:.0f} s")
    cfg = load_config(REPO / "configs" / "demo.ini")
    cold, warm = [], []
    for _ in range(args.repeats):
        shutil.rmtree(verified_images_path().parent, ignore_errors=True)
        started = time.perf_counter()
        first = scan_data(cfg)
        cold.append(time.perf_counter() - started)
        started = time.perf_counter()
        again = scan_data(cfg)
        warm.append(time.perf_counter() - started)
        assert again.shapes == first.shapes and len(first.subjects) == args.subjects
    cold_s, warm_s = statistics.median(cold), statistics.median(warm)
    print(f"scan_data, median of {args.repeats}: first read {cold_s:.2f} s "
          f"({cold_s / len(files) * 1e3:.0f} ms/file), remembered {warm_s:.3f} s "
          f"({warm_s / len(files) * 1e3:.1f} ms/file): {cold_s / warm_s:.0f}x faster")
    print(f"at IXI's size ({IXI_SUBJECTS} subjects, {2 * IXI_SUBJECTS} files) that is about "
          f"{cold_s / len(files) * 2 * IXI_SUBJECTS:.0f} s vs "
          f"{warm_s / len(files) * 2 * IXI_SUBJECTS:.1f} s per worker start")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
