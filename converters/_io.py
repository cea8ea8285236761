"""Atomic file writes: a temporary file in the target directory, then `os.replace`."""

from __future__ import annotations

import os
import pathlib
import tempfile


def write_atomic(path, data: bytes | str) -> pathlib.Path:
    """Write `data` to `path` so that the file is either complete or absent, never partial."""
    path = pathlib.Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; give a file name.")
    directory = path.parent if str(path.parent) else pathlib.Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(f"directory {directory} does not exist.")
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return path
