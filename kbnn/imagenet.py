"""ImageNet (ILSVRC 2012) input pipeline through tensorflow-datasets, sharded across workers.

tfds' `imagenet2012` cannot download itself: the two archives from image-net.org must be put
in `<data_dir>/downloads/manual/` and the dataset prepared once (hours, ~150 GB):

    tfds build imagenet2012 --data_dir=DATA_DIR --manual_dir=DATA_DIR/downloads/manual

`builder(data_dir)` fails at once, without any download attempt, with the paths it expects.

The pipeline reads the JPEG bytes undecoded (`SkipDecoding`) so the random crop is decoded
directly (`decode_and_crop_jpeg`, Szegedy et al. 2015 "Inception" augmentation: 8–100% of the
area, aspect ratio 3/4–4/3, random flip), in parallel, with per-example stateless seeds (the same
seed gives the same batches). Evaluation takes the central 87.5% and resizes it. Images are
normalised with the ImageNet channel mean and standard deviation, as larq-zoo's models expect.
With several workers each worker reads a disjoint set of the tfrecord files (tfds `ReadConfig`
with the strategy's `InputContext`: file-level sharding; tfds shards are at most 1 GiB, so the
~140 GB training split has well over a hundred files, more than workers) and
batches with the per-replica batch size.
"""

from __future__ import annotations

import math
import os
import pathlib

from kbnn._validation import check_int, check_positive_int
from kbnn.data import DatasetNotFoundError, DataSplits, with_shard_policy

import tensorflow as tf

__all__ = [
    "MANUAL_FILES",
    "MEAN_RGB",
    "STDDEV_RGB",
    "ImageNetNotFoundError",
    "builder",
    "datasets_fn",
    "decode_center_crop",
    "decode_random_crop",
    "manual_dir",
    "normalize",
    "pipeline",
    "records",
]

NAME = "imagenet2012"
MANUAL_FILES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
TRAIN_EXAMPLES = 1_281_167
VALIDATION_EXAMPLES = 50_000
NUM_CLASSES = 1000
MEAN_RGB = (0.485 * 255, 0.456 * 255, 0.406 * 255)
STDDEV_RGB = (0.229 * 255, 0.224 * 255, 0.225 * 255)
CENTER_CROP_FRACTION = 0.875  # 224 of 256
AREA_RANGE = (0.08, 1.0)
ASPECT_RATIO_RANGE = (3 / 4, 4 / 3)


class ImageNetNotFoundError(DatasetNotFoundError):
    """imagenet2012 is not prepared in the tfds data dir (and cannot be downloaded)."""


def _data_dir(data_dir) -> pathlib.Path:
    data_dir = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
    return pathlib.Path(os.path.expanduser(str(data_dir)))


def manual_dir(data_dir=None) -> pathlib.Path:
    """Where the archives go: `<data_dir>/downloads/manual` (tfds' default manual dir)."""
    return _data_dir(data_dir) / "downloads" / "manual"


def builder(data_dir=None):
    """The prepared tfds `imagenet2012` builder in `data_dir` (default `$TFDS_DATA_DIR`, else
    `~/tensorflow_datasets`); `ImageNetNotFoundError` at once (nothing downloaded) naming the
    missing archives, or the command that prepares them when they are there."""
    import tensorflow_datasets as tfds

    root = _data_dir(data_dir)
    dataset_builder = tfds.builder(NAME, data_dir=str(root))
    if dataset_builder.is_prepared():
        return dataset_builder
    manual = manual_dir(root)
    missing = [str(manual / f) for f in MANUAL_FILES if not (manual / f).is_file()]
    if missing:
        raise ImageNetNotFoundError(
            f"ImageNet ({NAME}) is not prepared in {str(root)!r} and cannot be downloaded: "
            f"put {' and '.join(missing)} there (from https://image-net.org/download-images), "
            f"then run `tfds build {NAME} --data_dir={root} --manual_dir={manual}`"
        )
    raise ImageNetNotFoundError(
        f"the ImageNet archives are in {str(manual)!r} but {NAME} is not prepared in "
        f"{str(root)!r}; run once (hours, ~150 GB): "
        f"`tfds build {NAME} --data_dir={root} --manual_dir={manual}`"
    )


def records(
    dataset_builder, split: str, *, input_context=None, shuffle_files=False, seed=None
) -> tf.data.Dataset:
    """`{"image": JPEG bytes, "label": int64}` examples of `split`, this input pipeline's share of
    the files when `input_context` (a `tf.distribute.InputContext`) is given."""
    import tensorflow_datasets as tfds

    read_config = tfds.ReadConfig(
        input_context=input_context, shuffle_seed=seed, try_autocache=False
    )
    dataset = dataset_builder.as_dataset(
        split=split,
        shuffle_files=shuffle_files,
        read_config=read_config,
        decoders={"image": tfds.decode.SkipDecoding()},
    )
    return dataset.map(lambda ex: {"image": ex["image"], "label": ex["label"]})


def normalize(image: tf.Tensor) -> tf.Tensor:
    """(image − ImageNet mean) / ImageNet std per RGB channel, float32, image in [0, 255]."""
    image = tf.cast(image, tf.float32)
    return (image - tf.constant(MEAN_RGB)) / tf.constant(STDDEV_RGB)


def decode_random_crop(image_bytes: tf.Tensor, image_size: int, seed: tf.Tensor) -> tf.Tensor:
    """Inception-style training crop of a JPEG: a random window of 8–100% of the area and
    aspect ratio 3/4–4/3, decoded alone, resized to `image_size`², randomly flipped.
    `seed`: shape (2,) int (stateless, so the result depends on the seed only)."""
    shape = tf.image.extract_jpeg_shape(image_bytes)
    whole_image = tf.constant([0.0, 0.0, 1.0, 1.0], shape=(1, 1, 4))
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape,
        bounding_boxes=whole_image,
        seed=seed,
        min_object_covered=0.1,
        aspect_ratio_range=ASPECT_RATIO_RANGE,
        area_range=AREA_RANGE,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    window = tf.stack([begin[0], begin[1], size[0], size[1]])
    image = tf.image.decode_and_crop_jpeg(image_bytes, window, channels=3)
    image = tf.image.resize(image, (image_size, image_size), method="bilinear")
    return tf.image.stateless_random_flip_left_right(image, seed=seed[::-1])


def decode_center_crop(image_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """Evaluation crop: the central square of side 0.875·min(height, width), resized."""
    shape = tf.image.extract_jpeg_shape(image_bytes)
    side = tf.cast(
        CENTER_CROP_FRACTION * tf.cast(tf.minimum(shape[0], shape[1]), tf.float32), tf.int32
    )
    window = tf.stack([(shape[0] - side + 1) // 2, (shape[1] - side + 1) // 2, side, side])
    image = tf.image.decode_and_crop_jpeg(image_bytes, window, channels=3)
    return tf.image.resize(image, (image_size, image_size), method="bilinear")


def pipeline(
    examples: tf.data.Dataset,
    *,
    batch_size: int,
    training: bool,
    image_size=224,
    seed=0,
    shuffle_buffer=10_000,
    cache=False,
    repeat=None,
) -> tf.data.Dataset:
    """(image, label) batches from `{"image": JPEG bytes, "label"}` examples.

    Training: shuffle (buffer `shuffle_buffer`), repeat, random crop + flip; evaluation: center
    crop. Decoding and augmentation run in parallel (`AUTOTUNE`); batches have exactly
    `batch_size` images (every replica must run the same number of steps); the next batches are
    prefetched. `cache=True` caches the *encoded* examples in memory (the 6.4 GB validation set
    fits a worker's RAM; the 140 GB training set does not).
    """
    check_positive_int(batch_size, "batch_size")
    check_int(image_size, "image_size", low=8)
    repeat = training if repeat is None else repeat
    if cache:
        examples = examples.cache()
    if training:
        examples = examples.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        examples = examples.repeat()

    def preprocess(index, example):
        if training:
            element_seed = tf.stack([tf.cast(seed, tf.int64), index])
            image = decode_random_crop(example["image"], image_size, element_seed)
        else:
            image = decode_center_crop(example["image"], image_size)
        return normalize(image), example["label"]

    dataset = examples.enumerate().map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def datasets_fn(
    *,
    data_dir=None,
    seed=0,
    image_size=224,
    dataset_builder=None,
    shuffle_buffer=10_000,
    cache_validation=False,
):
    """`fn(global_batch_size, strategy) -> kbnn.data.DataSplits` for `kbnn.zoo.training.train`.

    Checks the dataset first (fails fast), then builds one pipeline per worker through
    `strategy.distribute_datasets_from_function`: each reads its share of the files (tfds
    `ReadConfig(input_context=...)`; tf.data auto-sharding is off so nothing is sharded twice) and
    batches `input_context.get_per_replica_batch_size(global_batch_size)` images. Validation
    repeats too and runs `50,000 // global batch` steps, the same on every worker.
    """

    def make(global_batch_size, strategy):
        source = dataset_builder or builder(data_dir)

        def input_fn(split, training):
            def fn(input_context):
                examples = records(
                    source, split, input_context=input_context, shuffle_files=training, seed=seed
                )
                batches = pipeline(
                    examples,
                    training=training,
                    image_size=image_size,
                    seed=seed,
                    batch_size=input_context.get_per_replica_batch_size(global_batch_size),
                    shuffle_buffer=shuffle_buffer,
                    repeat=True,
                    cache=cache_validation and not training,
                )
                return with_shard_policy(batches, "off")

            return fn

        splits = source.info.splits
        train_size = splits["train"].num_examples if "train" in splits else TRAIN_EXAMPLES
        val_size = (
            splits["validation"].num_examples if "validation" in splits else VALIDATION_EXAMPLES
        )
        return DataSplits(
            train=strategy.distribute_datasets_from_function(input_fn("train", True)),
            validation=strategy.distribute_datasets_from_function(input_fn("validation", False)),
            steps_per_epoch=math.ceil(train_size / global_batch_size),
            validation_steps=max(1, val_size // global_batch_size),
        )

    return make
