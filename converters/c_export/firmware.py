"""Cortex-M4 firmware for an export-c directory: build with arm-none-eabi-gcc, run under
`qemu-system-arm -M mps2-an386` with semihosting, and measure what a microcontroller pays.

Measured per firmware (all from the build and the qemu run, nothing estimated):
- scores and argmax of every input image, printed by the harness (`cortex_m4/harness.c`);
- instructions per inference: a qemu TCG plugin (`cortex_m4/insncount.c`, built once into a
  cache folder) snapshots its instruction counter each time the harness' empty marker function
  runs; the harness calls it right before and right after `kbnn_infer`, and twice back to back at
  start-up to measure (and subtract) the marker's own cost;
- flash and static RAM: a bare size probe (`cortex_m4/size_probe.c`, no newlib) is linked once with
  the model and once with a stub `kbnn_infer`; the difference of `arm-none-eabi-size` gives
  flash = text + data (code, weights, initialised data, helpers pulled from libgcc/libc) and
  RAM = data + bss (arena, buffers);
- stack: the harness paints the free stack with a pattern before each inference and scans it
  afterwards; the deepest use over all images is reported.

The same harness runs any C file with the `kbnn_infer` API, which is how the CMSIS-NN int8 and
float C anchors of `benchmarks/mcu_cost.py` are measured the same way as the binary model.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kbnn.errors import KbnnError

import numpy as np

SOURCES = Path(__file__).resolve().parent / "cortex_m4"
CORTEX_M4_FLAGS = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
OPT_LEVELS = ("-O0", "-O1", "-O2", "-O3", "-Os", "-Oz")
APT_FIX = "apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
INPUT_FILE = "kbnn_input.bin"


class McuToolError(KbnnError):
    """The Cortex-M toolchain or qemu is missing, or a build or qemu run failed."""


@dataclass(frozen=True)
class Firmware:
    """A linked Cortex-M4 harness firmware and what it was built from."""

    elf: Path
    model_sources: tuple[Path, ...]
    include_dirs: tuple[Path, ...]
    opt: str
    defines: tuple[str, ...]


@dataclass(frozen=True)
class FirmwareRun:
    """Results of one qemu run over a batch of images."""

    scores: np.ndarray  # int64 (images, classes)
    argmax: np.ndarray  # int64 (images,), what kbnn_infer returned
    instructions: np.ndarray | None  # int64 (images,), per inference
    stack_bytes: int
    segments: np.ndarray | None = None  # int64 (images, parts) when the model marks its parts


@dataclass(frozen=True)
class FirmwareSize:
    """Flash and static RAM a model adds to a bare firmware (bytes, `arm-none-eabi-size`)."""

    flash_bytes: int
    ram_bytes: int
    text: int
    data: int
    bss: int


@dataclass(frozen=True)
class McuMeasurement:
    """Everything measured for one model: run results plus sizes."""

    run: FirmwareRun
    size: FirmwareSize

    @property
    def ram_with_stack_bytes(self) -> int:
        return self.size.ram_bytes + self.run.stack_bytes


def require_tool(name: str) -> str:
    """Path of a toolchain program, or McuToolError with the apt-get line that installs it."""
    path = shutil.which(name)
    if path is None:
        raise McuToolError(f"{name} not found; install the Cortex-M4 toolchain and qemu: {APT_FIX}")
    return path


def _run(command: Sequence[str], *, what: str, cwd: Path | None = None, timeout: float = 600):
    try:
        done = subprocess.run(
            [str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as error:
        raise McuToolError(f"{what} did not finish within {timeout:.0f} s") from error
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-20:]
        raise McuToolError(f"{what} failed (exit {done.returncode}): " + " | ".join(tail))
    return done


def _model_sources(c_dir: Path, sources: Sequence[Path] | None) -> tuple[Path, ...]:
    c_dir = Path(c_dir)
    if not (c_dir / "kbnn_model.h").is_file():
        raise McuToolError(
            f"{c_dir} has no kbnn_model.h; write it with `kbnn export-c MODEL -o DIR`"
        )
    found = (
        tuple(Path(s) for s in sources) if sources is not None else tuple(sorted(c_dir.glob("*.c")))
    )
    if not found:
        raise McuToolError(f"{c_dir} has no C sources")
    return found


def _check_opt(opt: str) -> str:
    if opt not in OPT_LEVELS:
        raise McuToolError(f"opt must be one of {', '.join(OPT_LEVELS)}, got {opt!r}")
    return opt


def _compile_objects(sources, out_dir: Path, flags: Sequence[str]) -> list[Path]:
    """Compiles each source to its own object (unique names even for equal basenames)."""
    gcc = require_tool("arm-none-eabi-gcc")
    objects = []
    for k, source in enumerate(sources):
        obj = out_dir / f"{k:03d}_{Path(source).stem}.o"
        _run([gcc, *flags, "-c", source, "-o", obj], what=f"arm-none-eabi-gcc {Path(source).name}")
        objects.append(obj)
    return objects


def _common_flags(include_dirs, defines) -> list[str]:
    return [
        *CORTEX_M4_FLAGS,
        "-ffunction-sections",
        "-fdata-sections",
        *(f"-I{d}" for d in include_dirs),
        *(f"-D{d}" for d in defines),
    ]


def build_firmware(
    c_dir: str | Path,
    build_dir: str | Path,
    *,
    opt: str = "-Os",
    defines: Sequence[str] = (),
    sources: Sequence[str | Path] | None = None,
    include_dirs: Sequence[str | Path] = (),
) -> Firmware:
    """Links the harness with the model's C (all `*.c` of `c_dir`, or `sources`) for mps2-an386.

    The model sources are compiled at `opt` (default `-Os`), the harness and start-up at `-Os`."""
    c_dir, build_dir = Path(c_dir), Path(build_dir)
    model_sources = _model_sources(c_dir, sources)
    includes = (c_dir, *(Path(d) for d in include_dirs))
    build_dir.mkdir(parents=True, exist_ok=True)
    common = _common_flags(includes, defines)
    model_objects = _compile_objects(model_sources, build_dir, [*common, _check_opt(opt)])
    harness = _compile_objects(
        [SOURCES / "startup.c", SOURCES / "harness.c"], build_dir, [*common, "-Os"]
    )
    elf = build_dir / "kbnn_firmware.elf"
    link = [
        require_tool("arm-none-eabi-gcc"), *CORTEX_M4_FLAGS, "--specs=rdimon.specs",
        "-nostartfiles", "-Wl,--gc-sections", "-T", SOURCES / "mps2_an386.ld",
        *harness, *model_objects, "-o", elf,
    ]  # fmt: skip
    _run(link, what="linking the Cortex-M4 firmware")
    return Firmware(elf, model_sources, includes, opt, tuple(defines))


def measure_size(firmware: Firmware, build_dir: str | Path) -> FirmwareSize:
    """Flash and static RAM the model adds to a bare firmware (model link minus stub link)."""
    build_dir = Path(build_dir)
    common = _common_flags(firmware.include_dirs, firmware.defines)
    totals = {}
    for name, sources in (("model", firmware.model_sources), ("stub", [SOURCES / "size_stub.c"])):
        out = build_dir / f"size_{name}"
        out.mkdir(parents=True, exist_ok=True)
        objects = _compile_objects(sources, out, [*common, firmware.opt])
        objects += _compile_objects(
            [SOURCES / "startup.c", SOURCES / "size_probe.c"], out, [*common, "-Os", "-DKBNN_BARE"]
        )
        elf = out / "probe.elf"
        link = [
            require_tool("arm-none-eabi-gcc"), *CORTEX_M4_FLAGS, "-nostartfiles", "-nostdlib",
            "-Wl,--gc-sections", "-T", SOURCES / "mps2_an386.ld", *objects,
            "-Wl,--start-group", "-lc", "-lgcc", "-Wl,--end-group", "-o", elf,
        ]  # fmt: skip
        _run(link, what=f"linking the size probe ({name})")
        totals[name] = _berkeley_size(elf)
    text, data, bss = (totals["model"][k] - totals["stub"][k] for k in range(3))
    return FirmwareSize(
        flash_bytes=text + data, ram_bytes=data + bss, text=text, data=data, bss=bss
    )


def _berkeley_size(elf: Path) -> tuple[int, int, int]:
    done = _run([require_tool("arm-none-eabi-size"), elf], what="arm-none-eabi-size")
    fields = done.stdout.strip().splitlines()[-1].split()
    return int(fields[0]), int(fields[1]), int(fields[2])


def _plugin_cache() -> Path:
    """`$KBNN_CACHE_DIR/cortex-m4`, default `$XDG_CACHE_HOME/kbnn` or `~/.cache/kbnn`."""
    base = os.environ.get("KBNN_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kbnn"
    )
    return Path(base) / "cortex-m4"


def instruction_counter_plugin(cache_dir: str | Path | None = None) -> Path:
    """Builds `cortex_m4/insncount.c` with the host C compiler into a cache folder (once)."""
    source = (SOURCES / "insncount.c").read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:12]
    cache = Path(cache_dir) if cache_dir is not None else _plugin_cache()
    plugin = cache / f"insncount-{digest}.so"
    if plugin.is_file():
        return plugin
    cache.mkdir(parents=True, exist_ok=True)
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise McuToolError(
            "no host C compiler (cc/gcc) to build the qemu plugin: apt-get install -y gcc"
        )
    partial = cache / f".{plugin.name}.{os.getpid()}.tmp"  # renamed into place when complete
    _run([compiler, "-O2", "-shared", "-fPIC", "-o", partial, SOURCES / "insncount.c"],
         what="building the qemu instruction-counter plugin")  # fmt: skip
    partial.replace(plugin)
    return plugin


def _symbol_address(elf: Path, symbol: str) -> int:
    done = _run([require_tool("arm-none-eabi-nm"), elf], what="arm-none-eabi-nm")
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == symbol:
            return int(parts[0], 16) & ~1  # Thumb bit off: the block starts at the even address
    raise McuToolError(f"{elf.name} has no symbol {symbol}")


def _images_bytes(images: np.ndarray) -> bytes:
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise McuToolError(f"images must be uint8 (raw 0-255 pixels), got {images.dtype}")
    return np.ascontiguousarray(images.reshape(len(images), -1)).tobytes()


def run_firmware(
    firmware: Firmware,
    images: np.ndarray,
    run_dir: str | Path,
    *,
    count_instructions: bool = True,
    timeout: float = 600,
    parts: int = 1,
) -> FirmwareRun:
    """Runs the firmware under qemu-system-arm (mps2-an386, semihosting) on uint8 `images`.

    `parts` > 1: the model's C calls `kbnn_harness_mark()` `parts - 1` times inside each
    inference (e.g. between layers); `segments` then holds the instructions of each part."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / INPUT_FILE).write_bytes(_images_bytes(images))
    command = [
        require_tool("qemu-system-arm"), "-M", "mps2-an386", "-nographic", "-monitor", "none",
        "-serial", "none", "-semihosting-config", "enable=on,target=native",
        "-kernel", firmware.elf.resolve(),
    ]  # fmt: skip
    log = run_dir / "insncount.log"
    if count_instructions:
        marker = _symbol_address(firmware.elf, "kbnn_harness_mark")
        plugin = instruction_counter_plugin()
        command += ["-plugin", f"{plugin},marker={marker:#x}", "-d", "plugin", "-D", log]
    done = _run(command, what="qemu-system-arm", cwd=run_dir, timeout=timeout)
    scores, argmax, stack = parse_harness_output(done.stdout, expected=len(images))
    if not count_instructions:
        return FirmwareRun(scores, argmax, None, stack)
    segments = _instructions(log.read_text(), len(images), parts)
    return FirmwareRun(scores, argmax, segments.sum(axis=1), stack, segments)


def parse_harness_output(text: str, *, expected: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Scores (images, classes), argmax (images,) and the stack line (-1 when absent)."""
    rows, stack = [], -1
    for line in text.splitlines():
        if line.startswith("ERROR"):
            raise McuToolError(f"harness: {line[6:]}")
        if line.startswith("S "):
            rows.append([int(v) for v in line.split()[1:]])
        elif line.startswith("STACK "):
            stack = int(line.split()[1])
    if len(rows) != expected:
        raise McuToolError(f"harness printed {len(rows)} results for {expected} images")
    table = np.asarray(rows, dtype=np.int64).reshape(expected, -1)
    if not np.array_equal(table[:, 0], np.arange(expected)):
        raise McuToolError("harness results are out of order")
    return table[:, 2:], table[:, 1], stack


def _instructions(log: str, images: int, parts: int = 1) -> np.ndarray:
    """Instructions of each part of each inference, (images, parts), marker cost subtracted."""
    marks = [int(m.group(1)) for m in re.finditer(r"^mark \d+ (\d+)$", log, re.MULTILINE)]
    expected = 2 + (parts + 1) * images
    if len(marks) != expected:
        raise McuToolError(f"instruction counter recorded {len(marks)} marks, expected {expected}")
    marks = np.asarray(marks, dtype=np.int64)
    marker_cost = marks[1] - marks[0]
    per_image = marks[2:].reshape(images, parts + 1)
    return np.diff(per_image, axis=1) - marker_cost


def measure(
    c_dir: str | Path,
    images: np.ndarray,
    build_dir: str | Path,
    *,
    opt: str = "-Os",
    defines: Sequence[str] = (),
    sources: Sequence[str | Path] | None = None,
    include_dirs: Sequence[str | Path] = (),
    count_instructions: bool = True,
    parts: int = 1,
) -> McuMeasurement:
    """Builds, runs and sizes a model for the Cortex-M4: see the module docstring."""
    build_dir = Path(build_dir)
    firmware = build_firmware(
        c_dir, build_dir, opt=opt, defines=defines, sources=sources, include_dirs=include_dirs
    )
    run = run_firmware(
        firmware, images, build_dir / "run", count_instructions=count_instructions, parts=parts
    )
    return McuMeasurement(run=run, size=measure_size(firmware, build_dir))


def build_host(
    c_dir: str | Path,
    build_dir: str | Path,
    *,
    sources: Sequence[str | Path] | None = None,
    flags: Sequence[str] = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic"),
) -> Path:
    """The same harness built for this machine with the host C compiler (an executable)."""
    c_dir, build_dir = Path(c_dir), Path(build_dir)
    model_sources = _model_sources(c_dir, sources)
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise McuToolError("no host C compiler (cc/gcc): apt-get install -y gcc")
    build_dir.mkdir(parents=True, exist_ok=True)
    exe = build_dir / "kbnn_host_harness"
    command = [compiler, *flags, f"-I{c_dir}", SOURCES / "harness.c", *model_sources, "-o", exe]
    _run(command, what="host build of the harness")
    return exe


def run_host(
    exe: str | Path, images: np.ndarray, run_dir: str | Path
) -> tuple[np.ndarray, np.ndarray]:
    """Scores and argmax of the host-built harness on uint8 `images`."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / INPUT_FILE).write_bytes(_images_bytes(images))
    done = _run([Path(exe).resolve()], what="host harness", cwd=run_dir)
    scores, argmax, _ = parse_harness_output(done.stdout, expected=len(images))
    return scores, argmax
