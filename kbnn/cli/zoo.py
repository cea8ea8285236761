"""`kbnn zoo list | info NAME | export NAME`: the model zoo's registry and model cards."""

from __future__ import annotations

import json


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "zoo",
        help="list zoo models, show a model card, export trained weights",
        description="The kbnn model zoo: definitions, recipes and pretrained weights.",
    )
    sub = parser.add_subparsers(dest="zoo_command", metavar="ZOO_COMMAND")
    sub.required = True
    listing = sub.add_parser("list", help="one line per model: dataset, bits, weights")
    listing.set_defaults(func=run_list, light=True)  # cards and registry only
    info = sub.add_parser("info", help="paper, bits, params, expected and measured accuracy")
    info.add_argument("name")
    info.add_argument("--json", action="store_true", help="print the card as JSON")
    info.set_defaults(func=run_info)
    export = sub.add_parser(
        "export",
        help="write compact weights + model card from a trained model.keras (maintainers)",
        description="Convert a trained checkpoint into the zoo's compact .npz weights, measure "
        "its accuracy on the full MNIST test split and write the model card.",
    )
    export.add_argument("name")
    export.add_argument("checkpoint", help="model.keras written by kbnn train")
    export.add_argument(
        "--command",
        required=True,
        dest="training_command",
        help="the exact training command that produced the checkpoint",
    )
    export.add_argument("--trained-on", default="CPU", help="hardware, for the card")
    export.add_argument("--weights-dir", default=None, help="default: the package's weights/")
    export.add_argument("--cards-dir", default=None, help="default: the package's cards/")
    export.set_defaults(func=run_export)


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def run_list(args) -> int:
    from kbnn.zoo import cards

    rows = []
    index = cards.read_zoo_index() or cards.build_zoo_index()  # the index needs no TensorFlow
    for info in index:
        card = cards.read_card(info["name"]) or {}
        rows.append(
            (
                info["name"],
                info["dataset"],
                info["bits"].split(" ")[0],
                _percent(info["expected_accuracy"]),
                _percent(card.get("measured_accuracy")),
                info["weights"] or "-",
            )
        )
    header = ("name", "dataset", "bits", "expected", "measured", "weights")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(
                str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)
            ).rstrip()
        )
    return 0


def run_info(args) -> int:
    import kbnn.zoo

    info = kbnn.zoo.info(args.name)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    card = info.pop("card", None) or {}
    params = info.pop("params", {})
    print(f"{info['name']}: {' '.join(info.pop('doc').split())}")
    for key in ("paper", "dataset", "input_shape", "num_classes", "bits"):
        print(f"  {key}: {info[key]}")
    if params:
        print(f"  params: {params['total']:,} ({params['binary']:,} binary)")
    print(f"  expected accuracy: {_percent(info['expected_accuracy'])} ({info['expected_source']})")
    if "recipe" in info:
        print(f"  recipe: {info['recipe']}")
    print(f"  weights: {info['weights'] or 'none'}")
    for key, value in card.items():
        if key in ("name", "summary", "unique_kernels", "flip_ratio_last_epoch"):
            continue
        if key == "measured_accuracy":
            value = _percent(value)
        print(f"  {key}: {value}")
    for line in _cost_lines(card):
        print(f"  {line}")
    return 0


def _cost_lines(card: dict) -> list[str]:
    """The card's summary, unique kernels and flip ratios in a few lines (--json has it all)."""
    lines = []
    totals = (card.get("summary") or {}).get("totals")
    if totals:
        lines.append(
            f"memory: {totals['memory_bytes']:,} B deployed vs {totals['float32_bytes']:,} B "
            f"float32 ({totals['memory_ratio']:.1f}x smaller); {totals['binary_ops']:,} binary "
            f"ops, {totals['float_macs']:,} float MACs; energy {totals['energy_pj'] / 1e6:.3f} uJ "
            f"per image ({totals['energy_ratio']:.1f}x less, 45 nm, DRAM weights)"
        )
    for layer in (card.get("unique_kernels") or {}).get("layers", []):
        lines.append(
            f"unique kernels {layer['layer']}: {layer['unique']:,}/{layer['total']:,} "
            f"({layer['ratio']:.1%}; {layer['ratio_up_to_sign']:.1%} counting -k as k; "
            f"{layer['kernel_size'][0]}x{layer['kernel_size'][1]}, {layer['bits']}-bit)"
        )
    flips = card.get("flip_ratio_last_epoch")
    if flips:
        lines.append(
            "flip ratio, last epoch: "
            + ", ".join(f"{name} {value:.2e}" for name, value in flips.items())
        )
    return lines


def run_export(args) -> int:
    from kbnn.zoo.export import export_weights

    card = export_weights(
        args.name,
        args.checkpoint,
        training_command=args.training_command,
        weights_dir=args.weights_dir,
        cards_dir=args.cards_dir,
        trained_on=args.trained_on,
    )
    print(json.dumps(card, indent=2))
    return 0
