"""kbnn._io: atomic writes (mode, cleanup, all-or-nothing) and output-path checks (#16 items
4-7, 9)."""

import os
import pathlib
import stat
import subprocess
import sys

from kbnn import _io
from kbnn.errors import UsageError

import pytest


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_written_files_follow_the_umask_not_0600(tmp_path, umask_027):
    path = _io.write_atomic(tmp_path / "a.bin", b"abc")
    assert path.read_bytes() == b"abc"
    assert _mode(path) == 0o640
    with _io.atomic_path(tmp_path / "b.json") as tmp:
        pathlib.Path(tmp).write_text("{}")
    assert _mode(tmp_path / "b.json") == 0o640
    _io.commit_files({tmp_path / "c.txt": "x"})
    assert _mode(tmp_path / "c.txt") == 0o640


def test_failed_writer_leaves_target_untouched_and_no_temporary(tmp_path):
    target = tmp_path / "model.keras"
    target.write_bytes(b"old")

    def failing(name):
        pathlib.Path(name).write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        _io.write_with(target, failing)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]
    assert not _io._PENDING


def test_writer_temporary_keeps_the_suffix_for_format_detection(tmp_path):
    seen = []
    _io.write_with(
        tmp_path / "fig.png", lambda name: (seen.append(name), pathlib.Path(name).write_bytes(b"p"))
    )
    assert seen[0].endswith(".png") and pathlib.Path(seen[0]).name.startswith(".fig.png.")


def test_commit_files_is_all_or_nothing(tmp_path):
    first, second = tmp_path / "a.tflite", tmp_path / "b.tflite"
    first.write_bytes(b"previous")

    def failing(name):
        raise OSError("cannot write the second file")

    with pytest.raises(OSError):
        _io.commit_files({first: b"new", second: failing})
    assert first.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tflite"]
    written = _io.commit_files({first: b"new", second: b"two"})
    assert [p.read_bytes() for p in written] == [b"new", b"two"]


def test_remove_temporaries_deletes_files_in_flight(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with _io.atomic_path(tmp_path / "x.kbz") as tmp:
            pathlib.Path(tmp).write_bytes(b"partial")
            assert str(tmp) in _io._PENDING
            _io.remove_temporaries()  # what the SIGINT handler does
            assert not os.path.exists(tmp)
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_temporaries_of_a_killed_writer_are_swept_by_the_next_write(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = tmp_path / f".out.tflite.{dead.stdout.strip()}.abc123.tmp.tflite"
    stale.write_bytes(b"partial")
    alive = tmp_path / f".out.tflite.{os.getppid()}.def456.tmp.tflite"  # a live process
    alive.write_bytes(b"in flight")
    _io.write_atomic(tmp_path / "out.tflite", b"complete")
    assert not stale.exists() and alive.exists()
    assert (tmp_path / "out.tflite").read_bytes() == b"complete"


def test_check_output_refuses_the_input_by_path_symlink_and_hard_link(tmp_path):
    model = tmp_path / "m.keras"
    model.write_bytes(b"model")
    (tmp_path / "link.keras").symlink_to(model)
    os.link(model, tmp_path / "hard.keras")
    (tmp_path / "sub").mkdir()
    for same in (
        model,
        tmp_path / "sub" / ".." / "m.keras",
        tmp_path / "link.keras",
        tmp_path / "hard.keras",
    ):
        with pytest.raises(UsageError, match="is the input file"):
            _io.check_output(same, inputs=[model])
    assert _io.check_output(tmp_path / "out.tflite", inputs=[model]).name == "out.tflite"


def test_check_output_refuses_folders_and_missing_or_read_only_parents(tmp_path):
    with pytest.raises(UsageError, match="is a folder"):
        _io.check_output(tmp_path)
    with pytest.raises(UsageError, match="does not exist"):
        _io.check_output(tmp_path / "missing" / "x.kbz")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is not a folder"):
        _io.check_output(tmp_path / "file" / "x.kbz")
    if os.geteuid() != 0:  # root writes anywhere
        read_only = tmp_path / "ro"
        read_only.mkdir(mode=0o555)
        with pytest.raises(UsageError, match="not writable"):
            _io.check_output(read_only / "x.tflite")


def test_check_output_dir_refuses_an_existing_file(tmp_path):
    (tmp_path / "run").write_text("x")
    with pytest.raises(UsageError, match="exists and is not a folder"):
        _io.check_output_dir(tmp_path / "run")
    with pytest.raises(UsageError, match="is a file, not a folder"):
        _io.check_output_dir(tmp_path / "run" / "deeper")
    assert _io.check_output_dir(tmp_path / "new" / "run") == tmp_path / "new" / "run"


def test_write_errors_name_the_users_path_not_the_temporary(tmp_path):
    import errno

    from kbnn.errors import KbnnError

    def disk_full(name):
        raise OSError(errno.ENOSPC, "No space left on device", name)

    for write in (
        lambda: _io.write_with(tmp_path / "model.tflite", disk_full),
        lambda: _io.commit_files({tmp_path / "a.kbz": b"x", tmp_path / "model.tflite": disk_full}),
    ):
        with pytest.raises(OSError) as error:
            write()
        assert isinstance(error.value, KbnnError)
        assert "'" + str(tmp_path / "model.tflite") + "'" in str(error.value)
        assert ".tmp" not in str(error.value) and "No space left" in str(error.value)
        assert list(tmp_path.iterdir()) == []
