"""`kbnn train NAME`: train a zoo model with its recipe on any `tf.distribute` strategy."""

from __future__ import annotations

import argparse

BN_CHOICES = ("batchnorm", "shift")
OPTIMIZER_CHOICES = ("adam", "shift_adamax", "bop")
# Mirrors kbnn.distribute (not imported here: `kbnn --help` must not load TensorFlow).
STRATEGY_CHOICES = ("default", "mirrored", "multiworker", "tpu")
LR_SCALING_CHOICES = ("linear", "sqrt", "none")
PRECISION_CHOICES = ("float32", "mixed_float16", "mixed_bfloat16")
COMMUNICATION_CHOICES = ("auto", "ring", "nccl")


def _backup_freq(value: str):
    if value == "epoch":
        return value
    try:
        steps = int(value)
    except ValueError:
        steps = 0
    if steps < 1:
        raise argparse.ArgumentTypeError(
            f"must be 'epoch' or a positive number of steps, got {value!r}"
        )
    return steps


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a zoo model with its recipe (1 device, N GPUs, a cluster or a TPU)",
        description="Train a kbnn.zoo model with its recipe: tfds data, Keras fit inside "
        "strategy.scope(), BackupAndRestore. Writes model.keras (best validation accuracy), "
        "training_log.csv, tensorboard/, training_curves.png and run.json into --output "
        "(default runs/NAME), then prints the test accuracy (MNIST models). Rerunning an "
        "interrupted command resumes from --output/backup.",
    )
    parser.add_argument("name", help="zoo model name (kbnn zoo list)")
    _add_schedule_arguments(parser)
    _add_distribution_arguments(parser)
    _add_output_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from kbnn._io import check_output_dir
    from kbnn.zoo.training import train

    for flag, folder in (("--output", args.output), ("--backup-dir", args.backup_dir)):
        if folder is not None:
            check_output_dir(folder, flag=flag)
    result = train(
        args.name,
        strategy=args.strategy,
        batch_size=args.batch_size,
        per_replica_batch_size=args.per_replica_batch_size,
        epochs=args.epochs,
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        lr_scaling=args.lr_scaling,
        bn=args.bn,
        sync_bn=args.sync_bn,
        mixed_precision=args.mixed_precision,
        output=args.output,
        backup_dir=args.backup_dir,
        backup_freq=args.backup_freq,
        steps_per_epoch=args.steps_per_epoch,
        validation_size=args.validation_size,
        data_dir=args.data_dir,
        seed=args.seed,
        tpu=args.tpu,
        communication=args.communication,
        flip_ratio=args.flip_ratio,
        init_from=args.init_from,
        verbose=2 if args.quiet else 1,
    )
    if result.is_chief and result.test_accuracy is not None:
        print(f"test accuracy: {result.test_accuracy:.4f}")
    return 0


def _add_schedule_arguments(parser) -> None:
    parser.add_argument("--epochs", type=int, default=None, help="default: the model's recipe")
    batch = parser.add_mutually_exclusive_group()
    batch.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="global batch size, split evenly over the replicas (default: the "
        "recipe's per replica)",
    )
    batch.add_argument(
        "--per-replica-batch-size",
        type=int,
        default=None,
        help="batch per replica; the global batch is this x replicas",
    )
    parser.add_argument(
        "--optimizer",
        choices=OPTIMIZER_CHOICES,
        default=None,
        help="default: the recipe's (adam with cosine decay)",
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help="learning rate for the recipe's batch size (default: the recipe's; "
        "shift_adamax 2^-8), scaled to the global batch by --lr-scaling",
    )
    parser.add_argument(
        "--lr-scaling",
        choices=LR_SCALING_CHOICES,
        default="sqrt",
        help="learning rate x k, x sqrt(k) or unchanged, k = global batch / "
        "recipe batch (default sqrt, for Adam-type optimizers)",
    )
    parser.add_argument(
        "--bn",
        choices=BN_CHOICES,
        default="batchnorm",
        help="batch normalisation: float or shift-based (BinaryNet)",
    )


def _add_distribution_arguments(parser) -> None:
    parser.add_argument(
        "--strategy",
        choices=STRATEGY_CHOICES,
        default="default",
        help="tf.distribute strategy: default (one device), mirrored (all GPUs "
        "of this machine), multiworker (TF_CONFIG), tpu",
    )
    parser.add_argument(
        "--sync-bn",
        action="store_true",
        help="batch statistics over the global batch (one all-reduce per BN "
        "layer and step) instead of per replica",
    )
    parser.add_argument(
        "--mixed-precision",
        choices=PRECISION_CHOICES,
        default="float32",
        help="Keras mixed-precision policy; quantizer scales and the output stay float32",
    )
    parser.add_argument(
        "--communication",
        choices=COMMUNICATION_CHOICES,
        default="auto",
        help="multiworker all-reduce implementation",
    )
    parser.add_argument(
        "--tpu", default=None, help="TPU name or grpc:// address ('local' on a TPU VM)"
    )


def _add_output_arguments(parser) -> None:
    parser.add_argument("--output", default=None, help="output folder (default runs/NAME)")
    parser.add_argument(
        "--backup-dir",
        default=None,
        help="BackupAndRestore folder, on storage every worker sees (default OUTPUT/backup)",
    )
    parser.add_argument(
        "--backup-freq",
        type=_backup_freq,
        default="epoch",
        help="'epoch' (default) or back up every N steps",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="tfds data dir (default $TFDS_DATA_DIR, else ~/tensorflow_datasets)",
    )
    parser.add_argument(
        "--validation-size",
        type=int,
        default=5000,
        help="MNIST training images held out to pick the best checkpoint "
        "(default 5000; 0 keeps the last epoch)",
    )
    parser.add_argument(
        "--steps-per-epoch",
        type=int,
        default=None,
        help="shorter epochs for quick checks (default: one pass over the data)",
    )
    parser.add_argument(
        "--no-flip-ratio",
        dest="flip_ratio",
        action="store_false",
        help="do not track the latent-weight flip ratio per quantized kernel",
    )
    parser.add_argument(
        "--init-from",
        default=None,
        metavar="NAME|FILE",
        help="fine-tune: start from a zoo model's pretrained weights or a weights file "
        "(matched by layer name) instead of a random initialisation",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="one line per epoch, no bars")
