"""`kbnn bench OUT.tflite`: latency in LCE's interpreter (1 and N threads) vs the float twin."""

from __future__ import annotations

import os


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="latency (median/p90) of a flatbuffer in LCE's interpreter vs its float twin",
        description="Time single-sample inference in LCE's interpreter with 1 and N threads. "
        "The float TFLite twin (same graph, quantizers removed, TensorFlow's converter) is "
        "timed too when --model or --float-twin is given. On x86 LCE's binary kernels are "
        "reference implementations; ARM is the target.",
    )
    parser.add_argument("flatbuffer", help="the LCE .tflite file")
    parser.add_argument("--model", help="the Keras model it came from (to build the float twin)")
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
    flatbuffers = {"LCE": load_bytes(args.flatbuffer)}
    if args.float_twin:
        flatbuffers["float twin"] = load_bytes(args.float_twin)
    elif args.model:
        from kbnn.cli.convert import load_model

        flatbuffers["float twin"] = float_twin_flatbuffer(load_model(args.model))
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
