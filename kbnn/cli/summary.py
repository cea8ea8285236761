"""`kbnn summary MODEL`: bit-aware summary, 45 nm energy estimate, unique kernels, plots."""

from __future__ import annotations

import json
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "summary",
        help="per-layer bits, memory, binary/int8/float ops and a 45 nm energy estimate",
        description="Print kbnn.models.summary of a saved model (.keras/.h5) or a zoo model: "
        "parameters by bit width, deployment memory, XNOR-popcount / int8 / float32 ops and "
        "the energy of one inference (Horowitz, ISSCC 2014, 45 nm) against the float32 twin.",
    )
    parser.add_argument("model", help="a .keras/.h5 file or a zoo model name")
    parser.add_argument(
        "--plot", metavar="PNG", help="write the per-layer memory/energy bar chart to this image"
    )
    parser.add_argument(
        "--histograms",
        metavar="PNG",
        help="write latent vs quantized weight histograms to this image",
    )
    parser.add_argument(
        "--unique-kernels",
        action="store_true",
        help="also count distinct binary k×k kernels per convolution",
    )
    parser.add_argument(
        "--json", metavar="PATH", help="write the summary (and unique kernels) as JSON"
    )
    parser.add_argument(
        "--weight-memory",
        choices=("dram", "sram"),
        default="dram",
        help="where weights are read from for the energy estimate (default: %(default)s)",
    )
    parser.set_defaults(func=run)


def load_model(ref: str):
    """`kbnn.zoo.load(ref)`; a zoo model without shipped weights is counted randomly
    initialised (said on stderr): bits, memory and energy depend on the architecture only."""
    from kbnn import zoo

    weights = "pretrained"
    if ref in zoo.list_models() and zoo.available_weights(ref) is None:
        print(
            f"kbnn summary: {ref!r} has no pretrained weights; counting a randomly "
            "initialised model (histograms and unique kernels show random weights)",
            file=sys.stderr,
        )
        weights = "random"
    return zoo.load(ref, weights=weights)


def run(args) -> int:
    import dataclasses

    from kbnn import analysis, models, plotting
    from kbnn._io import check_output, write_atomic

    for flag in ("plot", "histograms", "json"):
        if getattr(args, flag):
            check_output(getattr(args, flag), inputs=[args.model], flag=f"--{flag}")
    model = load_model(args.model)
    energy = dataclasses.replace(models.HOROWITZ_45NM, weight_memory=args.weight_memory)
    result = models.summary(model, energy_model=energy)
    data = {"summary": result.as_dict()}
    if args.unique_kernels:
        report = analysis.unique_kernels(model)
        print(report.table() if len(report) else "no binary convolution to analyse")
        data["unique_kernels"] = report.as_dict()
    if args.plot:
        print(f"wrote {plotting.plot_memory_energy(result, args.plot)}")
    if args.histograms:
        print(f"wrote {plotting.plot_weight_histograms(model, args.histograms)}")
    if args.json:
        write_atomic(args.json, json.dumps(data, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
