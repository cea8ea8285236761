"""Writing files: the one atomic-write implementation, and output-path checks.

Every file kbnn writes goes through here, so that a final path is either the complete new
file or untouched: the data goes to a uniquely named hidden temporary file in the target
folder (`.NAME.PID.XXXX.tmp.SUFFIX`), is fsync'ed, given the mode the umask allows (plain
`mkstemp` files are 0600), and renamed over the target. Temporaries are removed on any
error, and `remove_temporaries()` (called by the CLI's SIGINT handler) removes the ones
still in flight; temporaries of a process killed outright (`kill -9`) are swept by the
next write to the same path (their names carry the writer's pid). `commit_files` extends this to several files: all are written first and
renamed only when every one succeeded.

`check_output` validates an output path before any slow work: the folder exists and is
writable, the path is not a folder, and it is not one of the inputs (resolved path or inode).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pathlib
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence

from kbnn.errors import KbnnError, UsageError, WriteError

__all__ = [
    "atomic_path",
    "check_output",
    "check_output_dir",
    "commit_files",
    "remove_temporaries",
    "umask_mode",
    "write_atomic",
    "write_with",
]

_PENDING: set[str] = set()  # temporaries written but not yet renamed (for SIGINT cleanup)
_LOCK = threading.Lock()

Writer = Callable[[str], object]  # writes a complete file at the path it is given


def umask_mode(executable: bool = False) -> int:
    """0o666 (0o777 with `executable`) minus the process umask, as `open()` would create."""
    with _LOCK:  # os.umask can only be read by setting it
        mask = os.umask(0o022)
        os.umask(mask)
    return (0o777 if executable else 0o666) & ~mask


def remove_temporaries() -> None:
    """Delete every temporary file still in flight (safe to call from a signal handler)."""
    for name in list(_PENDING):
        with contextlib.suppress(OSError):
            os.unlink(name)
        _PENDING.discard(name)


def _folder(path: pathlib.Path) -> pathlib.Path:
    return path.parent if str(path.parent) else pathlib.Path(".")


def _new_temporary(path: pathlib.Path) -> str:
    """A fresh empty hidden file beside `path` that keeps its suffix (Keras, numpy and
    matplotlib pick the format from it)."""
    folder = _folder(path)
    if not folder.is_dir():
        raise UsageError(f"cannot write {str(path)!r}: folder {str(folder)!r} does not exist")
    _sweep_stale(path)
    try:
        fd, name = tempfile.mkstemp(
            prefix=f".{path.name}.{os.getpid()}.", suffix=f".tmp{path.suffix}", dir=folder
        )
    except PermissionError as err:
        raise UsageError(
            f"cannot write {str(path)!r}: folder {str(folder)!r} is not writable"
        ) from err
    os.close(fd)
    _PENDING.add(name)
    return name


def _sweep_stale(path: pathlib.Path) -> None:
    """Remove temporaries of `path` left by a process that no longer runs (`kill -9`, power
    loss): their names carry the writer's pid."""
    prefix = f".{path.name}."
    for candidate in _folder(path).glob(f"{glob.escape(prefix)}*.tmp*"):
        pid = candidate.name[len(prefix) :].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                candidate.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _discard(name: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name)
    _PENDING.discard(name)


def _finish(name: str, executable: bool) -> None:
    with open(name, "rb+") as handle:
        os.fsync(handle.fileno())
    os.chmod(name, umask_mode(executable))


def _fsync_folder(folder: pathlib.Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path, *, executable: bool = False) -> Iterator[str]:
    """Yield a temporary path to write; on success it becomes `path`, on error it is removed.

    For writers that need a file name (`model.save`, `fig.savefig`, `np.savez`, h5py):
    `with atomic_path("m.keras") as tmp: model.save(tmp)`.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        raise UsageError(f"cannot write {str(path)!r}: it is a folder; give a file name")
    name = _new_temporary(path)
    try:
        yield name
        _finish(name, executable)
        os.replace(name, path)
        _PENDING.discard(name)
        _fsync_folder(_folder(path))
    except OSError as err:
        _discard(name)
        raise _write_error(path, err) from err
    except BaseException:
        _discard(name)
        raise


def write_with(path, writer: Writer, *, executable: bool = False) -> pathlib.Path:
    """`writer(temporary_path)` then the atomic rename to `path`; returns `path`."""
    with atomic_path(path, executable=executable) as name:
        writer(name)
    return pathlib.Path(path)


def _bytes_writer(data: bytes | str) -> Writer:
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)

    def write(name: str) -> None:
        with open(name, "wb") as handle:
            handle.write(payload)

    return write


def write_atomic(path, data: bytes | str, *, executable: bool = False) -> pathlib.Path:
    """Write `data` (str as UTF-8) to `path`: complete or absent, never partial."""
    return write_with(path, _bytes_writer(data), executable=executable)


def commit_files(
    files: Mapping[str | os.PathLike[str], bytes | str | Writer],
) -> list[pathlib.Path]:
    """Write several files all-or-nothing: every temporary is written and fsync'ed first, and
    only then are they renamed; if any write fails, no final path is touched.

    Values are bytes/str or a writer callback taking the temporary path.
    """
    staged: list[tuple[str, pathlib.Path]] = []
    try:
        for target, content in files.items():
            path = pathlib.Path(target)
            if path.is_dir():
                raise UsageError(f"cannot write {str(path)!r}: it is a folder; give a file name")
            name = _new_temporary(path)
            staged.append((name, path))
            writer = content if callable(content) else _bytes_writer(content)
            writer(name)
            _finish(name, False)
        for name, path in staged:  # renames within one folder do not fail in practice
            os.replace(name, path)
            _PENDING.discard(name)
    except BaseException as err:
        for name, _ in staged:
            _discard(name)
        if isinstance(err, OSError) and not isinstance(err, KbnnError):
            failed = next((path for name, path in staged if name in str(err)), None)
            raise _write_error(failed or staged[-1][1] if staged else "output", err) from err
        raise
    for folder in {_folder(path) for _, path in staged}:
        _fsync_folder(folder)
    return [path for _, path in staged]


def _write_error(path, err: OSError) -> OSError:
    """The error of writing `path`, naming it rather than the hidden temporary."""
    if isinstance(err, KbnnError):
        return err
    reason = err.strerror or str(err)
    return WriteError(f"cannot write {str(path)!r}: {reason}")


def _same_file(a: pathlib.Path, b: pathlib.Path) -> bool:
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(path, *, inputs: Sequence = (), flag: str = "--output") -> pathlib.Path:
    """Validate an output file path before any slow work; returns it as a Path.

    Raises UsageError when the path is a folder, its folder is missing or not writable,
    or it is the same file as one of `inputs` (which the write would destroy).
    """
    path = pathlib.Path(path)
    shown = f"{flag} {str(path)!r}"
    if path.is_dir():
        raise UsageError(f"{shown} is a folder; give a file name")
    folder = _folder(path)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise UsageError(f"{shown}: folder {str(folder)!r} {what}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{shown}: folder {str(folder)!r} is not writable")
    if path.exists() and not path.is_file():
        raise UsageError(f"{shown} exists and is not a regular file")
    for source in inputs:
        if source is not None and _same_file(path, pathlib.Path(source)):
            raise UsageError(
                f"{shown} is the input file {str(source)!r}; writing it would "
                "destroy the input, choose another name"
            )
    return path


def check_output_dir(path, *, flag: str = "--output") -> pathlib.Path:
    """Validate an output folder (created later): not an existing file, and its nearest
    existing ancestor is a writable folder."""
    path = pathlib.Path(path)
    shown = f"{flag} {str(path)!r}"
    if path.exists():
        if not path.is_dir():
            raise UsageError(f"{shown} exists and is not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise UsageError(f"{shown} is not writable")
        return path
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UsageError(f"{shown}: {str(ancestor)!r} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UsageError(f"{shown}: folder {str(ancestor)!r} is not writable")
    return path
