"""The dashboard and the report in a real headless Chromium (Debian's, through chromedriver).

Selenium rather than the chromium command line: the tests wait for what must appear (the
trial list, a loaded image, every plot's SVG) instead of guessing a --virtual-time-budget, and
read the browser's console log to prove there was no JavaScript error. The dashboard is the
real optuna-dashboard served by ``lrsearch dashboard`` (and by plain ``optuna-dashboard``) on
127.0.0.1 over a real SQLite study whose figures and notes LiveTrial wrote. Screenshots go to
test-output/.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import optuna
import pytest

from lrsearch import cli
from lrsearch.monitor.live import artifact_dir
from tests.synthetic import add_trials, make_study

OUTPUT = Path(__file__).resolve().parents[1] / "test-output"
STATES = ["complete", "pruned", "complete", "failed", "complete", "pruned"]
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--window-size=1400,1600")


@pytest.fixture(scope="module")
def chrome():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.TemporaryDirectory(prefix="chromium-profile-")
    options.add_argument(f"--user-data-dir={profile.name}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit chromedriver: Selenium Manager would try to download one.
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    OUTPUT.mkdir(exist_ok=True)
    yield driver
    driver.quit()
    profile.cleanup()


def _errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE"]


def _wait(driver, script: str, timeout: float = 30.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(
        lambda d: d.execute_script(script), message=script)


@pytest.fixture(scope="module")
def study_url(tmp_path_factory):
    """A small real study: complete, pruned and failed trials and one still running."""
    folder = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{folder / 'study.db'}"
    study = make_study(url, "browser", max_iter=400)
    add_trials(study, len(STATES) + 1, states=STATES + ["complete"], leave_running=True,
               live_dir=artifact_dir(url, None))
    return url


def _serve(command: list[str], ready: str | None = None) -> tuple[subprocess.Popen, str]:
    """Starts a server process; returns it and the dashboard address it serves."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    if ready is None:  # lrsearch dashboard prints its address first
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+/dashboard/", line)
        assert match, line
        ready = match.group(0)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(ready.replace("/dashboard/", "/api/meta"), timeout=2)
            return process, ready
        except OSError:
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline, "dashboard did not answer in 30 s"
            time.sleep(0.2)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_dashboard_lists_trials_and_shows_a_trials_schedule_figure(chrome, study_url):
    study = optuna.load_study(study_name="browser", storage=study_url)
    trials = study.get_trials()
    best = study.best_trial
    pruned = next(t for t in trials if t.state == optuna.trial.TrialState.PRUNED)
    process, address = _serve([sys.executable, "-m", "lrsearch.cli", "dashboard",
                               "--storage", study_url, "--port", "0"])
    try:
        page = f"{address}studies/{study._study_id}/trials"
        chrome.get(f"{page}?numbers={best.number}")
        # the trial's learning-rate figure, loaded and decoded by the browser
        width = _wait(chrome, "const i = [...document.images].find(i => i.alt === "
                              "'learning rate'); return i && i.complete && i.naturalWidth;")
        assert width == 520
        text = chrome.find_element("tag name", "body").text
        assert f"{len(trials)} Trials" in text
        for trial in trials:
            assert f"Trial {trial.number}\n" in text
        assert "Running" in text and "Pruned" in text and "Fail" in text
        assert best.user_attrs["schedule_text"] in text
        assert f"complete: whole-volume Dice {best.value:.4f}" in text
        run_dir = best.user_attrs["run_dir"]
        assert f"cd {run_dir} && LRSEARCH_SCHEDULE={run_dir}/schedule.json " \
               f"LRSEARCH_SEED={best.user_attrs['seed']} " \
               f"{best.user_attrs['command']}" in text  # the command, as typed
        assert chrome.execute_script(  # the note fits the page: nothing to scroll sideways
            "const n = [...document.querySelectorAll('h3')].find(h => h.innerText.startsWith("
            "'Trial ')).parentElement; return n.scrollWidth <= n.clientWidth + 1")
        svg = chrome.execute_script(
            "const i = [...document.images].find(i => i.alt === 'learning rate');"
            "const r = new XMLHttpRequest(); r.open('GET', i.src, false); r.send();"
            "return r.responseText;")
        assert svg.startswith("<svg") and f"Trial {best.number} learning rate" in svg
        # the artifact cards show the same two figures by name
        names = chrome.execute_script("return [...document.images].map(i => i.alt)")
        assert {"lr_schedule.svg", "validation_dice.svg"} <= set(names)
        chrome.save_screenshot(str(OUTPUT / "dashboard-best-trial.png"))

        chrome.get(f"{page}?numbers={pruned.number}")
        _wait(chrome, "return document.body.innerText.includes('pruned after')")
        text = chrome.find_element("tag name", "body").text
        assert f"pruned after 50 iterations: {pruned.user_attrs['stop_reason']}" in text
        chrome.save_screenshot(str(OUTPUT / "dashboard-pruned-trial.png"))
        assert _errors(chrome) == []
    finally:
        _stop(process)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str) -> bytes:
    # optuna-dashboard answers 500 to a client without Accept-Encoding (TOOLING.md)
    request = urllib.request.Request(url, headers={"Accept-Encoding": "identity"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def test_plain_optuna_dashboard_serves_the_same_storage(study_url):
    folder = artifact_dir(study_url, None)
    port = _free_port()
    process, address = _serve(["optuna-dashboard", study_url, "--host", "127.0.0.1", "--port",
                               str(port), "--artifact-dir", str(folder)],
                              ready=f"http://127.0.0.1:{port}/dashboard/")
    try:
        base = address.replace("/dashboard/", "")
        (summary,) = json.loads(_get(f"{base}/api/studies"))["study_summaries"]
        assert summary["study_name"] == "browser"
        detail = json.loads(_get(f"{base}/api/studies/{summary['study_id']}"))
        assert [t["number"] for t in detail["trials"]] == list(range(len(STATES) + 1))
        for trial in detail["trials"]:
            assert {a["filename"] for a in trial["artifacts"]} == \
                {"lr_schedule.svg", "validation_dice.svg"}
            assert trial["note"]["body"].startswith(f"### Trial {trial['number']}: ")
            lr = next(a for a in trial["artifacts"] if a["filename"] == "lr_schedule.svg")
            image = _get(f"{base}/artifacts/{summary['study_id']}/{trial['trial_id']}/"
                         f"{lr['artifact_id']}")
            assert image.startswith(b"<svg") and b"learning rate" in image
    finally:
        _stop(process)


def test_report_renders_every_plot_without_javascript_errors(chrome, study_url, tmp_path):
    # The console check can fail: a page that throws is seen.
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>throw new Error('boom')</script></body></html>")
    chrome.get(broken.as_uri())
    assert any("boom" in message for message in _errors(chrome))

    target = tmp_path / "report.html"
    assert cli.main(["report", "--storage", study_url, "-o", str(target)]) == 0
    chrome.get(target.as_uri())
    plots = _wait(chrome, "const p = [...document.querySelectorAll('.js-plotly-plot')];"
                          "return p.length === 6 && p.every(d => d.querySelector('.main-svg'))"
                          " && p.map(d => [d.id, d.data.length,"
                          " d.querySelectorAll('.trace, .bars .point').length]);")
    ids = [plot[0] for plot in plots]
    assert ids == ["top-lr", "dice-curves", "history", "families", "importances", "savings"]
    for plot_id, traces, drawn in plots:
        assert traces > 0 and drawn > 0, plot_id  # every figure has data, and it is drawn
    assert _errors(chrome) == []
    rows = chrome.execute_script("return document.querySelectorAll('#best-trials tbody tr')"
                                 ".length")
    assert rows == STATES.count("complete")
    height = chrome.execute_script("return document.body.scrollHeight")
    chrome.set_window_size(1400, height + 100)
    chrome.save_screenshot(str(OUTPUT / "report.png"))
    chrome.set_window_size(1400, 1600)
    assert os.path.getsize(OUTPUT / "report.png") > 50_000

    # a study without trials yet: every plot still draws, saying what is missing
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    make_study(empty, "empty")
    assert cli.main(["report", "--storage", empty, "-o", str(tmp_path / "empty.html")]) == 0
    chrome.get((tmp_path / "empty.html").as_uri())
    notes = _wait(chrome, "const p = [...document.querySelectorAll('.js-plotly-plot')];"
                          "return p.length === 6 && p.every(d => d.querySelector('.main-svg'))"
                          " && p.map(d => d.querySelector('.annotation-text').textContent);")
    assert notes[0] == "no complete trial yet"
    assert "need at least 3 complete trials" in notes[4]
    assert _errors(chrome) == []
