"""One exception hierarchy. The CLI prints ``str(error)`` as a single line and exits with the
error's ``exit_code``: 2 for usage and bad input (the user must change what they gave), 1 for a
failure at run time (the input was accepted; running it went wrong)."""


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

    exit_code = 1


class StorageError(LRSearchError):
    """The Optuna storage URL cannot be opened."""


class StudyFailed(LRSearchError):
    """Trials failed: the same way several times in a row, or none completed."""

    exit_code = 1
