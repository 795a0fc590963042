"""Every network lrsearch knows trains on both runtimes, or is refused before a trial starts.

Each network of ``WINDOW_RULES`` gets tiny synthetic data and a config with its smallest legal
window, and one constant-LR trial of 2 iterations (validation, inference and whole-volume Dice
included) runs through the same code a study uses, on TF 2 (bridged) and on stock TF 1.15.
The selected cases train two at a time (see ``trained``); each test checks its own trial.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest

from lrsearch.engines.runtime import get_runtime
from lrsearch.nifty.windows import WINDOW_RULES
from lrsearch.selfcheck import single_trial
from tests.tiny import selected_params, side_by_side, write_volumes

pytestmark = pytest.mark.slow

MAX_ITER = 2
# CI budget. Every case runs with LRSEARCH_ALL_NETWORKS=1; by default CI skips the ones below
# (seconds per case measured on the 2-core machine, README "Networks"). On tf1 NiftyNet is
# stock: lrsearch adds only its application, which is the same for every network except
# holisticnet (a list of outputs), so that one runs there in CI; toynet and highres3dnet also
# train on tf1 in test_runtimes.py.
ALL = os.environ.get("LRSEARCH_ALL_NETWORKS") == "1"
HEAVY = {"unet": "its smallest window is 96³ (output 8³): 2 iterations and inference take "
                 "about 110 s on tf2; on tf1 (CPU) TensorFlow 1.15 needed over 20 GB and was "
                 "killed on a 24 GB machine"}
CI_TF1 = {"holisticnet"}


@dataclass(frozen=True)
class Net:
    """The smallest set-up a network builds with (lengths per axis)."""

    window: tuple[int, ...]
    volume: tuple[int, ...]
    label_window: tuple[int, ...] | None = None  # networks whose output is cropped
    modalities: int = 1


CUBE8 = Net((8, 8, 8), (16, 16, 16))
CUBE16 = Net((16, 16, 16), (16, 16, 16))
NETWORKS: dict[str, Net] = {
    "highres3dnet": CUBE8,
    "highres3dnet_small": CUBE8,
    "highres3dnet_large": CUBE8,
    "scalenet": Net((8, 8, 8), (16, 16, 16), modalities=2),
    "dense_vnet": CUBE16,
    "vnet": CUBE16,
    "nonewnet": CUBE16,
    "unet": Net((96, 96, 96), (96, 96, 96), label_window=(8, 8, 8)),
    "deepmedic": Net((51, 51, 51), (51, 51, 51), label_window=(3, 3, 3)),
    "holisticnet": CUBE8,
    "toynet": CUBE8,
    "unet_2d": Net((173, 173, 1), (173, 173, 1), label_window=(4, 4, 1)),
}


def _window(lengths: tuple[int, ...]) -> str:
    return ", ".join(map(str, lengths))


def network_config(directory: Path, network: str) -> Path:
    """Tiny data and a config training ``network`` with its smallest legal window."""
    net = NETWORKS[network]
    # Inference on the whole volume; where the output is cropped, the border must cover the
    # difference (NiftyNet's grid aggregator raises ValueError otherwise).
    output = net.label_window or net.window
    border = tuple(-(-(w - o) // 2) for w, o in zip(net.window, output, strict=True))
    modalities = tuple(f"M{i}" for i in range(net.modalities))
    data = write_volumes(directory / "data", net.volume, modalities=modalities)
    sections = [(name, net.window, 1) for name in modalities]
    sections.append(("Label", net.label_window or net.window, 0))
    text = "".join(
        f"[{name}]\npath_to_search = {data}\nfilename_contains = _{name}\n"
        f"spatial_window_size = ({_window(window)})\ninterp_order = {order}\n\n"
        for name, window, order in sections)
    text += f"""[SYSTEM]
cuda_devices = ""
num_threads = 1
model_dir = {directory / 'models'}

[NETWORK]
name = {network}
batch_size = 1
volume_padding_size = 0
queue_length = 2
whitening = True

[TRAINING]
sample_per_volume = 1
lr = 0.001
loss_type = Dice
max_iter = {MAX_ITER}
save_every_n = {MAX_ITER}
validation_every_n = {MAX_ITER}
validation_max_iter = 1

[INFERENCE]
spatial_window_size = ({_window(net.volume)})
border = ({_window(border)})
save_seg_dir = segmentation
output_interp_order = 0

[SEGMENTATION]
image = {', '.join(modalities)}
label = Label
label_normalisation = False
num_classes = 2
"""
    path = directory / f"{network}.ini"
    path.write_text(text)
    return path


def run_network(network: str, runtime: str, directory: Path) -> optuna.trial.FrozenTrial:
    """One 2-iteration trial of ``network`` on ``runtime``; the finished trial."""
    config = network_config(directory, network)
    return single_trial(config, get_runtime(runtime), directory / "runs", max_iter=MAX_ITER)


def test_every_known_network_has_a_tiny_setup():
    assert set(NETWORKS) == set(WINDOW_RULES)
    for network, net in NETWORKS.items():
        rule = WINDOW_RULES[network]
        assert all(rule.accepts(n) for n in net.window if n > 1), network
        output = tuple(rule.output(n) if n > 1 else n for n in net.window)
        assert output == (net.label_window or net.window), network


def _skip_reason(network: str, runtime: str) -> str | None:
    if not ALL and network in HEAVY:
        return f"{network}: {HEAVY[network]}; set LRSEARCH_ALL_NETWORKS=1 to run it"
    if not ALL and runtime == "tf1" and network not in CI_TF1:
        return ("stock NiftyNet on tf1 builds this network like any other; "
                "set LRSEARCH_ALL_NETWORKS=1 to train it there too")
    return None


@pytest.fixture(scope="module")
def trained(request, tmp_path_factory
            ) -> dict[tuple[str, str], optuna.trial.FrozenTrial | BaseException]:
    """The trial of every selected (network, runtime) case, two at a time (tests/tiny.py),
    then the HEAVY ones (LRSEARCH_ALL_NETWORKS=1) one at a time, for their memory; a case that
    raised re-raises in its own test."""
    cases = sorted({(params["network"], params["runtime"])
                    for params in selected_params(request, "test_network_trains")})
    cases = [case for case in cases if _skip_reason(*case) is None]
    if any(runtime == "tf1" for _, runtime in cases):
        from lrsearch.engines import tf1

        tf1.ensure_python(report=lambda text: print(f"tf1 setup: {text}", flush=True))
    root = tmp_path_factory.mktemp("networks")

    def train(chosen, at_once):
        return side_by_side({(network, runtime): functools.partial(
            run_network, network, runtime, root / f"{network}-{runtime}")
            for network, runtime in chosen}, at_once)

    return train([c for c in cases if c[0] not in HEAVY], 2) | \
        train([c for c in cases if c[0] in HEAVY], 1)


@pytest.mark.parametrize("runtime", ["tf2", "tf1"])
@pytest.mark.parametrize("network", sorted(NETWORKS))
def test_network_trains(network, runtime, request):
    reason = _skip_reason(network, runtime)
    if reason is not None:
        pytest.skip(reason)
    trial = request.getfixturevalue("trained")[network, runtime]
    if isinstance(trial, BaseException):
        raise trial
    assert trial.state == optuna.trial.TrialState.COMPLETE, trial.user_attrs.get("stop_reason")
    assert trial.user_attrs["iterations"] == MAX_ITER
    assert 0.0 <= trial.value <= 1.0
    assert sorted(trial.intermediate_values) == [MAX_ITER]
    assert trial.user_attrs["command"].split()[0] == (
        sys.executable if runtime == "tf2" else get_runtime("tf1").python)


_INSTANCE_NORM = """
import json, sys
import numpy as np
if sys.version_info >= (3, 8):  # the TF 2 runtime: NiftyNet's view of TensorFlow
    from lrsearch.engines.child import tf2compat
    tf2compat.install()
import tensorflow as tf
x = np.random.RandomState(0).normal(3.0, 2.0, (2, 4, 5, 3)).astype(np.float32)
out = tf.contrib.layers.instance_norm(
    tf.constant(x), epsilon=1e-6, scope="norm",
    param_initializers={"gamma": tf.constant_initializer(2.0),
                        "beta": tf.constant_initializer(0.5)})
names = sorted(v.name for v in tf.trainable_variables())
models = sorted(v.name for v in tf.get_collection(tf.GraphKeys.MODEL_VARIABLES))
with tf.Session() as session:
    session.run(tf.global_variables_initializer())
    print(json.dumps({"out": session.run(out).ravel().tolist(), "names": names,
                      "models": models}))
"""


def test_bridged_instance_norm_matches_tf115_contrib():
    """no_new_net normalises with contrib's instance_norm: the bridge computes the same."""
    import json
    import subprocess

    from lrsearch.engines import tf1

    results = {}
    for runtime in ("tf2", "tf1"):
        if runtime == "tf1":
            tf1.ensure_python()
        rt = get_runtime(runtime)
        done = subprocess.run([rt.python, "-c", _INSTANCE_NORM], capture_output=True,
                              text=True, env=rt.environment(), timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        results[runtime] = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["tf2"]["names"] == results["tf1"]["names"] == \
        ["norm/beta:0", "norm/gamma:0"]
    assert results["tf2"]["models"] == results["tf1"]["models"]
    assert results["tf2"]["out"] == pytest.approx(results["tf1"]["out"], abs=1e-5)
