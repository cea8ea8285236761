"""`kbnn train NAME`: train a zoo MNIST model with its recipe (tfds + tf.data, Keras callbacks)."""

from __future__ import annotations

BN_CHOICES = ("batchnorm", "shift")
OPTIMIZER_CHOICES = ("adam", "shift_adamax", "bop")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a zoo MNIST model (checkpoint, CSV/TensorBoard logs, curves PNG)",
        description="Train a kbnn.zoo MNIST model on tfds MNIST. Writes model.keras (best "
        "validation accuracy), training_log.csv, tensorboard/ and training_curves.png into "
        "--output (default runs/NAME), then prints the test accuracy.",
    )
    parser.add_argument("name", help="zoo model name (kbnn zoo list)")
    parser.add_argument("--epochs", type=int, default=None, help="default: the model's recipe")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--optimizer", choices=OPTIMIZER_CHOICES, default=None,
                        help="default: the recipe's (adam with cosine decay)")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="initial learning rate; default: the recipe's")
    parser.add_argument("--bn", choices=BN_CHOICES, default="batchnorm",
                        help="batch normalisation: float or shift-based (BinaryNet)")
    parser.add_argument("--output", default=None, help="output folder (default runs/NAME)")
    parser.add_argument("--validation-size", type=int, default=5000,
                        help="training images held out to pick the best checkpoint (default "
                        "5000; 0 keeps the last epoch)")
    parser.add_argument("--steps-per-epoch", type=int, default=None,
                        help="shorter epochs for quick checks (default: one pass over the data)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="one line per epoch, no bars")
    parser.set_defaults(func=run)


def run(args) -> int:
    from kbnn.zoo.training import train

    result = train(
        args.name,
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        bn=args.bn,
        output=args.output,
        validation_size=args.validation_size,
        seed=args.seed,
        steps_per_epoch=args.steps_per_epoch,
        verbose=2 if args.quiet else 1,
    )
    if result.test_accuracy is not None:
        print(f"test accuracy: {result.test_accuracy:.4f}")
    return 0
