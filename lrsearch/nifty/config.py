"""A NiftyNet config as lrsearch reads and writes it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from lrsearch.errors import ConfigError, DataError
from lrsearch.nifty.ini import (
    FIXED_SECTIONS,
    KeySpec,
    _freeze,
    _misplaced_warning,
    _nearest,
    _read_ini,
    _spec_table,
    _unknown_key,
    _validate,
    _Where,
)
from lrsearch.nifty.locations import (
    _resolve_csv,
    _resolve_model_dir,
    _resolve_search,
    _search_candidates,
    _under_model_dir,
)


def load_config(path: str | os.PathLike) -> NiftyNetConfig:
    """Reads and validates a NiftyNet segmentation INI. Raises :class:`ConfigError`."""
    ini = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
    raw, section_lines, key_lines = _read_ini(ini)
    where = _Where(ini, section_lines, key_lines)
    misplaced: dict[str, dict[str, str]] = {}
    values = _validate(where, raw, from_text=True, misplaced=misplaced)
    return NiftyNetConfig(ini, _freeze(values), _lines=(section_lines, key_lines),
                          misplaced=_freeze(misplaced))


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
