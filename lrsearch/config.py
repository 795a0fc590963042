"""NiftyNet 0.6.0 segmentation configs: INI → typed, validated config; nothing else reads the INI.

Every rule here is taken from NiftyNet's own source (paths below are inside the ``niftynet``
package), so a config that passes :func:`load_config`, :func:`check_training`,
:func:`scan_data`, :func:`check_labels` and :func:`check_inference_window` does not fail in
NiftyNet for a reason that could have been seen up front:

* keys, types and defaults: ``utilities/user_parameters_default.py`` and the SEGMENTATION part
  of ``utilities/user_parameters_custom.py``; value parsing: ``user_parameters_helper.py`` and
  ``user_parameters_regex.py``. NiftyNet checks key names against the union of all sections and
  silently ignores a known key set in the wrong section (``user_parameters_parser.py``: the
  section parser's ``set_defaults`` stores it, unread and unparsed); lrsearch does the same and
  warns (:attr:`NiftyNetConfig.warnings`), naming the section NiftyNet reads it in.
* paths: ``utilities/user_parameters_parser.py`` (default ``model_dir``), ``__init__.py`` main
  (``dataset_split_file`` and friends relative to ``model_dir``), ``io/misc_io.py``
  (``resolve_module_dir``, ``to_absolute_path``) and ``utilities/filename_matching.py``
  (``path_to_search``: working directory, then the NiftyNet home folder).
* subject ids and file matching: ``utilities/filename_matching.py``, ``utilities/util_csv.py``
  and ``io/image_sets_partitioner.py``.
* window sizes: ``network/*.py`` (see :data:`WINDOW_RULES`), ``engine/image_window.py``,
  ``engine/sampler_uniform_v2.py`` and ``engine/sampler_grid_v2.py`` (inference).
* image shapes: ``io/image_type.py`` (``SpatialImage3D.shape``) and ``io/misc_io.py``
  (``correct_image_if_necessary``, ``compute_orientation``, ``do_resampling``), from the
  headers; ``layer/pad.py`` for volume padding.
* label values: ``application/segmentation_application.py`` and
  ``layer/discrete_label_normalisation.py``.
"""

from __future__ import annotations

import configparser
import contextlib
import csv
import dataclasses
import difflib
import json
import math
import os
import random
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path
from types import MappingProxyType

from lrsearch.errors import ConfigError, DataError
from lrsearch.paths import cache_dir

__all__ = [
    "FIXED_SECTIONS",
    "INPUT",
    "INPUT_REFERENCES",
    "SCHEMA",
    "WINDOW_RULES",
    "Dataset",
    "InputSection",
    "KeySpec",
    "NiftyNetConfig",
    "WindowRule",
    "ImageInfo",
    "LabelValues",
    "check_inference_window",
    "check_labels",
    "check_model_dir",
    "check_loaders",
    "check_training",
    "check_window",
    "load_config",
    "match_subjects",
    "niftynet_home",
    "read_split",
    "scan_data",
    "split_phases",
    "write_split",
]

# --------------------------------------------------------------------------------------------
# Value types, as NiftyNet's argparse ``type=`` functions convert them
# --------------------------------------------------------------------------------------------

_TRUE = frozenset({"yes", "true", "t", "y", "1"})  # user_parameters_helper.str2boolean
_FALSE = frozenset({"no", "false", "f", "n", "0"})

# user_parameters_regex.match_array: an optional (...) or {...} around a comma list that is
# either all numbers or all "literals" ([-_a-zA-Z0-9 \:.]); an empty list is allowed.
_NUM = r"\s*(?:[-+]?\d*\.\d+|[-+]?\d+)\s*"
_LIT = r"\s*[-_a-zA-Z0-9 \\:.]+\s*"
_LIST = rf"(?:(?:{_NUM},)*{_NUM}|(?:{_LIT},)*{_LIT})"
_ARRAY = re.compile(rf"\(({_LIST})?\)|\{{({_LIST})?\}}|({_LIST})?")


def _split_array(text: str) -> list[str] | None:
    """The items of a NiftyNet array value, or None when NiftyNet's regex rejects it."""
    match = _ARRAY.fullmatch(text)
    if match is None:
        return None
    body = next((g for g in match.groups() if g is not None), None)
    if body is None:
        return []
    return [item.strip() for item in body.split(",")]


@dataclass(frozen=True)
class KeySpec:
    """One config key: its type after NiftyNet's parsing, NiftyNet's default and allowed values.

    ``type`` is int, float, bool, str or tuple (then ``item`` is the element type). ``fill`` is
    how NiftyNet completes short spatial tuples: ``"ones"`` (``spatial_atleast3d``) or
    ``"last"`` (``spatialnumarray``). ``path`` says how NiftyNet resolves a relative path:
    ``"model_dir"`` (joined to the model folder), ``"cwd"``, ``"search"`` (working directory,
    then NiftyNet home), ``"csv"`` (working directory, config folder, NiftyNet home) or
    ``"model"`` (model_dir itself, see :attr:`NiftyNetConfig.model_dir`).
    """

    type: type
    default: object
    item: type | None = None
    fill: str | None = None
    choices: tuple[str, ...] | None = None
    dotted: bool = False  # a "package.module.Class" name is accepted instead of a choice
    casefold: bool = False
    path: str | None = None
    help: str = ""

    @property
    def expected(self) -> str:
        if self.type is tuple:
            noun = {int: "integers", float: "numbers", str: "names"}[self.item]
            example = {int: "80, 80, 80", float: "0.01, 0.99", str: "T1, T2"}[self.item]
            return f"comma-separated {noun}, e.g. {example}"
        if self.type is bool:
            return "a boolean (True/False, yes/no, 1/0)"
        return {int: "an integer", float: "a number", str: "text"}[self.type]

    def parse(self, text: str) -> object:
        """Converts INI text as NiftyNet does; raises ValueError(expected) when it would fail."""
        if self.type is str:
            return text
        if self.type is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError(self.expected)
        if self.type is int:
            return int(text)
        if self.type is float:
            return float(text)
        items = _split_array(text)
        if items is None:
            raise ValueError(self.expected)
        return self._filled(tuple(self.item(i) for i in items))

    def coerce(self, value: object) -> object:
        """A Python value given to :meth:`NiftyNetConfig.with_values`, checked and normalised."""
        if isinstance(value, str) and self.type is not str:
            return self.parse(value)
        if self.type is str:
            if isinstance(value, os.PathLike):
                value = os.fspath(value)
            if not isinstance(value, str) or "\n" in value:
                raise ValueError(self.expected)
            return value
        if self.type is bool:
            if not isinstance(value, bool):
                raise ValueError(self.expected)
            return value
        if self.type is int:
            if isinstance(value, bool) or not isinstance(value, Integral):
                raise ValueError(self.expected)
            return int(value)
        if self.type is float:
            if isinstance(value, bool) or not isinstance(value, Real):
                raise ValueError(self.expected)
            return float(value)
        if not isinstance(value, (tuple, list)):
            value = (value,)
        items = []
        for item in value:
            if self.item is str:
                if not isinstance(item, str) or _split_array(item) != [item.strip()]:
                    raise ValueError(self.expected)
                items.append(item.strip())
            elif isinstance(item, bool) or not isinstance(
                item, Integral if self.item is int else Real
            ):
                raise ValueError(self.expected)
            else:
                items.append(self.item(item))
        return self._filled(tuple(items))

    def format(self, value: object) -> str:
        """INI text that NiftyNet parses back to ``value``."""
        if self.type is tuple and isinstance(value, tuple):
            return ", ".join(repr(v) if isinstance(v, float) else str(v) for v in value)
        if isinstance(value, float):
            return repr(value)
        return "" if value is None else str(value)

    def _filled(self, values: tuple) -> tuple:
        # spatial_atleast3d / spatialnumarray: an empty list counts as (0,)
        if self.fill == "ones":
            values = values or (0,)
            return values + (1,) * (3 - len(values))
        if self.fill == "last":
            values = values or (0,)
            return (values + (values[-1],) * 3)[:3]
        return values


def _s(default: str | None = "", **kw) -> KeySpec:
    return KeySpec(str, default, **kw)


def _i(default: int, **kw) -> KeySpec:
    return KeySpec(int, default, **kw)


def _f(default: float, **kw) -> KeySpec:
    return KeySpec(float, default, **kw)


def _b(default: bool) -> KeySpec:
    return KeySpec(bool, default)


def _t(item: type, default: object, **kw) -> KeySpec:
    return KeySpec(tuple, default, item=item, **kw)


# Choice lists are copied from the tables NiftyNet looks names up in (file in the comment).
_NETWORKS = (  # engine/application_factory.py SUPPORTED_NETWORK
    "highres3dnet", "highres3dnet_small", "highres3dnet_large", "toynet", "unet", "nonewnet",
    "vnet", "dense_vnet", "deepmedic", "scalenet", "holisticnet", "unet_2d",
    "resnet", "se_resnet", "vae", "simulator_gan", "simple_gan",
)
_OPTIMISERS = (  # engine/application_factory.py SUPPORTED_OPTIMIZERS
    "adam", "gradientdescent", "momentum", "nesterov", "adagrad", "rmsprop",
)
_LOSSES = (  # engine/application_factory.py SUPPORTED_LOSS_SEGMENTATION
    "CrossEntropy", "CrossEntropy_Dense", "Dice", "Dice_NS", "Dice_Dense", "Dice_Dense_NS",
    "Tversky", "GDSC", "DicePlusXEnt", "WGDL", "SensSpec", "VolEnforcement",
)
_INITIALISERS = (  # engine/application_factory.py SUPPORTED_INITIALIZATIONS
    "constant", "zeros", "ones", "uniform_scaling", "orthogonal", "variance_scaling",
    "glorot_normal", "glorot_uniform", "he_normal", "he_uniform",
)
_ACTIVATIONS = (  # layer/activation.py SUPPORTED_OP
    "relu", "relu6", "elu", "softplus", "softsign", "sigmoid", "tanh", "prelu", "selu",
    "leakyrelu", "dropout",
)
_PAD_MODES = (  # numpy.pad modes (NETWORK volume_padding_mode goes straight to np.pad)
    "constant", "edge", "linear_ramp", "maximum", "mean", "median", "minimum", "reflect",
    "symmetric", "wrap", "empty",
)
_PHASES = ("training", "validation", "inference", "all")  # engine/signal.py
_LOADERS = ("nibabel", "opencv", "skimage", "pillow", "simpleitk", "dummy")  # io/image_loader
# SegmentationApplication.SUPPORTED_SAMPLING; argparse also lists 'patch', which segmentation
# has no sampler for (KeyError at start-up).
_SAMPLINGS = ("uniform", "weighted", "resize", "balanced")

INPUT = "INPUT"
"""SCHEMA key for the keys of every input section (the sections SEGMENTATION refers to)."""

INPUT_REFERENCES = ("image", "label", "weight", "sampler", "inferred", "value")
"""SEGMENTATION keys that name input sections (segmentation_application.SUPPORTED_INPUT)."""

_TRAINING_INPUTS = ("image", "label", "weight", "sampler")  # readers of the train action

FIXED_SECTIONS = ("SYSTEM", "NETWORK", "TRAINING", "INFERENCE", "EVALUATION", "SEGMENTATION")

# Keys of NiftyNet's other applications (user_parameters_custom.py: REGRESSION, GAN,
# AUTOENCODER, REGISTRATION, CLASSIFICATION sections). NiftyNet's key check takes the union of
# every application's keys, so these pass anywhere and segmentation never reads them.
_OTHER_APPLICATION_KEYS = frozenset({
    "error_map", "inference_type", "loss_border", "n_interpolations", "noise_size",
    "noise_stddev",
})

SCHEMA: dict[str, dict[str, KeySpec]] = {
    "SYSTEM": {
        "cuda_devices": _s(""),
        "num_threads": _i(2),
        "num_gpus": _i(1),
        "model_dir": _s(None, path="model", help="default: <config folder>/model"),
        "dataset_split_file": _s("./dataset_split.csv", path="model_dir"),
        "event_handler": _t(str, (
            "model_saver", "model_restorer", "sampler_threading", "apply_gradients",
            "output_interpreter", "console_logger", "tensorboard_logger",
            "performance_logger")),
        "iteration_generator": _s("iteration_generator"),
    },
    "NETWORK": {
        "name": _s(None, choices=_NETWORKS, dotted=True),
        "activation_function": _s("relu", choices=_ACTIVATIONS),
        "batch_size": _i(2),
        "smaller_final_batch_mode": _s("pad", choices=("drop", "pad", "dynamic")),
        "decay": _f(0.0),
        "reg_type": _s("L2", choices=("L1", "L2"), casefold=True),
        "volume_padding_size": _t(int, (0, 0, 0), fill="last"),
        "volume_padding_mode": _s("minimum", choices=_PAD_MODES),
        "volume_padding_to_size": _t(int, (0,), fill="last"),
        "window_sampling": _s("uniform", choices=_SAMPLINGS),
        # NiftyNet gives this key no type, so it arrives as text; only regression reads it.
        "force_output_identity_resizing": _s(False),
        "queue_length": _i(5),
        "multimod_foreground_type": _s("and", choices=("or", "and", "multi")),
        "histogram_ref_file": _s("./histogram_ref_file.txt", path="model_dir"),
        "norm_type": _s("percentile", choices=("percentile", "quartile", "median")),
        "cutoff": _t(float, (0.01, 0.99)),
        "foreground_type": _s("otsu_plus", choices=(
            "threshold_plus", "threshold_minus", "otsu_plus", "otsu_minus", "mean_plus")),
        "normalisation": _b(False),
        "rgb_normalisation": _b(False),
        "whitening": _b(False),
        "normalise_foreground_only": _b(False),
        "weight_initializer": _s("he_normal", choices=_INITIALISERS, dotted=True),
        "bias_initializer": _s("zeros", choices=_INITIALISERS, dotted=True),
        "keep_prob": _f(1.0),
        # parsed by yaml.load in NiftyNet (only when PyYAML imports); kept as text here
        "weight_initializer_args": _s(""),
        "bias_initializer_args": _s(""),
    },
    "TRAINING": {
        "optimiser": _s("adam", choices=_OPTIMISERS, dotted=True),
        "sample_per_volume": _i(1),
        "rotation_angle": _t(float, ()),
        "rotation_angle_x": _t(float, ()),
        "rotation_angle_y": _t(float, ()),
        "rotation_angle_z": _t(float, ()),
        "scaling_percentage": _t(float, ()),
        "isotropic_scaling": _b(False),
        "antialiasing": _b(True),
        "bias_field_range": _t(float, ()),
        "bf_order": _i(3),
        "random_flipping_axes": _t(int, -1),  # -1 (an int) means no flipping
        "do_elastic_deformation": _b(False),
        "num_ctrl_points": _i(4),
        "deformation_sigma": _f(15.0),
        "proportion_to_deform": _f(0.5),
        "lr": _f(0.01),
        "loss_type": _s("Dice", choices=_LOSSES, dotted=True),
        "starting_iter": _i(0),
        "save_every_n": _i(500),
        "tensorboard_every_n": _i(20),
        "max_iter": _i(10000),
        "max_checkpoints": _i(100),
        "validation_every_n": _i(-1),
        "validation_max_iter": _i(1),
        "exclude_fraction_for_validation": _f(0.0),
        "exclude_fraction_for_inference": _f(0.0),
        "vars_to_restore": _s(""),
        "vars_to_freeze": _s(""),
        "patience": _i(100),
        "early_stopping_mode": _s("mean", choices=(
            "mean", "robust_mean", "median", "generalisation_loss", "median_smoothing",
            "validation_up")),
    },
    "INFERENCE": {
        "spatial_window_size": _t(int, (), fill="ones"),
        "inference_iter": _i(-1),
        "dataset_to_infer": _s("", choices=("", *_PHASES)),
        "save_seg_dir": _s("./output", path="model_dir"),
        "output_postfix": _s("_niftynet_out"),
        "output_interp_order": _i(0),
        "border": _t(int, (0, 0, 0), fill="last"),
        "fill_constant": _f(0.0),
    },
    "EVALUATION": {
        "evaluations": _s(""),
        "save_csv_dir": _s("./evaluation", path="model_dir"),
    },
    "SEGMENTATION": {
        "num_classes": _i(-1),
        "output_prob": _b(False),
        "label_normalisation": _b(False),
        "softmax": _b(True),
        "min_sampling_ratio": _f(0.0),
        "compulsory_labels": _t(int, (0, 1)),
        "rand_samples": _i(0),
        "min_numb_labels": _i(1),
        "proba_connect": _b(True),
        "evaluation_units": _s("foreground", choices=("foreground", "label", "cc")),
        "do_mixup": _b(False),
        "mixup_alpha": _f(0.2),
        "mix_match": _b(False),
        **{name: _t(str, ()) for name in INPUT_REFERENCES},
    },
    INPUT: {
        "csv_file": _s("", path="csv"),
        "csv_data_file": _s("", path="cwd"),
        "to_ohe": _b(False),
        "path_to_search": _s("", path="search"),
        "filename_contains": _t(str, ()),  # NiftyNet: None, i.e. no constraint
        "filename_not_contains": _t(str, ()),
        "filename_removefromid": _s(""),
        "interp_order": _i(1, choices=("0", "1", "2", "3")),
        "loader": _s(None, choices=("", *_LOADERS)),
        "pixdim": _t(float, ()),
        "axcodes": _t(str, ()),
        "spatial_window_size": _t(int, (), fill="ones"),
    },
}


# --------------------------------------------------------------------------------------------
# Reading the INI
# --------------------------------------------------------------------------------------------

def _standard_section(name: str) -> str:
    # user_parameters_helper.standardise_string: NiftyNet renames sections this way
    return re.sub(r"[^0-9a-zA-Z_\- ]+", "", name.strip())


def _nearest(word: str, candidates: Iterable[str]) -> str | None:
    options = list(dict.fromkeys(candidates))
    if not options:
        return None
    lowered = {c.lower(): c for c in options}
    best = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.0)
    return lowered[best[0]] if best else None


def _line_numbers(text: str) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """Where each section and key is in the file, for messages (configparser forgets)."""
    sections: dict[str, int] = {}
    keys: dict[tuple[str, str], int] = {}
    current = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        header = re.match(r"\[(.+)\]", stripped)
        if header and not line[:1].isspace():
            current = _standard_section(header.group(1))
            sections.setdefault(current, number)
            continue
        key = re.match(r"([^=:]+?)\s*[=:]", stripped)
        if key and current is not None and not line[:1].isspace():
            keys.setdefault((current, key.group(1).strip().lower()), number)
    return sections, keys


def _read_ini(path: Path) -> tuple[dict[str, dict[str, str]], dict, dict]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from None
    # NiftyNetLaunchConfig is a plain ConfigParser: same strictness, '%' interpolation,
    # no inline comments, keys lower-cased.
    parser = configparser.ConfigParser()
    try:
        parser.read_string(text, source=str(path))
    except configparser.MissingSectionHeaderError as err:
        raise ConfigError(
            f"{path}:{err.lineno}: {err.line.strip()!r} comes before any [SECTION] header"
        ) from None
    except configparser.DuplicateSectionError as err:
        raise ConfigError(
            f"{path}:{err.lineno}: section [{err.section}] appears twice; merge the two"
        ) from None
    except configparser.DuplicateOptionError as err:
        raise ConfigError(
            f"{path}:{err.lineno}: [{err.section}] {err.option} is set twice; keep one"
        ) from None
    except configparser.ParsingError as err:
        lineno = err.errors[0][0]  # configparser keeps repr(line); quote the file instead
        line = text.splitlines()[lineno - 1] if 0 < lineno <= len(text.splitlines()) else ""
        raise ConfigError(
            f"{path}:{lineno}: cannot parse {line.strip()!r}: expected 'key = value', "
            "a [SECTION] header or a # comment line"
        ) from None
    section_lines, key_lines = _line_numbers(text)
    if parser.defaults():
        raise ConfigError(
            f"{path}:{section_lines.get('DEFAULT', 0)}: a [DEFAULT] section is copied into "
            "every section, which NiftyNet then rejects or misreads; move its keys into the "
            "section they belong to"
        )
    raw: dict[str, dict[str, str]] = {}
    for section in parser.sections():
        name = _standard_section(section)
        if name in raw:
            raise ConfigError(
                f"{path}:{section_lines.get(name, 0)}: sections [{section}] and another one "
                f"both become [{name}] in NiftyNet (it drops characters other than letters, "
                "digits, '_', '-' and spaces); rename one"
            )
        raw[name] = {}
        for key in parser.options(section):
            try:
                raw[name][key] = parser.get(section, key)
            except configparser.InterpolationError as err:
                line = key_lines.get((name, key), 0)
                raise ConfigError(
                    f"{path}:{line}: [{name}] {key}: {err.message.splitlines()[0]}; "
                    "NiftyNet expands '%(name)s' references, so write a literal % as %%"
                ) from None
    return raw, section_lines, key_lines


class _Where:
    """Prefix of messages: FILE:LINE when the value came from the file."""

    def __init__(self, path: Path, sections: Mapping, keys: Mapping, origin: str = ""):
        self.path, self.sections, self.keys, self.origin = path, sections, keys, origin

    def section(self, section: str) -> str:
        line = self.sections.get(section)
        return f"{self.path}:{line}" if line and not self.origin else self.plain()

    def key(self, section: str, key: str) -> str:
        line = self.keys.get((section, key))
        return f"{self.path}:{line}" if line and not self.origin else self.plain()

    def plain(self) -> str:
        return f"{self.path}{self.origin}"


def _spec_table(section: str) -> dict[str, KeySpec]:
    return SCHEMA[section] if section in FIXED_SECTIONS else SCHEMA[INPUT]


def _unknown_key(where: _Where, section: str, key: str) -> ConfigError:
    own = section if section in FIXED_SECTIONS else INPUT
    message = f"{where.key(section, key)}: [{section}] unknown key '{key}'"
    owners = [s for s in (*FIXED_SECTIONS, INPUT) if s != own and key in SCHEMA[s]]
    if owners:
        place = "an input section" if owners[0] == INPUT else f"[{owners[0]}]"
        message += f": it belongs in {place} (NiftyNet ignores it in [{section}])"
    else:
        message += f"; did you mean '{_nearest(key, SCHEMA[own])}'?"
    return ConfigError(message)


def _bad_value(where: _Where, section: str, key: str, value: object, spec: KeySpec,
               reason: str) -> ConfigError:
    shown = value if isinstance(value, str) else repr(value)
    message = f"{where.key(section, key)}: [{section}] {key} = {shown}: {reason}"
    if isinstance(value, str) and re.search(r"\s[#;]", value):
        message += " (a comment must be on its own line: NiftyNet reads '# …' as part of the value)"
    return ConfigError(message)


def _owners(section: str, key: str) -> list[str]:
    """The sections other than ``section``'s own table that NiftyNet reads ``key`` in."""
    own = section if section in FIXED_SECTIONS else INPUT
    return [s for s in (*FIXED_SECTIONS, INPUT) if s != own and key in SCHEMA[s]]


def _misplaced_warning(where: _Where, section: str, key: str,
                       applied: Mapping[str, Mapping[str, object]]) -> str:
    """One line: a known key in a section where NiftyNet ignores it, and where it belongs."""
    owners = _owners(section, key)
    if not owners:
        return (f"{where.key(section, key)}: [{section}] {key} is ignored: it is a key of "
                "another NiftyNet application, segmentation never reads it; remove it")
    places = " or ".join("an input section" if o == INPUT else f"[{o}]" for o in owners)
    owner = owners[0]
    spec = SCHEMA[owner][key]
    if len(owners) > 1 or owner == INPUT:
        effect = ""
    elif key in applied.get(owner, {}):
        effect = f" (its [{owner}] value {spec.format(applied[owner][key])} applies)"
    else:
        shown = spec.format(spec.default)
        effect = f" (its default {shown} applies)" if shown else ""
    return (f"{where.key(section, key)}: [{section}] {key} is ignored: NiftyNet reads {key} "
            f"only in {places}{effect}; move it there to use it")


def _typed(where: _Where, section: str, key: str, value: object, from_text: bool) -> object:
    spec = _spec_table(section).get(key)
    if spec is None:
        raise _unknown_key(where, section, key)
    try:
        typed = spec.parse(value) if from_text else spec.coerce(value)
    except (ValueError, TypeError):
        raise _bad_value(where, section, key, value, spec, f"expected {spec.expected}") from None
    _check_choice(where, section, key, typed, spec)
    return typed


def _check_choice(where: _Where, section: str, key: str, value: object, spec: KeySpec) -> None:
    if spec.choices is None or value is None:
        return
    text = str(value)
    if spec.dotted and "." in text:
        return  # NiftyNet imports "package.module.Class" names itself
    allowed = [c.lower() for c in spec.choices] if spec.casefold else list(spec.choices)
    if (text.lower() if spec.casefold else text) in allowed:
        return
    shown = ", ".join(c or "''" for c in spec.choices)
    reason = f"NiftyNet accepts one of {shown}"
    if spec.dotted:
        reason += " (or a 'package.module.Class' name)"
    if key == "window_sampling" and text == "patch":
        reason = "segmentation has no 'patch' sampler; " + reason
    raise _bad_value(where, section, key, value, spec,
                     f"{reason}; did you mean '{_nearest(text, spec.choices)}'?")


def _validate(where: _Where, values: dict[str, dict[str, object]], from_text: bool,
              misplaced: dict[str, dict[str, str]] | None = None
              ) -> dict[str, dict[str, object]]:
    """Types every value and checks the section structure; returns the typed values.

    With ``misplaced`` (reading a file), a key NiftyNet knows but ignores in its section is
    moved there untyped, as NiftyNet stores it, instead of being refused.
    """
    typed: dict[str, dict[str, object]] = {}
    # SEGMENTATION first: it decides which other sections are input sections.
    order = sorted(values, key=lambda s: s != "SEGMENTATION")
    referenced: dict[str, str] = {}
    for section in order:
        if section not in FIXED_SECTIONS and section not in referenced:
            known = [*FIXED_SECTIONS, *(r for r in referenced if r not in values)]
            raise ConfigError(
                f"{where.section(section)}: unknown section [{section}]; did you mean "
                f"[{_nearest(section, known)}]? Sections are {', '.join(FIXED_SECTIONS)} "
                "and the input sections that [SEGMENTATION] names in "
                f"{'/'.join(INPUT_REFERENCES)}"
            )
        typed[section] = {}
        for key, value in values[section].items():
            if misplaced is not None and key not in _spec_table(section) and (
                    _owners(section, key) or key in _OTHER_APPLICATION_KEYS):
                misplaced.setdefault(section, {})[key] = value
                continue
            typed[section][key] = _typed(where, section, key, value, from_text)
        if section == "SEGMENTATION":
            for ref in INPUT_REFERENCES:
                for name in typed[section].get(ref, ()):
                    referenced.setdefault(name, ref)
    if "SEGMENTATION" not in typed:
        raise ConfigError(
            f"{where.plain()}: no [SEGMENTATION] section; net_segment needs it "
            "(num_classes and the image/label input sections)"
        )
    for name, ref in referenced.items():
        if name in FIXED_SECTIONS:
            raise ConfigError(
                f"{where.key('SEGMENTATION', ref)}: [SEGMENTATION] {ref} names [{name}], "
                "which is a NiftyNet settings section, not an input section"
            )
        if name not in typed:
            inputs = [s for s in typed if s not in FIXED_SECTIONS]
            hint = f" (did you mean [{_nearest(name, inputs)}]?)" if inputs else ""
            raise ConfigError(
                f"{where.key('SEGMENTATION', ref)}: [SEGMENTATION] {ref} names section "
                f"[{name}], which the config does not define{hint}. An input section sets "
                "path_to_search, filename_contains and spatial_window_size"
            )
        keys = typed[name]
        if not any(keys.get(k) for k in ("path_to_search", "csv_file", "csv_data_file")):
            raise ConfigError(
                f"{where.section(name)}: [{name}] sets neither path_to_search nor csv_file, "
                "so NiftyNet finds no image for it; add path_to_search = <folder>"
            )
    return typed


def _freeze(values: Mapping[str, Mapping[str, object]]) -> Mapping[str, Mapping[str, object]]:
    return MappingProxyType({s: MappingProxyType(dict(kv)) for s, kv in values.items()})


def load_config(path: str | os.PathLike) -> NiftyNetConfig:
    """Reads and validates a NiftyNet segmentation INI. Raises :class:`ConfigError`."""
    ini = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
    raw, section_lines, key_lines = _read_ini(ini)
    where = _Where(ini, section_lines, key_lines)
    misplaced: dict[str, dict[str, str]] = {}
    values = _validate(where, raw, from_text=True, misplaced=misplaced)
    return NiftyNetConfig(ini, _freeze(values), _lines=(section_lines, key_lines),
                          misplaced=_freeze(misplaced))


# --------------------------------------------------------------------------------------------
# Paths, resolved as NiftyNet resolves them
# --------------------------------------------------------------------------------------------

def niftynet_home() -> Path:
    """NiftyNet's home folder (utilities/niftynet_global_config.py), read without side effects.

    ``$niftynet_config_home/config.ini`` (default ``~/.niftynet/config.ini``), key ``home`` of
    section ``[global]``; ``~/niftynet`` when the file is missing or broken (NiftyNet then
    rewrites it with that default).
    """
    config_home = os.environ.get("niftynet_config_home") or os.path.join(
        os.path.expanduser("~"), ".niftynet")
    home = "~/niftynet"
    parser = configparser.ConfigParser()
    try:
        if parser.read(os.path.join(config_home, "config.ini")) and parser.has_option(
                "global", "home"):
            home = parser.get("global", "home")
    except configparser.Error:
        pass
    return Path(os.path.expanduser(home))


def _resolve_model_dir(raw: str | None, config_path: Path) -> Path:
    # user_parameters_parser.run: unset → <config folder>/model; __init__.main then calls
    # misc_io.resolve_module_dir: an existing folder, the folder of an existing file, a folder
    # under the NiftyNet home, else the path itself (created), all made absolute against the
    # working directory. (NiftyNet first tries the value as an importable Python module name;
    # lrsearch does not, so do not name a model folder like an installed package.)
    if not raw:
        return Path(os.path.join(os.path.dirname(config_path), "model"))
    expanded = os.path.expanduser(raw)
    if os.path.isdir(expanded):
        return Path(os.path.abspath(expanded))
    if os.path.isfile(expanded):
        return Path(os.path.abspath(os.path.dirname(expanded)))
    under_home = os.path.join(niftynet_home(), expanded)
    if os.path.isdir(under_home):
        return Path(os.path.abspath(under_home))
    return Path(os.path.abspath(expanded))


def _under_model_dir(raw: str, model_dir: Path) -> Path:
    # misc_io.to_absolute_path: absolute stays, relative joins model_dir
    expanded = os.path.expanduser(raw)
    if os.path.isabs(expanded):
        return Path(expanded)
    return Path(os.path.abspath(os.path.join(model_dir, expanded)))


def _search_candidates(raw: str) -> tuple[Path, Path]:
    # filename_matching.KeywordsMatching.from_dict: as given (against the working directory),
    # then joined to the NiftyNet home folder
    here = Path(os.path.abspath(os.path.expanduser(raw)))
    home = Path(os.path.abspath(os.path.join(niftynet_home(), raw)))
    return here, home


def _resolve_search(raw: str) -> Path | None:
    for candidate in _search_candidates(raw):
        if candidate.exists():
            return candidate
    return None


def _resolve_csv(raw: str, config_path: Path) -> Path | None:
    # user_parameters_parser.run → misc_io.resolve_file_name: as given, then next to the
    # config file, then in the NiftyNet home. Found: NiftyNet reads it and ignores
    # path_to_search. Not found: NiftyNet searches path_to_search instead.
    if not raw:
        return None
    for base in ("", os.path.dirname(config_path), os.fspath(niftynet_home())):
        candidate = os.path.join(base, raw) if base else raw
        if os.path.isfile(candidate):
            return Path(os.path.abspath(candidate))
    return None


# --------------------------------------------------------------------------------------------
# The config
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class InputSection:
    """One input section, every key filled with NiftyNet's default when the file omits it."""

    name: str
    path_to_search: tuple[str, ...]  # as written (comma-separated in the file)
    filename_contains: tuple[str, ...]
    filename_not_contains: tuple[str, ...]
    filename_removefromid: str
    spatial_window_size: tuple[int, ...]
    pixdim: tuple[float, ...]
    axcodes: tuple[str, ...]
    interp_order: int
    loader: str | None
    csv_file: str
    csv_data_file: str = ""

    @property
    def resamples(self) -> bool:
        """Whether NiftyNet reorients or resamples the images (file shapes then differ)."""
        return bool(self.pixdim) or bool(self.axcodes)


@dataclass(frozen=True)
class NiftyNetConfig:
    """A validated NiftyNet segmentation config.

    ``values`` holds only what the file sets, typed; :meth:`get` falls back to NiftyNet's
    default. Relative paths are resolved when asked for, against the working directory of
    that moment, because that is what NiftyNet does when it starts.
    """

    path: Path
    values: Mapping[str, Mapping[str, object]]
    _lines: tuple[Mapping, Mapping] = field(default=({}, {}), repr=False, compare=False)
    # keys the file sets where NiftyNet ignores them (section → key → text), kept for warnings
    misplaced: Mapping[str, Mapping[str, str]] = field(
        default_factory=lambda: MappingProxyType({}), repr=False, compare=False)

    @property
    def warnings(self) -> tuple[str, ...]:
        """One line per key NiftyNet accepts but ignores where the file sets it."""
        where = self._where()
        return tuple(_misplaced_warning(where, section, key, self.values)
                     for section, keys in self.misplaced.items() for key in keys)

    # -- lookup ------------------------------------------------------------------------------
    def get(self, section: str, key: str) -> object:
        if section not in FIXED_SECTIONS and section not in self.input_sections:
            raise ConfigError(
                f"{self.path}: no section [{section}]; did you mean "
                f"[{_nearest(section, (*FIXED_SECTIONS, *self.input_sections))}]?"
            )
        spec = _spec_table(section).get(key)
        if spec is None:
            raise _unknown_key(self._where(), section, key)
        return self.values.get(section, {}).get(key, spec.default)

    def is_set(self, section: str, key: str) -> bool:
        return key in self.values.get(section, {})

    @property
    def input_sections(self) -> tuple[str, ...]:
        return tuple(s for s in self.values if s not in FIXED_SECTIONS)

    @property
    def image_sections(self) -> tuple[str, ...]:
        return self.get("SEGMENTATION", "image")

    @property
    def label_sections(self) -> tuple[str, ...]:
        return self.get("SEGMENTATION", "label")

    @property
    def inputs(self) -> dict[str, InputSection]:
        result = {}
        for name in self.input_sections:
            path_to_search = self.get(name, "path_to_search") or ""
            result[name] = InputSection(
                name=name,
                path_to_search=tuple(p.strip() for p in path_to_search.split(",") if p.strip()),
                filename_contains=self.get(name, "filename_contains"),
                filename_not_contains=self.get(name, "filename_not_contains"),
                filename_removefromid=self.get(name, "filename_removefromid"),
                spatial_window_size=self.get(name, "spatial_window_size"),
                pixdim=self.get(name, "pixdim"),
                axcodes=self.get(name, "axcodes"),
                interp_order=self.get(name, "interp_order"),
                loader=self.get(name, "loader"),
                csv_file=self.get(name, "csv_file"),
                csv_data_file=self.get(name, "csv_data_file"),
            )
        return result

    # -- typed shortcuts ---------------------------------------------------------------------
    @property
    def network_name(self) -> str | None:
        return self.get("NETWORK", "name")

    @property
    def batch_size(self) -> int:
        return self.get("NETWORK", "batch_size")

    @property
    def lr(self) -> float:
        return self.get("TRAINING", "lr")

    @property
    def optimiser(self) -> str:
        return self.get("TRAINING", "optimiser")

    @property
    def max_iter(self) -> int:
        return self.get("TRAINING", "max_iter")

    @property
    def validation_every_n(self) -> int:
        return self.get("TRAINING", "validation_every_n")

    @property
    def validation_max_iter(self) -> int:
        return self.get("TRAINING", "validation_max_iter")

    @property
    def save_every_n(self) -> int:
        return self.get("TRAINING", "save_every_n")

    @property
    def loss_type(self) -> str:
        return self.get("TRAINING", "loss_type")

    @property
    def num_classes(self) -> int:
        return self.get("SEGMENTATION", "num_classes")

    @property
    def model_dir(self) -> Path:
        """Absolute model folder, as NiftyNet resolves ``[SYSTEM] model_dir`` at start-up."""
        return _resolve_model_dir(self.get("SYSTEM", "model_dir"), self.path)

    @property
    def dataset_split_file(self) -> Path | None:
        """Absolute split file (relative values are under model_dir); None when set empty."""
        return self.model_path("SYSTEM", "dataset_split_file")

    def model_path(self, section: str, key: str) -> Path | None:
        """A path NiftyNet resolves against model_dir (dataset_split_file, save_seg_dir, …)."""
        if _spec_table(section).get(key, KeySpec(str, None)).path != "model_dir":
            raise ValueError(f"[{section}] {key} is not resolved against model_dir")
        raw = self.get(section, key)
        return _under_model_dir(raw, self.model_dir) if raw else None

    def search_dirs(self, section: str) -> tuple[Path, ...]:
        """The folders NiftyNet lists for an input section. Raises :class:`DataError`."""
        found = []
        for raw in self.inputs[section].path_to_search:
            resolved = _resolve_search(raw)
            if resolved is None:
                here, home = _search_candidates(raw)
                raise DataError(
                    f"[{section}] path_to_search '{raw}' does not exist: NiftyNet looks in "
                    f"{here} (relative to the working directory {os.getcwd()}) and then in "
                    f"{home} (NiftyNet home); put the images there or fix path_to_search "
                    f"in {self.path}"
                )
            if not resolved.is_dir():
                raise DataError(
                    f"[{section}] path_to_search '{raw}' is {resolved}, a file, not a folder; "
                    f"point it at the folder that holds the images in {self.path}"
                )
            found.append(resolved)
        return tuple(found)

    # -- derived configs ---------------------------------------------------------------------
    def with_values(self, changes: Mapping[str, Mapping[str, object]]) -> NiftyNetConfig:
        """A copy with keys set (None removes a key). Checked like a file: ConfigError."""
        values = {s: dict(kv) for s, kv in self.values.items()}
        for section, keys in changes.items():
            for key, value in keys.items():
                if value is None:
                    values.get(section, {}).pop(key, None)
                else:
                    values.setdefault(section, {})[key] = value
        # Re-validate everything: values already typed coerce to themselves.
        checked = _validate(self._where(" (with_values)"), values, from_text=False)
        return NiftyNetConfig(self.path, _freeze(checked), _lines=self._lines,
                              misplaced=self.misplaced)

    def write(self, path: str | os.PathLike) -> None:
        """Writes an INI NiftyNet parses to this config, with every path absolute."""
        target = Path(path)
        lines = [
            f"# Written by lrsearch from {self.path}.",
            "# Every path is absolute, so this file works from any working directory.",
        ]
        order = [*self.input_sections, *(s for s in FIXED_SECTIONS if s in self.values)]
        if "SYSTEM" not in order:
            order.append("SYSTEM")
        for section in order:
            lines += ["", f"[{section}]"]
            keys = dict(self.values.get(section, {}))
            if section == "SYSTEM":
                keys["model_dir"] = str(self.model_dir)
            for key, value in keys.items():
                text = self._text_for_file(section, key, value)
                lines.append(f"{key} = {text}".rstrip())
            # NiftyNet ignores these where the source file set them; leaving them out changes
            # nothing and keeps their unparsed values out of this file.
            lines += [f"# {self.path.name} sets {key} here, where NiftyNet ignores it: left out"
                      for key in self.misplaced.get(section, {})]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def _text_for_file(self, section: str, key: str, value: object) -> str:
        spec = _spec_table(section)[key]
        if spec.path == "model_dir" and value:
            value = str(_under_model_dir(value, self.model_dir))
        elif spec.path == "search" and value:
            parts = []
            for raw in (p.strip() for p in value.split(",") if p.strip()):
                resolved = _resolve_search(raw) or _search_candidates(raw)[0]
                if "," in str(resolved):
                    raise ConfigError(
                        f"{self.path}: [{section}] path_to_search resolves to {resolved}, "
                        "which contains a comma; NiftyNet splits path_to_search on commas"
                    )
                parts.append(str(resolved))
            value = ", ".join(parts)
        elif spec.path == "csv" and value:
            value = str(_resolve_csv(value, self.path) or os.path.abspath(
                os.path.expanduser(value)))
        elif spec.path == "cwd" and value:
            value = os.path.abspath(os.path.expanduser(value))
        return spec.format(value).replace("%", "%%")

    def _where(self, origin: str = "") -> _Where:
        sections, keys = self._lines
        return _Where(self.path, sections, keys, origin)


# --------------------------------------------------------------------------------------------
# Window sizes
# --------------------------------------------------------------------------------------------

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


def _fmt_window(window: Sequence[int]) -> str:
    return ", ".join(str(w) for w in window)


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


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------

def _strip_extension(filename: str) -> str:
    # misc_io.split_filename: ".nii.gz" and ".tar.gz" are one extension, else the last suffix
    for ext in (".nii.gz", ".tar.gz"):
        if filename.lower().endswith(ext):
            return filename[: -len(ext)] if len(filename) > len(ext) else ""
    return os.path.splitext(filename)[0]


def _id_candidates(filename: str, contains: Sequence[str], removefromid: str) -> list[str]:
    name = _strip_extension(os.path.basename(filename))
    if removefromid:
        parts = [re.sub(removefromid, "", name)]
    else:
        if contains:
            # NiftyNet de-duplicates the keywords through a set, so their order in the
            # alternation is arbitrary; longest first gives the stable, greedy reading.
            keywords = sorted(set(contains), key=len, reverse=True)
            parts = re.split("|".join(f"(?:{re.escape(k)})" for k in keywords), name)
        else:
            parts = [name]
        parts = [re.sub(r"\W+", "", p) for p in parts]
    parts = [p for p in parts if p]
    if len(parts) > 1:
        parts.append("".join(parts))
    return parts


def match_subjects(
    filenames: Iterable[str],
    filename_contains: Sequence[str] = (),
    filename_not_contains: Sequence[str] = (),
    filename_removefromid: str = "",
    *,
    where: str = "",
) -> dict[str, str]:
    """File name → subject id, for the names NiftyNet's matcher takes (in the given order).

    The id is the name without extension, split at every ``filename_contains`` keyword, with
    non-word characters dropped from each piece (``_`` is a word character); several pieces
    also offer their concatenation. Pieces shared by several files are discarded, the first
    piece left is the id. With ``filename_removefromid`` the id is the name with that regular
    expression removed. Two files with the same id raise :class:`DataError`.
    """
    taken: list[tuple[str, list[str]]] = []
    for filename in filenames:
        base = os.path.basename(filename)
        if not all(k in base for k in filename_contains):
            continue
        if any(k in base for k in filename_not_contains):
            continue
        candidates = _id_candidates(base, filename_contains, filename_removefromid)
        if candidates:
            taken.append((filename, candidates))
    first: dict[str, str] = {}
    for filename, candidates in taken:
        if candidates[0] in first:
            raise DataError(
                f"{where}{first[candidates[0]]} and {filename} both give subject id "
                f"'{candidates[0]}'; make filename_contains/filename_not_contains select one "
                "file per subject, or set filename_removefromid"
            )
        first[candidates[0]] = filename
    counts: dict[str, int] = {}
    for _, candidates in taken:
        for name in candidates:
            counts[name] = counts.get(name, 0) + 1
    result = {}
    for filename, candidates in taken:
        unique = [c for c in candidates if counts[c] == 1]
        if unique:
            result[filename] = unique[0]
    return result


@dataclass(frozen=True)
class Dataset:
    """The subjects a training run uses and their files, as NiftyNet would pair them."""

    subjects: tuple[str, ...]
    files: dict[str, dict[str, Path]]  # input section → subject id → file
    # subject id → spatial shape of its (first) image as NiftyNet reads it (after axcodes and
    # pixdim, before volume padding)
    shapes: dict[str, tuple[int, ...]]
    # label section → subject id → the label file's values (files read in full only)
    label_values: dict[str, dict[str, LabelValues]] = field(default_factory=dict)


def check_inference_window(cfg: NiftyNetConfig, dataset: Dataset,
                           subjects: Iterable[str]) -> None:
    """Raises DataError when NiftyNet's inference (grid sampler) cannot segment a subject.

    Inference cuts ``[INFERENCE] spatial_window_size`` (the image sections' window when unset)
    from each padded image: a longer window fails, and a length <= 0 is the whole image's
    length, which the network must accept (HighRes3DNet: multiples of 8).
    """
    window = cfg.get("INFERENCE", "spatial_window_size")
    what = f"[INFERENCE] spatial_window_size = {_fmt_window(window)}"
    if not window:
        found = _group_window(cfg, "image", str(cfg.path))
        if found is None:
            return
        window = found[1]
        what = (f"the window [{found[0]}] spatial_window_size = {_fmt_window(window)} (used for "
                "inference: [INFERENCE] sets none)")
    what += ", with which NiftyNet segments the validation subjects after training"
    first = cfg.image_sections[0]
    for subject in subjects:
        path = dataset.files[first][subject]
        shape = dataset.shapes[subject]
        _check_window_fits(cfg, subject, path, cfg.inputs[first].resamples,
                           _padded(shape, cfg), window, what, section="INFERENCE")


def _normalises_labels(cfg: NiftyNetConfig) -> bool:
    # segmentation_application.initialise_dataset_loader: the mapping layer exists only with
    # both label_normalisation and a histogram_ref_file
    return bool(cfg.get("SEGMENTATION", "label_normalisation")
                and cfg.get("NETWORK", "histogram_ref_file"))


def _stored_label_mapping(cfg: NiftyNetConfig, section: str) -> tuple[Path, int] | None:
    """The label mapping NiftyNet would reuse from histogram_ref_file (path, number of values)."""
    if not cfg.is_set("NETWORK", "histogram_ref_file"):
        return None  # the default file is under each trial's own model folder: made afresh
    path = cfg.model_path("NETWORK", "histogram_ref_file")
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    # histogram_standardisation.read_mapping_file; DiscreteLabelNormalisationLayer.key and
    # is_ready: both the "-from" and the "-to" line must be there, else NiftyNet learns anew
    mapping = {parts[0]: parts[1:] for parts in (line.split() for line in lines)
               if len(parts) >= 2}
    keys = [_standard_section(f"label_{section}-{end}") for end in ("from", "to")]
    if not all(key in mapping for key in keys):
        return None
    return path, len(mapping[keys[0]])


def check_labels(cfg: NiftyNetConfig, dataset: Dataset,
                 training: Iterable[str] | None = None) -> None:
    """Raises DataError when the label values do not fit ``num_classes`` as NiftyNet uses them.

    Without label normalisation the values are class indices: integers 0..num_classes-1 in
    every label file (the loss fails on others). With it (layer/discrete_label_normalisation.py)
    the distinct values of the training subjects' labels map to 0..k-1, and NiftyNet stops
    unless k equals num_classes. Files not read in full (``scan_data(read_data=False)``) are
    not checked.
    """
    classes = cfg.num_classes
    if classes < 2 or not cfg.label_sections:
        return  # check_training's to refuse
    section = cfg.label_sections[0]
    known = dataset.label_values.get(section, {})
    if _normalises_labels(cfg):
        stored = _stored_label_mapping(cfg, section)
        if stored is not None:
            if stored[1] != classes:
                raise DataError(
                    f"{stored[0]} holds a label mapping of {stored[1]} values for [{section}] "
                    f"that NiftyNet reuses, but [SEGMENTATION] num_classes = {classes}: delete "
                    f"the file (NiftyNet learns the mapping again) or set num_classes = "
                    f"{stored[1]} in {cfg.path}"
                )
            return
        chosen = dataset.subjects if training is None else tuple(training)
        summaries = [known[s] for s in chosen if s in known]
        if not summaries:
            return
        union: set[float] = set()
        for summary in summaries:
            union.update(summary.values or ())
        many = max(s.count for s in summaries)
        if any(s.values is None for s in summaries) or len(union) > _MAX_LABEL_VALUES:
            found = f"more than {max(many, _MAX_LABEL_VALUES)} distinct values"
            count = max(many, len(union))
        else:
            found = str(LabelValues(len(union), min(union), max(union), True,
                                    tuple(sorted(union))))
            count = len(union)
        if count != classes:
            raise DataError(
                f"{cfg.path}: [SEGMENTATION] num_classes = {classes}, but label_normalisation "
                f"maps the {count} distinct values of the training labels [{section}] "
                f"({found}) to 0..{count - 1}, and NiftyNet stops unless both agree; set "
                f"num_classes = {count} or fix the label files"
            )
        return
    for name in cfg.label_sections:
        for subject, summary in dataset.label_values.get(name, {}).items():
            if summary.integer and summary.low >= 0 and summary.high <= classes - 1:
                continue
            path = dataset.files[name][subject]
            raise DataError(
                f"subject '{subject}': [{name}] {path} holds the values {summary}, but "
                f"[SEGMENTATION] num_classes = {classes} takes the integers 0..{classes - 1} "
                "(without label_normalisation NiftyNet uses label values as class indices); "
                f"set label_normalisation = True to map the values to 0..k-1, or fix "
                f"num_classes in {cfg.path}"
            )


def _section_files(cfg: NiftyNetConfig, section: InputSection) -> dict[str, Path]:
    where = f"[{section.name}] "
    csv_path = _resolve_csv(section.csv_file, cfg.path)
    if csv_path is not None:
        return _read_file_list(csv_path, section.name)
    if not section.path_to_search:
        raise DataError(
            f"[{section.name}] csv_file '{section.csv_file}' not found (tried the working "
            f"directory, {cfg.path.parent} and {niftynet_home()}) and no path_to_search; "
            f"fix csv_file or set path_to_search in {cfg.path}"
        )
    listing: list[str] = []
    for directory in cfg.search_dirs(section.name):
        listing += [os.path.join(directory, name) for name in sorted(os.listdir(directory))]
    ids = match_subjects(listing, section.filename_contains, section.filename_not_contains,
                         section.filename_removefromid, where=where)
    if not ids:
        dirs = ", ".join(str(d) for d in cfg.search_dirs(section.name))
        examples = ", ".join(repr(os.path.basename(p)) for p in listing[:3]) or "none"
        keywords = ", ".join(section.filename_contains) or "(anything)"
        excluded = (f", filename_not_contains {', '.join(section.filename_not_contains)}"
                    if section.filename_not_contains else "")
        raise DataError(
            f"[{section.name}] filename_contains {keywords}{excluded} matches no file in "
            f"{dirs} ({len(listing)} entries, e.g. {examples}); fix filename_contains in "
            f"{cfg.path}"
        )
    return {subject: Path(filename) for filename, subject in ids.items()}


def _read_file_list(path: Path, section: str) -> dict[str, Path]:
    # image_sets_partitioner.grep_files_by_data_section: no header, "subject_id,file"
    result: dict[str, Path] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle, skipinitialspace=True), start=1):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 2 or not row[0] or not row[1]:
                raise DataError(
                    f"{path}:{number}: [{section}] csv_file rows are 'subject_id,file', "
                    f"got {','.join(row)!r}"
                )
            result[row[0]] = Path(os.path.abspath(os.path.expanduser(row[1])))
    if not result:
        raise DataError(f"{path}: [{section}] csv_file lists no file")
    return result


def _few(items: Iterable[str], n: int = 3) -> str:
    items = list(items)
    shown = ", ".join(repr(i) for i in items[:n])
    return shown + (f" … ({len(items)} in all)" if len(items) > n else "")


def _spatial(shape: Sequence[int]) -> tuple[int, ...]:
    spatial = tuple(int(n) for n in shape[:3])
    return spatial + (1,) * (3 - len(spatial))


def verified_images_path() -> Path:
    """Where :func:`scan_data` remembers the images it has read in full."""
    return cache_dir() / "verified-images.json"


_MAX_LABEL_VALUES = 1000  # above this, a label file is summarised (NiftyNet warns from 500)


@dataclass(frozen=True)
class LabelValues:
    """The distinct voxel values of a label file: all of them, or a summary when there are many."""

    count: int
    low: float
    high: float
    integer: bool
    values: tuple[float, ...] | None = None  # None when count > _MAX_LABEL_VALUES

    @classmethod
    def of(cls, data) -> LabelValues:
        import numpy

        distinct = numpy.unique(numpy.asarray(data))  # sorted; 0.15 s for a 256×256×150 mask
        if distinct.size == 0:
            return cls(0, 0.0, 0.0, True, ())
        values = [float(v) for v in distinct]
        integer = all(math.isfinite(v) and v == int(v) for v in values)
        kept = tuple(values) if len(values) <= _MAX_LABEL_VALUES else None
        return cls(len(values), values[0], values[-1], integer, kept)

    def to_json(self) -> dict:
        return {"count": self.count, "low": self.low, "high": self.high,
                "integer": self.integer, "values": list(self.values) if self.values is not None
                else None}

    @classmethod
    def from_json(cls, data: object) -> LabelValues | None:
        try:
            values = data["values"]
            return cls(int(data["count"]), float(data["low"]), float(data["high"]),
                       bool(data["integer"]),
                       tuple(float(v) for v in values) if values is not None else None)
        except (TypeError, KeyError, ValueError):
            return None

    def __str__(self) -> str:
        if self.values is None:
            return f"{self.count} distinct values from {self.low:g} to {self.high:g}"
        return _few([f"{v:g}" for v in self.values], 6).replace("'", "")


@dataclass(frozen=True)
class ImageInfo:
    """What NiftyNet's reader takes from one image file's header (and, for a label, its values).

    ``zooms`` and ``axcodes`` are the voxel sizes and orientation NiftyNet starts from when it
    reorients (``axcodes``) and resamples (``pixdim``): ``header.get_zooms()[:3]`` and
    ``nibabel.aff2axcodes`` of the affine after ``misc_io.correct_image_if_necessary``.
    """

    shape: tuple[int, ...]
    zooms: tuple[float, ...]
    axcodes: tuple[str | None, ...]
    labels: LabelValues | None = None

    def entry(self) -> dict:
        out: dict = {"zooms": list(self.zooms), "axcodes": list(self.axcodes)}
        if self.labels is not None:
            out["labels"] = self.labels.to_json()
        return out


class VerifiedImages:
    """Images whose voxels an earlier scan read in full, by absolute path, size and mtime.

    Decompressing a whole dataset takes minutes (IXI: ~1,200 .nii.gz files), and every worker,
    resumed study and ``lr-find`` would pay it again. A file whose size or modification time
    changed is read again. Only a convenience: a cache that cannot be read or written is
    ignored, and writers on several nodes only risk losing each other's entries.

    An entry is ``[size, mtime_ns, shape, {"zooms", "axcodes", "labels"?}]``; entries written
    before the fourth item existed (``[size, mtime_ns, shape]``) still count as read in full,
    and get their header details from a header-only read.
    """

    def __init__(self, path: Path | None = None):
        self.path = path or verified_images_path()
        self.known = self._load()
        self.added: dict[str, list] = {}

    def _load(self) -> dict[str, list]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @staticmethod
    def stamp(path: Path) -> tuple[str, list[int]] | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        return str(path.resolve()), [stat.st_size, stat.st_mtime_ns]

    def entry(self, stamp: tuple[str, list[int]] | None) -> tuple[tuple[int, ...], dict] | None:
        """The shape and header details remembered for an unchanged file, else None."""
        entry = self.known.get(stamp[0]) if stamp else None
        if not isinstance(entry, list) or len(entry) not in (3, 4) or entry[:2] != stamp[1]:
            return None
        extra = entry[3] if len(entry) == 4 and isinstance(entry[3], dict) else {}
        return tuple(entry[2]), extra

    def shape(self, stamp: tuple[str, list[int]] | None) -> tuple[int, ...] | None:
        found = self.entry(stamp)
        return found[0] if found else None

    def info(self, stamp: tuple[str, list[int]] | None, labels: bool) -> ImageInfo | None:
        """A complete :class:`ImageInfo` from the cache (with label values when asked), or None."""
        found = self.entry(stamp)
        if found is None or "zooms" not in found[1]:
            return None
        shape, extra = found
        values = LabelValues.from_json(extra.get("labels")) if "labels" in extra else None
        if labels and values is None:
            return None
        try:
            return ImageInfo(shape, tuple(float(z) for z in extra["zooms"]),
                             tuple(extra["axcodes"]), values)
        except (TypeError, ValueError):
            return None

    def add(self, stamp: tuple[str, list[int]] | None, info: ImageInfo) -> None:
        """Records a file read in full; ``stamp`` was taken before reading it."""
        if stamp:
            self.added[stamp[0]] = [*stamp[1], list(info.shape), info.entry()]

    def save(self) -> None:
        if not self.added:
            return
        merged = {**self._load(), **self.added}
        merged = {key: entry for key, entry in merged.items() if os.path.exists(key)}
        written = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=self.path.parent, prefix=".verified-",
                                             suffix=".tmp", delete=False) as out:
                written = out.name
                json.dump(merged, out)
            os.replace(written, self.path)
        except OSError:
            if written:
                with contextlib.suppress(OSError):
                    os.unlink(written)
        self.known, self.added = merged, {}


def _niftynet_axcodes(image) -> tuple[str | None, ...]:
    """``aff2axcodes`` of the affine NiftyNet uses: misc_io.correct_image_if_necessary replaces
    an affine whose column norms differ from the header zooms (exact comparison); only two of
    its repairs change the directions: sform → qform, and qform → sform."""
    import nibabel
    import numpy

    affine, header = image.affine, image.header
    zooms = numpy.asarray(header.get_zooms())

    def norms(matrix):
        return numpy.sqrt(numpy.sum(numpy.square(matrix[0:3, 0:3]), 0))

    if header["dim"][0] != 5 and hasattr(image, "get_sform") and not numpy.array_equal(
            norms(affine), zooms):
        sform, qform = image.get_sform(), image.get_qform()
        sform_ok = numpy.array_equal(norms(sform), zooms)
        qform_ok = numpy.array_equal(norms(qform), zooms)
        if header["sform_code"] > 0:
            if not sform_ok and qform_ok:
                affine = qform
        elif header["qform_code"] > 0 and not qform_ok and sform_ok:
            affine = sform
    return tuple(nibabel.aff2axcodes(affine))


def _read_image(path: Path, section: str, subject: str, read_data: bool,
                labels: bool = False) -> ImageInfo:
    import nibabel
    import numpy

    try:
        image = nibabel.load(str(path))
        info = ImageInfo(tuple(int(n) for n in image.shape),
                         tuple(float(z) for z in image.header.get_zooms()[:3]),
                         _niftynet_axcodes(image))
        if read_data:
            # The header of a truncated .nii.gz reads fine; only the voxels show the damage.
            data = numpy.asarray(image.dataobj)
            if labels:
                info = dataclasses.replace(info, labels=LabelValues.of(data))
    except Exception as err:  # any failure here is a file NiftyNet cannot read either
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(
            f"[{section}] subject '{subject}': cannot read {path} ({reason}); the file is "
            "corrupt, truncated or not an image: re-copy it or remove it from the folder"
        ) from None
    return info


def _orientation(wanted: Sequence[str], found: Sequence[str | None]):
    """misc_io.compute_orientation(output axcodes, file axcodes); ValueError where it fails."""
    import nibabel
    import numpy

    start = nibabel.orientations.axcodes2ornt(tuple(wanted))
    end = nibabel.orientations.axcodes2ornt(tuple(found))
    if numpy.any(numpy.isnan(start)) or numpy.any(numpy.isnan(end)):
        raise ValueError("unknown axis code")
    try:
        return nibabel.orientations.ornt_transform(start, end)
    except (ValueError, IndexError) as err:
        raise ValueError(str(err)) from None


def _niftynet_grid(cfg: NiftyNetConfig, section: InputSection, info: ImageInfo, path: Path
                   ) -> tuple[int, ...]:
    """The spatial shape NiftyNet's reader gives this file (io/image_type.py SpatialImage3D:
    reorientation to ``axcodes``, then resampling to ``pixdim`` with scipy.ndimage.zoom, whose
    output length is ``int(round(n * zoom))``); both are skipped for spatially 2-D images."""
    import numpy

    shape = _spatial(info.shape)
    if sum(n > 1 for n in shape) < 3:
        return shape
    zooms = info.zooms
    if section.axcodes and info.axcodes:
        try:
            transform = _orientation(section.axcodes, info.axcodes)
        except ValueError:
            codes = ", ".join(str(c) for c in info.axcodes)
            raise DataError(
                f"[{section.name}] axcodes = {', '.join(section.axcodes)}: NiftyNet cannot "
                f"reorient {path} (its header gives the axes {codes}); use three of L/R, A/P, "
                f"S/I, one per axis (e.g. R, A, S), or remove axcodes in {cfg.path}"
            ) from None
        order = [int(k) for k in transform[:, 0]]
        shape = tuple(shape[k] for k in order)
        zooms = tuple(zooms[k] for k in order)
    if section.pixdim and zooms:
        if len(section.pixdim) < len(zooms):
            raise ConfigError(
                f"{cfg.path}: [{section.name}] pixdim = {_fmt_window(section.pixdim)}: NiftyNet "
                f"resamples 3-D images only to one voxel size per axis (misc_io.do_resampling); "
                f"give three, e.g. pixdim = 1.0, 1.0, 1.0"
            )
        ratio = numpy.divide(zooms[:3], section.pixdim[:3])
        shape = tuple(int(round(float(n * r))) for n, r in zip(shape, ratio, strict=True))
    return shape


def _padded(shape: tuple[int, ...], cfg: NiftyNetConfig) -> tuple[int, ...]:
    # layer/pad.py: volume_padding_to_size == (0,) pads by volume_padding_size on both sides,
    # otherwise it pads each axis up to that size
    to_size = cfg.get("NETWORK", "volume_padding_to_size")
    if tuple(to_size) == (0,):
        border = cfg.get("NETWORK", "volume_padding_size")
        return tuple(n + 2 * b for n, b in zip(shape, border, strict=False))
    return tuple(max(n, t) for n, t in zip(shape, tuple(to_size) + shape[len(to_size):],
                                           strict=False))


def check_loaders(cfg: NiftyNetConfig) -> None:
    """Raises ConfigError for an input section whose ``loader`` is not nibabel.

    lrsearch checks every image, and scores every segmentation, with nibabel; files it can
    read are NIfTI-like, which the other loaders (io/image_loader.py: opencv, skimage, pillow,
    simpleitk, dummy) either cannot read or, when their package is missing from the runtime,
    fail on inside the trial.
    """
    for name, section in cfg.inputs.items():
        if section.loader not in (None, "", "nibabel"):
            raise ConfigError(
                f"{cfg.path}: [{name}] loader = {section.loader}: lrsearch reads and checks "
                "images with nibabel only (NIfTI, Analyze, MGH); convert the images to NIfTI "
                "and set loader = nibabel or remove the key"
            )


def scan_data(cfg: NiftyNetConfig, *, read_data: bool = True,
              report: Callable[[str], None] | None = None) -> Dataset:
    """Finds and checks the training images the way NiftyNet pairs them; raises DataError.

    Every file of every subject is opened with nibabel (header and, with ``read_data``, all
    voxels), so a corrupt file fails here, naming it, instead of hours into training. Files
    read in full are remembered (:class:`VerifiedImages`) and not read again while unchanged;
    ``report`` hears how far a long first read has got. Shapes are compared as NiftyNet sees
    them, after reorientation (``axcodes``), resampling (``pixdim``) and volume padding.
    """
    check_loaders(cfg)
    inputs = cfg.inputs
    groups = [(g, name) for g in _TRAINING_INPUTS for name in cfg.get("SEGMENTATION", g)]
    if not groups:
        raise ConfigError(f"{cfg.path}: [SEGMENTATION] image is not set")
    for _, name in groups:
        if inputs[name].csv_data_file:
            raise ConfigError(
                f"{cfg.path}: [{name}] csv_data_file is not read by segmentation; list image "
                "files with path_to_search or csv_file"
            )
    files = {name: _section_files(cfg, inputs[name]) for _, name in groups}
    first = cfg.image_sections[0] if cfg.image_sections else groups[0][1]
    subjects = sorted(files[first])
    for group, name in groups:
        if name == first:
            continue
        missing = [s for s in subjects if s not in files[name]]
        if missing:
            raise DataError(
                f"[{name}] ({group}) has no file for {len(missing)} of {len(subjects)} "
                f"subjects of [{first}]: {_few(missing)}; its subject ids look like "
                f"{_few(sorted(files[name]))}. NiftyNet would silently drop these subjects: "
                "rename the files or change filename_contains/filename_removefromid so both "
                f"sections give the same id (see {cfg.path})"
            )
    window = _largest_window(cfg, [name for _, name in groups])
    verified = VerifiedImages() if read_data else None
    try:
        return _check_subjects(cfg, subjects, files, groups, first, window, verified, report)
    finally:
        if verified is not None:
            verified.save()


def write_file_lists(dataset: Dataset, folder: Path, prefix: str = ""
                     ) -> dict[str, dict[str, str]]:
    """Writes a NiftyNet file list per input section to ``folder/<prefix><section>.csv``;
    the ``csv_file`` settings that name them.

    Without an existing ``csv_file`` NiftyNet searches ``path_to_search`` at every start and
    writes what it found to ``<folder of dataset_split_file>/<section>.csv``: one file for every
    run sharing a split file (a study's trials, exported configs), so runs starting together read
    each other's half-written lists and fail ("the column is empty", ValueError). A
    ``csv_file`` that exists is read as it is.
    """
    changes = {}
    for section, files in dataset.files.items():
        path = Path(folder) / f"{prefix}{section}.csv"
        path.write_text("".join(f"{subject},{files[subject]}\n" for subject in sorted(files)))
        changes[section] = {"csv_file": str(path)}
    return changes


def _fmt_shape(shape: Sequence[int]) -> str:
    return "×".join(map(str, shape))


def _check_subjects(cfg, subjects, files, groups, first, window, verified, report) -> Dataset:
    inputs = cfg.inputs
    label_sections = set(cfg.label_sections)
    wants_labels = {files[name][s]: name in label_sections for s in subjects for _, name in groups}
    stamps = {}
    if verified is not None:
        stamps = {path: verified.stamp(path) for path in wants_labels}
    unread = sum(1 for path, stamp in stamps.items() if verified.shape(stamp) is None
                 or (wants_labels[path] and verified.info(stamp, labels=True) is None))
    report = report if unread >= 20 else None  # a short first read goes unannounced
    if report:
        report(f"reading {unread} image files in full to check them (once: "
               f"{verified.path} remembers them)")
    read, shown = 0, time.monotonic()
    shapes: dict[str, tuple[int, ...]] = {}
    label_values: dict[str, dict[str, LabelValues]] = {}
    for subject in subjects:
        # (section, group, file, file shape, shape NiftyNet reads) of the first input
        reference: tuple[str, str, Path, tuple[int, ...], tuple[int, ...]] | None = None
        group_files: dict[str, tuple[str, Path, tuple[int, ...]]] = {}
        for group, name in groups:
            path = files[name][subject]
            labels = wants_labels[path]
            stamp = stamps.get(path)
            info = verified.info(stamp, labels) if stamp else None
            if info is None:
                # read in full, unless an earlier full read left only the shape (old cache)
                full = verified is not None and (verified.shape(stamp) is None or labels)
                info = _read_image(path, name, subject, full, labels and full)
                if verified is not None:
                    verified.add(stamp, info)
                    read += full
                    if report and full and time.monotonic() - shown > 15:
                        report(f"checked {read} of {unread} image files")
                        shown = time.monotonic()
            if info.labels is not None:
                label_values.setdefault(name, {})[subject] = info.labels
            raw = _spatial(info.shape)
            grid = _niftynet_grid(cfg, inputs[name], info, path)
            if name == first:
                shapes[subject] = grid
            same_group = group_files.setdefault(group, (name, path, raw))
            if raw != same_group[2]:
                raise DataError(
                    f"subject '{subject}': [{same_group[0]}] {same_group[1]} is "
                    f"{_fmt_shape(same_group[2])} voxels but [{name}] {path} is "
                    f"{_fmt_shape(raw)}; the files of one [SEGMENTATION] {group} are "
                    "concatenated, so NiftyNet needs them on one voxel grid"
                )
            if reference is None:
                reference = (name, group, path, raw, grid)
            elif grid != reference[4]:
                raise DataError(
                    f"subject '{subject}': [{reference[0]}] {reference[2]} is "
                    f"{_described(reference[3], reference[4])} voxels but [{name}] {path} is "
                    f"{_described(raw, grid)}; image and label of a subject must share "
                    "one voxel grid (NiftyNet cuts the same window from both)"
                    + (": check pixdim and axcodes of both sections" if
                       raw != grid or reference[3] != reference[4] else "")
                )
        padded = _padded(reference[4], cfg)
        _check_window_fits(cfg, subject, reference[2], reference[3] != reference[4], padded,
                           window, f"the spatial_window_size {_fmt_window(window)} NiftyNet "
                           "samples for training and validation")
    return Dataset(
        subjects=tuple(subjects),
        files={name: {s: files[name][s] for s in subjects} for _, name in groups},
        shapes=shapes,
        label_values=label_values,
    )


def _described(raw: tuple[int, ...], grid: tuple[int, ...]) -> str:
    """A file's shape, and what NiftyNet's reorientation/resampling makes of it if different."""
    if raw == grid:
        return _fmt_shape(raw)
    return f"{_fmt_shape(raw)} (NiftyNet reads {_fmt_shape(grid)} after axcodes/pixdim)"


def _check_window_fits(cfg: NiftyNetConfig, subject: str, path: Path, transformed: bool,
                       padded: tuple[int, ...], window: tuple[int, ...], what: str,
                       section: str = "") -> None:
    """A window against one subject's padded image: NiftyNet's samplers refuse a longer window
    (sampler_uniform_v2._infer_spatial_size, sampler_grid_v2.grid_spatial_coordinates), and a
    length <= 0 becomes the image's length (image_window._complete_partial_window_sizes), which
    the network must accept. The resize sampler scales the whole image to the window instead."""
    if not window or cfg.get("NETWORK", "window_sampling") == "resize":
        return
    size = f"{_fmt_shape(padded)} voxels ({'after axcodes/pixdim and ' if transformed else ''}" \
           "after volume padding)"
    if any(0 < w and n < w for w, n in zip(window, padded, strict=False)):
        fix = (f"use a window of at most {_fmt_window(padded)}" if section else
               "use a smaller window")
        raise DataError(
            f"subject '{subject}': {path} is {size}, smaller than {what}; {fix} or set "
            f"[NETWORK] volume_padding_size in {cfg.path}"
        )
    rule = WINDOW_RULES.get(cfg.network_name or "")
    for w, n in zip(window, padded, strict=False):
        if w <= 0 and n > 1 and rule is not None and not rule.accepts(n):
            raise DataError(
                f"subject '{subject}': {what} has {w}, the whole image, and {path} is {size}: "
                f"{cfg.network_name} needs each length to be {rule.rule}, {n} is not; set "
                f"a length such as {_nearby_valid(rule, n).split(' or ')[0]} in {cfg.path}"
            )


def _largest_window(cfg: NiftyNetConfig, sections: Sequence[str]) -> tuple[int, ...]:
    # sampler_uniform_v2._infer_spatial_size: the largest window over all sampled inputs
    windows = [cfg.get(s, "spatial_window_size") for s in sections]
    windows = [w for w in windows if w]
    if not windows:
        return ()
    return tuple(max(w[i] if i < len(w) else 1 for w in windows) for i in range(3))


def check_model_dir(cfg_or_path: NiftyNetConfig | str | os.PathLike) -> None:
    """Raises ConfigError when the model folder (a config's, or this path) cannot be written."""
    if isinstance(cfg_or_path, NiftyNetConfig):
        target, origin = cfg_or_path.model_dir, f"{cfg_or_path.path}: [SYSTEM] model_dir: "
    else:
        target, origin = Path(os.path.abspath(os.path.expanduser(cfg_or_path))), ""
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{origin}{target} is a file, not a folder; choose another path")
    existing = target
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            f"{origin}cannot create {target}: {existing} is a file; choose another path"
        )
    problem = None
    if not os.access(existing, os.W_OK | os.X_OK):
        problem = "permission denied"
    else:
        try:
            with tempfile.TemporaryFile(dir=existing):
                pass
        except OSError as err:
            problem = err.strerror or str(err)
    if problem:
        raise ConfigError(
            f"{origin}cannot write in {existing} ({problem}), so NiftyNet cannot create "
            f"{target}; choose a writable folder"
        )


# --------------------------------------------------------------------------------------------
# Dataset split files
# --------------------------------------------------------------------------------------------

def write_split(
    path: str | os.PathLike,
    subjects: Iterable[str],
    validation_fraction: float | int = 0.2,
    seed: int = 0,
) -> dict[str, str]:
    """Writes a deterministic split in NiftyNet's format (no header, ``subject_id,phase``).

    A float is the validation fraction (rounded up, like NiftyNet), an int the count. With two
    or more subjects at least one is validation and one is training. Same subjects and seed,
    same file, whatever order the subjects come in.
    """
    phases = split_phases(subjects, validation_fraction, seed, where=path)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        for subject, phase in phases.items():
            writer.writerow([subject, phase])
    return phases


def split_phases(subjects: Iterable[str], validation_fraction: float | int = 0.2,
                 seed: int = 0, *, where: str | os.PathLike = "") -> dict[str, str]:
    """The phases :func:`write_split` writes (sorted by subject), without writing them."""
    path = where
    given = list(subjects)
    ordered = sorted(set(given))
    if len(ordered) != len(given):
        raise ValueError("subjects must be unique")
    if not ordered:
        raise DataError(f"{path}: no subjects to split")
    if isinstance(validation_fraction, bool):
        raise TypeError("validation_fraction must be a float fraction or an int count")
    if isinstance(validation_fraction, Integral):
        if validation_fraction < 0:
            raise ValueError(f"validation count cannot be negative, but got {validation_fraction}")
        count = int(validation_fraction)
    else:
        if not 0.0 <= validation_fraction < 1.0:
            raise ValueError(
                f"validation_fraction must be in [0, 1), but got {validation_fraction}")
        count = math.ceil(len(ordered) * validation_fraction)
    count = min(max(count, 1), len(ordered) - 1) if len(ordered) >= 2 else 0
    shuffled = list(ordered)
    random.Random(seed).shuffle(shuffled)
    validation = set(shuffled[:count])
    return {s: ("validation" if s in validation else "training") for s in ordered}


def read_split(path: str | os.PathLike) -> dict[str, str]:
    """Reads a NiftyNet split file; DataError naming the line when NiftyNet would reject it."""
    result: dict[str, str] = {}
    try:
        handle = open(path, newline="", encoding="utf-8")
    except OSError as err:
        raise DataError(f"{path}: cannot read the split file ({err.strerror})") from None
    with handle:
        for number, row in enumerate(csv.reader(handle, skipinitialspace=True), start=1):
            if not row or not "".join(row).strip():
                continue
            if len(row) != 2 or not row[0].strip():
                raise DataError(
                    f"{path}:{number}: expected 'subject_id,phase' (no header), "
                    f"got {','.join(row)!r}"
                )
            subject, phase = row[0].strip(), row[1].strip().lower()
            if phase not in _PHASES:
                raise DataError(
                    f"{path}:{number}: phase {row[1]!r} for '{subject}' is not one of "
                    f"{', '.join(_PHASES)} (NiftyNet refuses the file)"
                )
            if subject in result:
                raise DataError(f"{path}:{number}: subject '{subject}' is listed twice")
            result[subject] = phase
    if not result:
        raise DataError(f"{path}: the split file is empty (NiftyNet refuses it)")
    return result
