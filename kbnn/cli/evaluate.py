"""`kbnn evaluate NAME|MODEL.keras`: test accuracy on the full MNIST test split (tfds)."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="test accuracy of a zoo model (pretrained) or a .keras/.h5 file on MNIST test",
        description="Print the top-1 accuracy on the full MNIST test split (10,000 images, "
        "tfds; set TFDS_DATA_DIR). NAME loads the zoo model's pretrained weights.",
    )
    parser.add_argument("model", help="zoo model name or path to a saved model (.keras, .h5)")
    parser.add_argument(
        "--weights",
        default=None,
        help="with a zoo NAME: a weights file instead of the pretrained ones",
    )
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.set_defaults(func=run)


def run(args) -> int:
    from kbnn import zoo
    from kbnn.zoo.evaluation import evaluate_mnist

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    model = zoo.load(args.model, weights=args.weights or "pretrained")
    accuracy = evaluate_mnist(model, batch_size=args.batch_size)
    print(
        f"{args.model}: test accuracy {accuracy:.4f} ({100 * accuracy:.2f}%) on MNIST test "
        "(10,000 images)"
    )
    return 0
