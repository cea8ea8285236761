"""Errors of `kbnn.converters.export_c`."""

from __future__ import annotations

from kbnn.errors import UsageError


class ExportError(UsageError):
    """The model (or a layer of it) cannot be exported to integer C; the message names it."""
