"""NiftyNet's path rules: where model_dir, csv files and searched folders resolve, and whether the
model folder can be written.
"""

from __future__ import annotations

import configparser
import os
from pathlib import Path


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
