"""Errors raised by `kbnn.converters` for problems the user can fix."""

from kbnn.errors import KbnnError


class ConversionError(KbnnError):
    """A model cannot be converted; the message names the layer and the reason."""


class FlatbufferError(KbnnError, ValueError):
    """Bytes that are not a readable TFLite flatbuffer (wrong identifier, truncated, corrupt)."""


class VerificationError(KbnnError):
    """The converted flatbuffer disagrees with the Keras model beyond the tolerance."""
