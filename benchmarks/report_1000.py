"""Report and dashboard on a 1,000-trial study: prints how long they take.

    python benchmarks/report_1000.py [--trials 1000] [--keep DIR]

Builds a study of ``--trials`` trials in a temporary SQLite storage the way ``lrsearch
optimize`` fills one (the default search space sampled at random, the study's median pruner,
2,000 iterations per trial with validation every 100, every user attribute a trial stores, and
each trial's dashboard figures and note written by LiveTrial at its start and end), then:

* times ``lrsearch report`` on it as a user runs it (a new process; target: 10 s or less);
* starts ``lrsearch dashboard`` and measures in headless Chromium how long the trials page takes
  to list the trials and to show a trial's learning-rate figure (cold, then again warm), and
  the study page its first plot;
* times optuna-dashboard's study JSON, the payload behind those pages, and gives its size.

Figures are printed, never asserted. Needs selenium, Debian's chromium and chromedriver
(tests/install-deps.sh installs them).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MAX_ITER = 2000
VALIDATE_EVERY = 100
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--window-size=1400,1000")


def build(url: str, trials: int) -> float:
    import random

    import optuna

    from lrsearch.monitor.live import artifact_dir
    from tests.synthetic import add_trials, make_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Outcomes as a study that prunes well ends up with (README: 30-50 % of the iterations
    # saved); pruned trials stop between the pruner's warm-up (25 %) and 90 % of the run.
    rng = random.Random(1)
    states = rng.choices(["complete", "pruned", "failed"], weights=[45, 50, 5], k=trials)
    started = time.perf_counter()
    study = make_study(url, "bench", max_iter=MAX_ITER, seed=1)
    add_trials(study, trials, seed=1, validate_every=VALIDATE_EVERY, states=states,
               prune_from=0.25, live_dir=artifact_dir(url, None), live_every=float("inf"))
    return time.perf_counter() - started


def time_report(url: str, folder: Path, runs: int = 3) -> tuple[list[float], int, str]:
    target = folder / "report.html"
    times = []
    line = ""
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "lrsearch.cli", "report", "--storage", url,
                               "-o", str(target)], capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - started)
        line = done.stdout.strip()
    return times, target.stat().st_size, line


def _browser(profile: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def _until(driver, script: str, timeout: float = 120.0) -> float:
    """Seconds until ``script`` returns something truthy."""
    from selenium.webdriver.support.ui import WebDriverWait

    started = time.perf_counter()
    WebDriverWait(driver, timeout, poll_frequency=0.05).until(
        lambda d: d.execute_script(script), message=script)
    return time.perf_counter() - started


def time_dashboard(url: str, trials: int, best: int) -> dict[str, float | int]:
    """Page loads on a freshly started dashboard (cold: its trial cache empty), then again."""
    server = subprocess.Popen([sys.executable, "-m", "lrsearch.cli", "dashboard", "--storage",
                               url, "--port", "0"], stdout=subprocess.PIPE, text=True)
    figures: dict[str, float | int] = {}
    try:
        address = re.search(r"http://\S+/dashboard/", server.stdout.readline()).group(0)
        base = address.replace("/dashboard/", "")
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/meta", timeout=2)
                break
            except OSError:
                time.sleep(0.1)
        with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
            driver = _browser(profile)
            try:
                # The list is virtual: it counts every trial and draws those in view.
                listed = (f"return document.body.innerText.includes('{trials} Trials') && "
                          "document.body.innerText.includes('Trial 0\\n')")
                figure = ("const i = [...document.images].find(i => i.alt === "
                          "'learning rate'); return i && i.complete && i.naturalWidth > 0;")
                for attempt in ("cold", "warm"):
                    driver.get("about:blank")
                    started = time.perf_counter()
                    driver.get(f"{address}studies/1/trials?numbers={best}")
                    _until(driver, listed)
                    figures[f"trials page, list of {trials} shown ({attempt}), s"] = \
                        time.perf_counter() - started
                    _until(driver, figure)
                    figures[f"trials page, best trial's LR figure shown ({attempt}), s"] = \
                        time.perf_counter() - started
                driver.get("about:blank")
                started = time.perf_counter()
                driver.get(f"{address}studies/1")
                _until(driver, "return document.querySelectorAll('.js-plotly-plot .main-svg')"
                               ".length > 0")
                figures["study page, first plot drawn (warm), s"] = \
                    time.perf_counter() - started
            finally:
                driver.quit()
        started = time.perf_counter()
        request = urllib.request.Request(f"{base}/api/studies/1",
                                         headers={"Accept-Encoding": "identity"})
        with urllib.request.urlopen(request, timeout=300) as response:
            size = len(response.read())
        figures["study JSON behind both pages (warm), s"] = time.perf_counter() - started
        figures["study JSON, bytes"] = size
    finally:
        server.terminate()
        server.wait(timeout=30)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--keep", type=Path, default=None,
                        help="build the study in this folder and keep it")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="lrsearch-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder / 'bench.db'}"
    import optuna

    if not (folder / "bench.db").exists():
        seconds = build(url, args.trials)
        print(f"built {args.trials} trials in {seconds:.0f} s ({url})")
    study = optuna.load_study(study_name="bench", storage=url)
    counts = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    figures = sum(f.stat().st_size for f in (folder / "bench-artifacts").iterdir())
    print(f"study: {json.dumps(counts)}; storage {(folder / 'bench.db').stat().st_size / 1e6:.1f}"
          f" MB, trial figures {figures / 1e6:.1f} MB")

    times, size, line = time_report(url, folder)
    print(f"lrsearch report: {', '.join(f'{t:.2f}' for t in times)} s "
          f"(median {statistics.median(times):.2f} s; target <= 10 s); {size / 1e6:.1f} MB HTML")
    print(f"  {line}")
    for name, value in time_dashboard(url, len(study.trials), study.best_trial.number).items():
        print(f"dashboard: {name}: {value:.2f}" if isinstance(value, float)
              else f"dashboard: {name}: {value:,}")
    if args.keep is None:
        shutil.rmtree(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
