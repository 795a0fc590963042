"""NiftyNet 0.6.0's INI schema: every section and key its parser accepts, their types and choices;
reading and validating an INI file.

One job, one module: the schema table is most of its length (every key NiftyNet 0.6.0 reads).
"""

from __future__ import annotations

import configparser
import difflib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path
from types import MappingProxyType

from lrsearch.errors import ConfigError

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
