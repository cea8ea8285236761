"""`kbnn compress`: DeepCompression of a saved Keras model into an exact `.kbz` file.

    kbnn compress MODEL.keras --prune 0.9 --bits 5 --huffman -o out.kbz [--dataset mnist]

Prints the per-stage report (params, nonzeros, bits/weight, bytes, ratio, accuracy when a
dataset is given); encodings that cost more than they save are reported and skipped.
"""

from __future__ import annotations

import argparse

from kbnn.errors import UsageError

DATASETS = ("mnist",)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compress",
        help="prune, share weights and Huffman-code a Keras model (DeepCompression)",
        description="DeepCompression (Han et al. 2016) of a saved Keras model into an exact "
        ".kbz file: prune → share weights → Huffman-code, with a per-stage report.",
        epilog="example: kbnn compress lenet.keras --prune 0.9 --bits 5 --huffman -o lenet.kbz "
        "--dataset mnist",
    )
    parser.add_argument("model", help="saved Keras model (.keras or .h5)")
    parser.add_argument("-o", "--output", required=True, help="compressed model file (.kbz)")
    parser.add_argument(
        "--prune",
        type=float,
        metavar="SPARSITY",
        help="fraction of weights to prune in every prunable layer, in [0, 1)",
    )
    parser.add_argument(
        "--prune-layer",
        action="append",
        default=[],
        metavar="NAME=SPARSITY",
        help="per-layer sparsity (repeatable); overrides --prune for that layer",
    )
    parser.add_argument("--bits", type=int, help="codebook index bits for weight sharing (1..8)")
    parser.add_argument(
        "--conv-bits",
        type=int,
        help="index bits for conv kernels (default --bits; the paper uses 8 for conv, 5 for fc)",
    )
    parser.add_argument("--huffman", action="store_true", help="Huffman-code the streams")
    parser.add_argument(
        "--gap-bits", type=int, help="relative-index bits (default: 4 for conv, 5 for fc kernels)"
    )
    parser.add_argument(
        "--dataset",
        choices=DATASETS,
        help="report test accuracy per stage and retrain with its train split",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=1,
        help="retraining epochs per pruning round (with --dataset; 0: one-shot)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="prune → retrain rounds")
    parser.add_argument(
        "--finetune-epochs",
        type=int,
        default=1,
        help="codebook fine-tuning epochs (with --dataset)",
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=1e-4,
        help="Adam learning rate for retraining and fine-tuning",
    )
    parser.set_defaults(func=run)


def _sparsity(args) -> float | dict | None:
    if args.prune is not None and not 0.0 <= args.prune < 1.0:
        raise UsageError(f"--prune must be in [0, 1), got {args.prune}")
    if not args.prune_layer:
        return args.prune
    per_layer = {}
    for item in args.prune_layer:
        name, sep, value = item.partition("=")
        try:
            sparsity = float(value)
        except ValueError:
            sparsity = -1.0
        if not sep or not name or not 0.0 <= sparsity < 1.0:
            raise UsageError(
                f"--prune-layer expects NAME=SPARSITY with SPARSITY in [0, 1), got {item!r}"
            )
        per_layer[name] = sparsity
    return per_layer, args.prune


def _check_bits(value, flag: str) -> None:
    if value is not None and not 1 <= value <= 8:
        raise UsageError(f"{flag} must be in 1..8, got {value}")


def _load(path: str):
    from kbnn._loading import load_model

    return load_model(path)


def _expand(sparsity, model):
    """--prune-layer entries over a --prune default for the other prunable layers."""
    from kbnn.compression import pruning

    if not isinstance(sparsity, tuple):
        return sparsity
    per_layer, default = sparsity
    names = {layer.name for layer in model.layers}
    unknown = sorted(set(per_layer) - names)
    if unknown:
        raise UsageError(f"--prune-layer: no layer named {unknown}; layers: {sorted(names)}")
    if default:
        for layer in model.layers:
            if pruning.is_prunable(layer):
                per_layer.setdefault(layer.name, default)
    return per_layer


def run(args: argparse.Namespace) -> int:
    sparsity = _sparsity(args)
    _check_bits(args.bits, "--bits")
    _check_bits(args.conv_bits, "--conv-bits")
    for flag, value in (
        ("--epochs", args.epochs),
        ("--rounds", args.rounds),
        ("--finetune-epochs", args.finetune_epochs),
    ):
        if value < 0:
            raise UsageError(f"{flag} must be >= 0, got {value}")
    if args.rounds < 1:
        raise UsageError("--rounds must be >= 1")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.gap_bits is not None and not 1 <= args.gap_bits <= 16:
        raise UsageError(f"--gap-bits must be in 1..16, got {args.gap_bits}")
    if sparsity is None and args.bits is None and not args.huffman:
        raise UsageError("nothing to do: give --prune/--prune-layer, --bits and/or --huffman")

    from kbnn._io import check_output
    from kbnn._loading import model_file

    model_file(args.model)
    if args.output:
        check_output(args.output, inputs=[args.model])
    from kbnn.compression import pipeline

    model = _load(args.model)
    sparsity = _expand(sparsity, model)
    train = test = None
    if args.dataset == "mnist":
        from kbnn.data import mnist

        test = mnist("test", 1000)
        if args.epochs or args.finetune_epochs:
            train = mnist("train", args.batch_size, shuffle=True, seed=0)
    retrain = train if args.epochs else None
    config = pipeline.CompressionConfig(
        sparsity=sparsity,
        bits=args.bits,
        conv_bits=args.conv_bits,
        huffman=args.huffman,
        rounds=args.rounds,
        epochs_per_round=max(args.epochs, 1),
        finetune_epochs=args.finetune_epochs,
        compile_fn=pipeline.default_compile(args.learning_rate),
        gap_bits=args.gap_bits,
    )
    result = pipeline.compress(
        model, config, train_data=retrain, test_data=test, finetune_data=train, output=args.output
    )
    print(result.format())
    return 0
