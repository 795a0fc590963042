"""Built-in files and default locations."""

from pathlib import Path

PACKAGE_DATA = Path(__file__).resolve().parent / "data"
DEMO_CONFIG = PACKAGE_DATA / "demo.ini"  # configs/demo.ini
DEFAULT_SPACE = PACKAGE_DATA / "default.toml"  # studies/default.toml
DEMO_DATA_DIR = Path("demo_data")  # relative to the working directory, as demo.ini says
