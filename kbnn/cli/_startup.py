"""Start-up of the `kbnn` command: Ctrl-C handling and a quiet TensorFlow import.

Both must happen before TensorFlow is imported: a Ctrl-C during the 3-6 s import would
otherwise print a long `KeyboardInterrupt` traceback, and TensorFlow's C++/absl logging
(CUDA plugin registration, cpu features) is written while it is imported, before any
Python-level setting can take effect.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import signal
import sys
import tempfile
import threading
import warnings

EXIT_INTERRUPTED = 130

_QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # TensorFlow's own C++ logging: errors are re-raised in Python
    "TF_ENABLE_ONEDNN_OPTS": "0",  # also silences the oneDNN rounding notice
    "GRPC_VERBOSITY": "ERROR",
    "ABSL_MIN_LOG_LEVEL": "3",
}
_NOISY_LOGGERS = ("tensorflow", "absl", "h5py", "larq")
_STDERR_FD = [2]  # where the interrupt message goes while fd 2 is captured


def _on_sigint(signum, frame) -> None:  # noqa: ARG001  (signal handler signature)
    from kbnn._io import remove_temporaries

    remove_temporaries()
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    with contextlib.suppress(OSError):
        os.write(_STDERR_FD[0], b"\nkbnn: interrupted\n")
    os._exit(EXIT_INTERRUPTED)  # no traceback, no half-run finalizers; temporaries are gone


def install_sigint_handler() -> None:
    """Ctrl-C at any moment: remove in-flight temporary files, one line, exit code 130."""
    signal.signal(signal.SIGINT, _on_sigint)


def quiet_environment(verbose: bool) -> None:
    """Set TensorFlow's logging variables before it is imported (unless `verbose`)."""
    if verbose:
        return
    for key, value in _QUIET_ENV.items():
        os.environ.setdefault(key, value)


@contextlib.contextmanager
def _stderr_captured():
    """Send file descriptor 2 to a temporary file; replay it only if the block fails."""
    sys.stderr.flush()
    saved = os.dup(2)
    previous = _STDERR_FD[0]
    if previous == 2:  # else fd 2 is filter_native_logs' pipe: keep writing to the real stderr
        _STDERR_FD[0] = saved
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            capture.seek(0)
            sys.stderr.write(capture.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            _STDERR_FD[0] = previous
            os.close(saved)


def import_tensorflow(verbose: bool) -> None:
    """Import TensorFlow (absl's import-time lines hidden unless `verbose`) and register
    kbnn's Keras objects; quiet Python-level TensorFlow/larq logging too."""
    import kbnn

    if verbose or "tensorflow" in sys.modules:
        kbnn.register_keras_objects()
        return
    with _stderr_captured():
        import tensorflow  # noqa: F401

        kbnn.register_keras_objects()
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    with contextlib.suppress(ImportError):
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    for module in ("tf_keras", "tensorflow", "keras", "larq", "h5py"):
        warnings.filterwarnings("ignore", module=module)


def run_light(func, args):
    """Run a command meant to need no TensorFlow; should a dependency import it anyway, its
    import-time C++ lines stay hidden (stderr is replayed if the command fails)."""
    if args.verbose:
        return func(args)
    with _stderr_captured():
        return func(args)


# Lines TensorFlow's C++ runtime (absl / tsl / TFLite) writes straight to file descriptor 2
# while a command runs (converter passes, interpreter delegates); Python's own output and
# kbnn's messages never look like this.
_NATIVE_LOG = re.compile(
    rb"^([IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\]"
    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] \S+:\d+\]"
    rb"|WARNING: All log messages before absl::InitializeLog"
    rb"|INFO: Created TensorFlow Lite \S+ delegate"
    rb"|To enable the following instructions: .* rebuild TensorFlow)"
)


def filter_native_logs() -> None:
    """Route fd 2 through a thread that drops TensorFlow's native log lines (not -v)."""
    read_end, write_end = os.pipe()
    real = os.dup(2)
    _STDERR_FD[0] = real
    sys.stderr.flush()
    os.dup2(write_end, 2)
    os.close(write_end)
    thread = threading.Thread(target=_pump, args=(read_end, real), daemon=True)
    thread.start()

    def drain() -> None:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(real, 2)  # closes the pipe's last write end: the pump sees EOF
        thread.join(timeout=2)

    atexit.register(drain)


def _pump(read_end: int, real: int) -> None:
    pending = b""
    while chunk := os.read(read_end, 65536):
        pending += chunk
        *lines, pending = re.split(rb"(?<=[\n\r])", pending)
        _forward(lines, real)
    _forward([pending] if pending else [], real)


def _forward(lines, real: int) -> None:
    kept = b"".join(line for line in lines if not _NATIVE_LOG.match(line))
    if kept:
        with contextlib.suppress(OSError):
            os.write(real, kept)
