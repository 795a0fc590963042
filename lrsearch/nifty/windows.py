"""Window rules: which spatial_window_size each NiftyNet network accepts, and the output it
produces.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from lrsearch.errors import ConfigError
from lrsearch.nifty.config import NiftyNetConfig
from lrsearch.nifty.images import _fmt_window, _orientation
from lrsearch.nifty.ini import _TRAINING_INPUTS


@dataclass(frozen=True)
class WindowRule:
    """What a network accepts along one spatial axis, and the output length it produces."""

    rule: str
    source: str
    accepts: Callable[[int], bool]
    output: Callable[[int], int]


def _unet_2d_output(n: int) -> int:
    # network/unet_2d.py: VALID 3x3 convs (-2 each, two per block), SAME 2x2 max-pooling
    # (ceil), 2x2 stride-2 VALID deconvolutions (x2); CropConcat needs the skip ≥ upsampled.
    skips = []
    size = n
    for _ in range(4):
        size -= 4
        if size < 1:
            return 0
        skips.append(size)
        size = math.ceil(size / 2)
    size -= 4
    for skip in reversed(skips):
        if size < 1:
            return 0
        size *= 2
        if size > skip:
            return 0
        size -= 4
    return max(size, 0)


def _divisible(k: int) -> Callable[[int], bool]:
    return lambda n: n % k == 0


def _same(n: int) -> int:
    return n


_HIGHRES = WindowRule("a multiple of 8", "check_spatial_dims(x % 8 == 0) in layer_op",
                      _divisible(8), _same)


WINDOW_RULES: dict[str, WindowRule] = {
    "highres3dnet": _HIGHRES,
    "highres3dnet_small": _HIGHRES,
    "highres3dnet_large": _HIGHRES,
    "scalenet": _HIGHRES,  # HighRes3DNet front end
    "dense_vnet": WindowRule(
        "a multiple of 8", "x % 2**len(dilation_rates) == 0 with 3 dilation blocks",
        _divisible(8), _same),
    # vnet.py asserts x % 8, but four stride-2 levels are concatenated with their skips, so
    # 24 or 40 fail at graph construction (verified); multiples of 16 build.
    "vnet": WindowRule("a multiple of 16", "4 stride-2 levels with skip concatenation",
                       _divisible(16), _same),
    "nonewnet": WindowRule("a multiple of 16", "check_spatial_dims(x % 16 == 0)",
                           _divisible(16), _same),
    "unet": WindowRule(
        "a multiple of 8 and at least 96", "x % 8 == 0 and x >= 89; output cropped by 44 a side",
        lambda n: n % 8 == 0 and n >= 89, lambda n: n - 88),
    "deepmedic": WindowRule(
        "odd, a multiple of 3 and above 48",
        "x % 3 == 0, x % 2 == 1, x > 48; 8 VALID 3x3 convs after a 16-voxel crop",
        lambda n: n % 3 == 0 and n % 2 == 1 and n > 48, lambda n: n - 48),
    # holistic_net.py's docstring says 8; one stride-2 downsampling before dilation-2 blocks
    # makes 4 the real constraint (12 and 20 build, 10 and 14 fail).
    "holisticnet": WindowRule("a multiple of 4", "downsampling by 2, then dilation 2",
                              _divisible(4), _same),
    "toynet": WindowRule("any length", "no constraint", lambda n: n >= 1, _same),
    "unet_2d": WindowRule(
        "a length the VALID-padded 4-level U-Net can shrink and grow back (e.g. 188 → 4)",
        "VALID 3x3 convs, 2x2 pooling and deconvolution",
        lambda n: _unet_2d_output(n) > 0, _unet_2d_output),
}


def _nearby_valid(rule: WindowRule, n: int) -> str:
    below = next((m for m in range(n - 1, 0, -1) if rule.accepts(m)), None)
    above = next((m for m in range(n + 1, n + 400) if rule.accepts(m)), None)
    options = [str(m) for m in (below, above) if m is not None]
    return " or ".join(options) if options else "none nearby"


def _group_window(cfg: NiftyNetConfig, group: str, where: str) -> tuple[str, tuple] | None:
    """The window of an input group (image = T1, T2 …): sections must agree."""
    chosen: tuple[str, tuple] | None = None
    for name in cfg.get("SEGMENTATION", group):
        window = cfg.get(name, "spatial_window_size")
        if not window:
            continue
        if chosen and window != chosen[1]:
            raise ConfigError(
                f"{where}: [{chosen[0]}] and [{name}] are both in [SEGMENTATION] {group} but "
                f"have spatial_window_size {_fmt_window(chosen[1])} and {_fmt_window(window)}; "
                "NiftyNet concatenates them into one window, so set the same size"
            )
        chosen = chosen or (name, window)
    return chosen


def _check_network_window(cfg: NiftyNetConfig, rule: WindowRule, network: str, section: str,
                          window: tuple) -> None:
    # misc_io.squeeze_spatial_temporal_dim drops length-1 axes before the network sees them;
    # lengths <= 0 mean "the whole image" and are only known per image.
    for n in window:
        if n > 1 and not rule.accepts(n):
            raise ConfigError(
                f"{cfg.path}: [{section}] spatial_window_size = {_fmt_window(window)}: "
                f"{network} needs each length to be {rule.rule} (niftynet/network: "
                f"{rule.source}); {n} is not, nearest valid: {_nearby_valid(rule, n)}"
            )


def check_window(cfg: NiftyNetConfig) -> None:
    """Raises ConfigError when NiftyNet would refuse the spatial_window_size values."""
    where = str(cfg.path)
    network = cfg.network_name
    if not network:
        raise ConfigError(f"{where}: [NETWORK] name is not set; e.g. name = highres3dnet")
    windows: dict[str, tuple[str, tuple]] = {}
    for group in _TRAINING_INPUTS:
        if not cfg.get("SEGMENTATION", group):
            continue
        found = _group_window(cfg, group, where)
        if found is None:
            names = ", ".join(f"[{s}]" for s in cfg.get("SEGMENTATION", group))
            raise ConfigError(
                f"{where}: {names} (SEGMENTATION {group}) sets no spatial_window_size; "
                "NiftyNet needs one for every sampled input, e.g. spatial_window_size = 32, 32, 32"
            )
        windows[group] = found
    rule = WINDOW_RULES.get(network)
    if rule is None:
        return  # a custom network ("package.module.Class"): its rules are its own
    if "image" in windows:
        name, image = windows["image"]
        _check_network_window(cfg, rule, network, name, image)
        expected = tuple(rule.output(n) if n > 1 else n for n in image)
        for group in ("label", "weight"):
            if group not in windows or any(n <= 0 for n in image):
                continue
            other, window = windows[group]
            if window != expected:
                raise ConfigError(
                    f"{where}: [{other}] spatial_window_size = {_fmt_window(window)}, but "
                    f"{network} turns the [{name}] window {_fmt_window(image)} into an output "
                    f"of {_fmt_window(expected)}; the {group} window must equal the network "
                    f"output (the loss compares them voxel by voxel): set "
                    f"spatial_window_size = {_fmt_window(expected)} in [{other}]"
                )
    inference = cfg.get("INFERENCE", "spatial_window_size")
    if inference:
        _check_network_window(cfg, rule, network, "INFERENCE", inference)


def check_training(cfg: NiftyNetConfig) -> None:
    """Everything net_segment train would refuse before reading an image; ConfigError."""
    where = str(cfg.path)
    for group in ("image", "label"):
        if not cfg.get("SEGMENTATION", group):
            raise ConfigError(
                f"{where}: [SEGMENTATION] {group} is not set; name the input section(s), "
                f"e.g. {group} = {'T1' if group == 'image' else 'label'}"
            )
    if cfg.num_classes < 2:
        raise ConfigError(
            f"{where}: [SEGMENTATION] num_classes = {cfg.num_classes}; segmentation needs at "
            "least 2 (background and one structure)"
        )
    if cfg.network_name == "scalenet" and len(cfg.image_sections) < 2:
        raise ConfigError(
            f"{where}: [NETWORK] name = scalenet needs at least two image modalities "
            "([SEGMENTATION] image = T1, T2 …)"
        )
    if cfg.get("SEGMENTATION", "label_normalisation") and not cfg.get(
            "NETWORK", "histogram_ref_file"):
        raise ConfigError(
            f"{where}: [SEGMENTATION] label_normalisation = True needs [NETWORK] "
            "histogram_ref_file (NiftyNet keeps the label mapping there and fails without "
            "one); set histogram_ref_file or label_normalisation = False"
        )
    for name in (g for group in _TRAINING_INPUTS for g in cfg.get("SEGMENTATION", group)):
        section = cfg.inputs[name]
        if section.axcodes:
            try:
                _orientation(section.axcodes, ("R", "A", "S"))
            except ValueError:
                raise ConfigError(
                    f"{where}: [{name}] axcodes = {', '.join(section.axcodes)}: NiftyNet "
                    "needs three axis codes, one of L/R, one of A/P and one of S/I, e.g. "
                    "axcodes = R, A, S"
                ) from None
        if section.pixdim and len(section.pixdim) < 3:
            raise ConfigError(
                f"{where}: [{name}] pixdim = {_fmt_window(section.pixdim)}: NiftyNet resamples "
                "3-D images to one voxel size per axis; give three, e.g. pixdim = 1.0, 1.0, 1.0"
            )
    for name in (*cfg.image_sections, *cfg.label_sections):
        if cfg.get(name, "csv_data_file"):
            raise ConfigError(
                f"{where}: [{name}] csv_data_file is for NiftyNet's CSV reader, which "
                "segmentation does not use; list image files with path_to_search or csv_file"
            )
    check_window(cfg)
