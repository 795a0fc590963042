"""One exception hierarchy. The CLI prints ``str(error)`` as a single line and exits non-zero."""


class LRSearchError(Exception):
    """Base of every error a user can cause and fix."""

    exit_code = 2


class ConfigError(LRSearchError):
    """A NiftyNet INI file is malformed, or names something NiftyNet would not accept."""


class DataError(LRSearchError):
    """The images a config points at are missing, unreadable or inconsistent."""


class SpaceError(LRSearchError):
    """A study TOML (search space) is malformed."""


class EngineError(LRSearchError):
    """A training engine could not be started or failed outside a trial's own fault."""


class StorageError(LRSearchError):
    """The Optuna storage URL cannot be opened."""
