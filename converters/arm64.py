"""ARM cost of a flatbuffer: LCE's aarch64 kernels under `qemu-aarch64`, instructions counted.

x86 has only LCE's reference binary kernels, so x86 timings say little about phones. The
*runner* (a static aarch64 build of the TFLite interpreter with LCE v0.16.0's optimized ARM
kernels, see `benchmarks/arm64_runner/`) runs the flatbuffer under qemu user mode, and a TCG
plugin counts the guest instructions. The count per inference is deterministic (repeat runs
differ by tens of instructions): a proxy for ARM cost, **not a time and not cycles**.

```python
cost = kbnn.converters.arm64.run(flatbuffer, x, per_op=True)
print(cost.instructions, cost.operators)
```

The runner directory holds `lce_run_full.aarch64` and `insncount.c` (the plugin source); it is
found through the `runner` argument, else `$KBNN_ARM64_RUNNER`. The plugin is compiled once with
gcc into `$KBNN_CACHE_DIR/arm64` (default `~/.cache/kbnn/arm64`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from kbnn.converters.errors import ConversionError
from kbnn.converters.flatbuffer import format_table, read_flatbuffer
from kbnn.errors import KbnnError

import numpy as np

#: Environment variable naming the runner directory.
RUNNER_ENV = "KBNN_ARM64_RUNNER"
RUNNER_BINARY = "lce_run_full.aarch64"
PLUGIN_SOURCE = "insncount.c"
#: LCE binary-convolution kernel modes of the runner (its `bconv_mode` argument).
KERNEL_MODES = {"optimized": 0, "indirect": 1, "reference": 2}
#: The mode kbnn uses everywhere: LCE's default, the cheapest on aarch64 (docs/arm64.md).
DEFAULT_MODE = "optimized"
_QEMU = "qemu-aarch64"
_INSTALL_QEMU = "install qemu-user (Debian/Ubuntu: apt-get install -y qemu-user)"


class Arm64Unavailable(KbnnError):
    """qemu-aarch64, gcc or the aarch64 runner is missing; the message says how to fix it."""


@dataclass
class Arm64Cost:
    """Instructions per inference of one flatbuffer on the aarch64 runner."""

    instructions: int
    outputs: np.ndarray
    mode: str
    #: (operator name, instructions) of one profiled inference, in execution order.
    operators: list[tuple[str, int]] = field(default_factory=list)

    def top_operators(self, count: int = 3) -> list[tuple[str, int]]:
        return sorted(self.operators, key=lambda item: -item[1])[:count]

    def operator_table(self) -> str:
        total = sum(c for _, c in self.operators) or 1
        rows = [("#", "operator", "instructions", "share")]
        rows += [
            (str(k), name, f"{count:,}", f"{100 * count / total:.1f}%")
            for k, (name, count) in enumerate(self.operators)
        ]
        rows.append(("", "sum over operators", f"{sum(c for _, c in self.operators):,}", ""))
        return format_table(rows)


# ----------------------------------------------------------------------------------------------
# Finding the tools
# ----------------------------------------------------------------------------------------------


def find_runner(runner: str | os.PathLike | None = None) -> Path:
    """The runner directory: `runner`, else `$KBNN_ARM64_RUNNER`; checked to hold the binary
    and the plugin source."""
    chosen = runner if runner is not None else os.environ.get(RUNNER_ENV)
    if not chosen:
        raise Arm64Unavailable(
            f"no aarch64 runner: pass --runner DIR or set {RUNNER_ENV}=DIR (a directory with "
            f"{RUNNER_BINARY} and {PLUGIN_SOURCE}; build one with benchmarks/arm64_runner/build.sh)"
        )
    directory = Path(chosen).expanduser()
    for name in (RUNNER_BINARY, PLUGIN_SOURCE):
        if not (directory / name).is_file():
            raise Arm64Unavailable(
                f"aarch64 runner directory {directory} has no {name} (build one with "
                "benchmarks/arm64_runner/build.sh, or point --runner/"
                f"{RUNNER_ENV} at a directory that has it)"
            )
    return directory


def check_qemu() -> str:
    """Path of qemu-aarch64, or Arm64Unavailable with the install command."""
    path = shutil.which(_QEMU)
    if path is None:
        raise Arm64Unavailable(f"{_QEMU} not found: {_INSTALL_QEMU}")
    return path


def plugin(runner_dir: Path, cache_dir: str | os.PathLike | None = None) -> Path:
    """The instruction-count plugin compiled from the runner's `insncount.c` (QEMU plugin API
    v1; the source declares the API itself, so no qemu headers are needed), cached by hash."""
    source = Path(runner_dir) / PLUGIN_SOURCE
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    cache = Path(cache_dir) if cache_dir else _cache_dir()
    target = cache / f"libinsncount-{digest}.so"
    if target.is_file():
        return target
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise Arm64Unavailable("no C compiler to build the qemu plugin: apt-get install -y gcc")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cache, suffix=".so", delete=False) as handle:
        partial = Path(handle.name)
    try:
        result = subprocess.run(
            [compiler, "-O2", "-shared", "-fPIC", "-o", str(partial), str(source)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise Arm64Unavailable(f"could not compile {source}: {result.stderr.strip()[:300]}")
        os.replace(partial, target)  # atomic: concurrent builds never see half a library
    finally:
        partial.unlink(missing_ok=True)
    return target


def _cache_dir() -> Path:
    base = os.environ.get("KBNN_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kbnn"
    )
    return Path(base) / "arm64"


def elf_symbol(path: Path, name: str) -> int | None:
    """Address of symbol `name` in a 64-bit little-endian ELF file's .symtab (the runner keeps
    `lce_marker` for the per-operator breakdown). Written here because the host `nm` may not
    read aarch64 binaries and pyelftools is not a dependency."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [
        struct.unpack_from("<IIQQQQIIQQ", data, shoff + k * shentsize) for k in range(shnum)
    ]
    wanted = name.encode()
    for _, kind, _, _, offset, size, link, _, _, entsize in sections:
        if kind != 2 or not entsize:  # SHT_SYMTAB
            continue
        strings_offset = sections[link][4]
        for start in range(offset, offset + size, entsize):
            (name_offset,) = struct.unpack_from("<I", data, start)
            end = data.index(b"\0", strings_offset + name_offset)
            if data[strings_offset + name_offset : end] == wanted:
                return struct.unpack_from("<Q", data, start + 8)[0]
    return None


# ----------------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------------


def run(
    flatbuffer: bytes,
    x,
    *,
    mode: str = DEFAULT_MODE,
    reps: int = 5,
    per_op: bool = False,
    runner: str | os.PathLike | None = None,
) -> Arm64Cost:
    """Run `flatbuffer` (one float32 input, one float32 output) on the aarch64 runner over the
    samples `x` (batch axis first) and count instructions: per inference =
    (count with `reps` extra invokes − count without) / `reps`, batch 1, one thread.
    `per_op` adds one profiled invoke's instructions per operator."""
    if mode not in KERNEL_MODES:
        raise ValueError(f"mode must be one of {', '.join(KERNEL_MODES)}, got {mode!r}")
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    qemu = check_qemu()
    directory = find_runner(runner)
    library = plugin(directory)
    inputs = _check_io(flatbuffer, x)
    binary = directory / RUNNER_BINARY
    with tempfile.TemporaryDirectory(prefix="kbnn-arm64-") as tmp:
        model_path, input_path, output_path = (Path(tmp) / n for n in ("m.tflite", "x", "y"))
        model_path.write_bytes(flatbuffer)
        inputs.astype("<f4").tofile(input_path)
        command = [str(binary), str(model_path), str(input_path), str(len(inputs))]
        tail = ["1", str(output_path), str(KERNEL_MODES[mode])]
        base = _count(qemu, library, command + ["1", "0"] + tail)
        outputs = np.fromfile(output_path, "<f4").reshape(len(inputs), -1)
        repeated = _count(qemu, library, command + ["1", str(reps)] + tail)
        operators = []
        if per_op:
            single = [str(binary), str(model_path), str(input_path), "1", "0", "0", *tail]
            operators = _per_operator(qemu, library, binary, single)
    return Arm64Cost(round((repeated - base) / reps), outputs, mode, operators)


def _check_io(flatbuffer: bytes, x) -> np.ndarray:
    graph = read_flatbuffer(flatbuffer).main
    for role, indices in (("input", graph.inputs), ("output", graph.outputs)):
        dtypes = [graph.tensors[i].dtype for i in indices]
        if dtypes != ["float32"]:
            raise ConversionError(
                f"the aarch64 runner needs one float32 {role}; this flatbuffer has {dtypes}"
            )
    shape = tuple(graph.tensors[graph.inputs[0]].shape[1:])
    inputs = np.asarray(x, np.float32)
    if inputs.shape[1:] != shape or len(inputs) == 0:
        raise ValueError(
            f"inputs must have shape (N, {', '.join(map(str, shape))}), got {inputs.shape}"
        )
    return np.ascontiguousarray(inputs)


def _qemu(qemu: str, library: Path, command: list[str], marker: int | None = None, env=None):
    option = str(library) + (f",marker={marker:#x}" if marker is not None else "")
    result = subprocess.run(
        [qemu, "-plugin", option, "-d", "plugin", *command],
        capture_output=True,
        text=True,
        env=env,
    )
    if result.returncode != 0:
        message = " ".join((result.stderr + result.stdout).split())[-400:]
        raise ConversionError(f"the aarch64 runner failed (exit {result.returncode}): {message}")
    return result


def _count(qemu: str, library: Path, command: list[str]) -> int:
    result = _qemu(qemu, library, command)
    for line in result.stderr.splitlines():
        if line.startswith("insns: "):
            return int(line.split()[1])
    raise ConversionError("the qemu plugin printed no instruction count")


def _per_operator(qemu: str, library: Path, binary: Path, command: list[str]):
    marker = elf_symbol(binary, "lce_marker")
    if marker is None:
        raise Arm64Unavailable(f"{binary} has no lce_marker symbol: per-operator counts need it")
    env = {**os.environ, "LCE_OP_PROFILE": "1"}
    result = _qemu(qemu, library, command, marker=marker, env=env)
    names = [line.split()[2] for line in result.stdout.splitlines() if line.startswith("op ")]
    marks = [
        int(line.split()[2]) for line in result.stderr.splitlines() if line.startswith("mark ")
    ]
    marks = marks[len(marks) - 2 * len(names) :]
    return [(name, marks[2 * k + 1] - marks[2 * k]) for k, name in enumerate(names)]


# ----------------------------------------------------------------------------------------------
# Comparing with the float twin, the x86 interpreter and Keras
# ----------------------------------------------------------------------------------------------


@dataclass
class Agreement:
    """aarch64 outputs against a reference: argmax agreement and max |difference|."""

    reference: str
    argmax_agreement: float
    max_abs_diff: float


@dataclass
class Arm64Report:
    """What `kbnn bench --target arm64` prints: the binary model's cost, the float twin's and
    their ratio, and how the aarch64 outputs agree with the x86 LCE interpreter and Keras."""

    binary: Arm64Cost
    twin: Arm64Cost | None = None
    agreements: list[Agreement] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        """Float-twin instructions ÷ binary instructions (how many times cheaper on ARM)."""
        return self.twin.instructions / self.binary.instructions if self.twin else None

    def summary(self) -> str:
        rows = [("model", "instructions per inference", "float ÷ binary")]
        rows.append(("binary (LCE)", f"{self.binary.instructions:,}", ""))
        if self.twin is not None:
            rows.append(("float32 twin", f"{self.twin.instructions:,}", f"{self.ratio:.2f}×"))
        lines = [
            f"aarch64 (LCE v0.16.0 kernels under qemu, {self.binary.mode} bgemm, batch 1, "
            "1 thread); instruction counts are a proxy for ARM cost, not a time",
            format_table(rows),
        ]
        for agreement in self.agreements:
            lines.append(
                f"aarch64 vs {agreement.reference}: argmax agreement "
                f"{100 * agreement.argmax_agreement:.2f}%, max |diff| {agreement.max_abs_diff:.3g}"
            )
        if self.binary.operators:
            lines += ["per operator (binary model, one inference):", self.binary.operator_table()]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def agreement(reference_name: str, reference, actual) -> Agreement:
    reference = np.asarray(reference, np.float64).reshape(len(actual), -1)
    actual = np.asarray(actual, np.float64).reshape(len(reference), -1)
    return Agreement(
        reference_name,
        float(np.mean(reference.argmax(axis=1) == actual.argmax(axis=1))),
        float(np.max(np.abs(reference - actual))),
    )


def compare(
    flatbuffer: bytes,
    x,
    *,
    model=None,
    twin_flatbuffer: bytes | None = None,
    mode: str = DEFAULT_MODE,
    per_op: bool = False,
    runner: str | os.PathLike | None = None,
    reps: int = 5,
) -> Arm64Report:
    """Cost of `flatbuffer` on aarch64 over inputs `x`, checked against LCE's x86 interpreter;
    with the Keras `model` also against Keras and against its float twin's cost (built with
    `float_twin_flatbuffer` unless `twin_flatbuffer` is given)."""
    from kbnn.converters.verify import KERNEL_OPTIONS, keras_outputs, lce_outputs

    binary = run(flatbuffer, x, mode=mode, per_op=per_op, runner=runner, reps=reps)
    inputs = np.asarray(x, np.float32)
    x86 = lce_outputs(flatbuffer, [inputs], **KERNEL_OPTIONS)[0]
    report = Arm64Report(binary, agreements=[agreement("x86 LCE interpreter", x86, binary.outputs)])
    if model is not None:
        report.agreements.append(
            agreement("Keras", keras_outputs(model, [inputs])[0], binary.outputs)
        )
        if twin_flatbuffer is None:
            from kbnn.converters.twin import float_twin_flatbuffer

            twin_flatbuffer = float_twin_flatbuffer(model)
    if twin_flatbuffer is not None:
        report.twin = run(twin_flatbuffer, x, mode=mode, runner=runner, reps=reps)
    return report
