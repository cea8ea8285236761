"""`kbnn export-android`: write a model's flatbuffers, labels and model.json for the Android demo."""

from __future__ import annotations

import os

from kbnn.errors import UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export-android",
        help="convert a model into the Android demo's assets (.tflite, float twin, model.json)",
        description="Convert a zoo model (pretrained weights) or a .keras/.h5 file with "
        "kbnn.converters, measure both flatbuffers on kbnn's MNIST sample in LCE's interpreter, "
        "and write <name>.tflite, <name>_float.tflite, labels.txt and model.json into the "
        "app's assets folder.",
    )
    # Defaults are resolved in run(): kbnn.apps.android imports numpy, too slow for --help.
    parser.add_argument(
        "--model",
        default=None,
        help="zoo model name or .keras/.h5 file (default: the app's model, binarynet_mnist)",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="assets folder to write (default: the demo app's assets folder, from the repo root)",
    )
    parser.add_argument("--name", help="file name stem and model name (default: the model's)")
    parser.add_argument(
        "--labels", help="comma-separated class labels (default: 0..9 for 10 classes)"
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=1000,
        help="MNIST sample images to measure accuracy on, 0 to skip (default: %(default)s)",
    )
    parser.add_argument(
        "--mean",
        type=float,
        default=0.0,
        help="input normalisation x = (v/255 - mean)/std (default: %(default)s)",
    )
    parser.add_argument(
        "--std",
        type=float,
        default=1.0,
        help="the std of that normalisation (default: %(default)s)",
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    from kbnn.apps.android import DEFAULT_MODEL, DEFAULT_OUT, export_android, resolve_model

    args.model = args.model or DEFAULT_MODEL
    args.out = args.out or DEFAULT_OUT
    if args.out == DEFAULT_OUT and not os.path.isdir(os.path.dirname(DEFAULT_OUT)):
        raise UsageError(
            f"default --out {DEFAULT_OUT!r} is relative to the kbnn repository root and "
            f"{os.path.dirname(DEFAULT_OUT)!r} is not here; run from the repo root or pass --out"
        )
    from kbnn._io import check_output_dir

    check_output_dir(args.out, flag="--out")
    labels = None if args.labels is None else [label.strip() for label in args.labels.split(",")]
    model, name, description = resolve_model(args.model)
    result = export_android(
        model,
        args.out,
        name=args.name or name,
        description=description,
        labels=labels,
        samples=args.samples,
        mean=args.mean,
        std=args.std,
    )
    print(result.summary())
    return 0
