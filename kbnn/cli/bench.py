"""`kbnn bench OUT.tflite`: latency in LCE's interpreter (1 and N threads) vs the float twin, or
with `--target arm64` instructions per inference on LCE's aarch64 kernels (under qemu)."""

from __future__ import annotations

import os


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="latency (median/p90) of a flatbuffer in LCE's interpreter vs its float twin",
        description="Time single-sample inference in LCE's interpreter with 1 and N threads. "
        "The float TFLite twin (same graph, quantizers removed, TensorFlow's converter) is "
        "timed too when --model or --float-twin is given. On x86 LCE's binary kernels are "
        "reference implementations; ARM is the target: --target arm64 counts the instructions "
        "of LCE's aarch64 kernels under qemu-aarch64 instead (docs/arm64.md).",
    )
    parser.add_argument("flatbuffer", help="the LCE .tflite file")
    parser.add_argument(
        "--model",
        help="the Keras model it came from (.keras/.h5 file, or a zoo NAME with pretrained "
        "weights): builds the float twin; with --target arm64 outputs are also checked against it",
    )
    parser.add_argument(
        "--target",
        choices=("host", "arm64"),
        default="host",
        help="host: wall-clock latency here; arm64: aarch64 instructions per inference",
    )
    parser.add_argument("--per-op", action="store_true", help="arm64: instructions per operator")
    parser.add_argument(
        "--runner",
        metavar="DIR",
        help="arm64: the aarch64 runner directory (default: $KBNN_ARM64_RUNNER)",
    )
    parser.add_argument(
        "--mode",
        choices=("optimized", "indirect", "reference"),
        default="optimized",
        help="arm64: LCE binary-convolution kernels (default: %(default)s, LCE's default)",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=16,
        help="arm64: inputs compared with the x86 interpreter and Keras (default: %(default)s)",
    )
    parser.add_argument("--float-twin", metavar="PATH", help="a float twin .tflite file")
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="the multi-threaded run's thread count (default: CPU count, %(default)s)",
    )
    parser.add_argument("--runs", type=int, default=50, help="timed runs (default: %(default)s)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from kbnn.converters import benchmark, float_twin_flatbuffer
    from kbnn.converters.flatbuffer import format_table, load_bytes
    from kbnn.errors import UsageError

    if args.model and args.float_twin:
        raise UsageError("give --model or --float-twin, not both")
    if args.threads < 1 or args.runs < 1:
        raise UsageError("--threads and --runs must be >= 1")
    if args.target == "arm64":
        return run_arm64(args)
    flatbuffers = {"LCE": load_bytes(args.flatbuffer)}
    if args.float_twin:
        flatbuffers["float twin"] = load_bytes(args.float_twin)
    elif args.model:
        from kbnn import zoo
        from kbnn.converters.verify import check_matches

        model = zoo.load(args.model)
        check_matches(model, flatbuffers["LCE"])
        flatbuffers["float twin"] = float_twin_flatbuffer(model)
    threads = sorted({1, args.threads})
    rows = [("model", "runtime", "bytes", "threads", "median ms", "p90 ms")]
    for label, data in flatbuffers.items():
        for count in threads:
            result = benchmark(data, None, num_threads=count, runs=args.runs)
            rows.append(
                (
                    label,
                    result["runtime"],
                    f"{len(data):,}",
                    str(count),
                    f"{result['median_ms']:.3f}",
                    f"{result['p90_ms']:.3f}",
                )
            )
    print(format_table(rows))
    if len(flatbuffers) == 1:
        print("(pass --model MODEL.keras or --float-twin FILE to compare with the float twin)")
    print("note: on x86 LCE's binary kernels are reference code; ARM is LCE's target.")
    return 0


def bench_inputs(flatbuffer: bytes, count: int):
    """Real MNIST test digits (x / 255) for 28×28×1 inputs, else uniform [0, 1), seed 0."""
    from kbnn.converters.flatbuffer import read_flatbuffer

    import numpy as np

    graph = read_flatbuffer(flatbuffer).main
    shape = tuple(graph.tensors[graph.inputs[0]].shape[1:])
    if shape == (28, 28, 1):
        from kbnn.data import mnist_sample, normalize_mnist

        return normalize_mnist(mnist_sample()[0][:count])
    return np.random.default_rng(0).random((count,) + shape, dtype=np.float32)


def run_arm64(args) -> int:
    from kbnn import zoo
    from kbnn.converters import arm64
    from kbnn.converters.flatbuffer import load_bytes
    from kbnn.errors import UsageError

    if args.float_twin and args.model:
        raise UsageError("give --model or --float-twin, not both")
    if args.samples < 1:
        raise UsageError("--samples must be >= 1")
    arm64.check_qemu()
    arm64.find_runner(args.runner)
    flatbuffer = load_bytes(args.flatbuffer)
    model = zoo.load(args.model) if args.model else None
    report = arm64.compare(
        flatbuffer,
        bench_inputs(flatbuffer, args.samples),
        model=model,
        twin_flatbuffer=load_bytes(args.float_twin) if args.float_twin else None,
        mode=args.mode,
        per_op=args.per_op,
        runner=args.runner,
    )
    print(report.summary())
    return 0
