"""Exceptions kbnn raises for problems the user can fix (bad input, missing files)."""


class KbnnError(Exception):
    """Base class: a problem with the user's input, reported as one line by the CLI."""


class UsageError(KbnnError, ValueError):
    """Bad arguments or configuration."""


class ModelLoadError(KbnnError):
    """A model or weights file cannot be read."""


class MissingFileError(ModelLoadError, FileNotFoundError):
    """An input file that does not exist (also a FileNotFoundError, for callers that catch it)."""


class WriteError(KbnnError, OSError):
    """An output file cannot be written (disk full, permissions); names the user's path,
    never the temporary file (also an OSError, for callers that catch it)."""
