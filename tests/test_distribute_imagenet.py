"""kbnn.imagenet: fail-fast checks of the manual download, and the input pipeline (decode,
augment, normalise, file sharding across workers) on tiny synthetic JPEG datasets."""

import pathlib
import time

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
import kbnn.zoo
from kbnn import imagenet
from kbnn.data import DatasetNotFoundError
from kbnn.errors import KbnnError, UsageError

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

# --------------------------------------------------------------------------- fail fast


@pytest.fixture
def no_download(monkeypatch):
    """Any attempt to download or prepare fails the test."""

    def forbidden(*args, **kwargs):
        raise AssertionError("kbnn.imagenet tried to download/prepare")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", forbidden)


def test_missing_imagenet_fails_fast_naming_the_files(tmp_path, no_download):
    start = time.monotonic()
    with pytest.raises(imagenet.ImageNetNotFoundError) as info:
        imagenet.builder(tmp_path)
    assert time.monotonic() - start < 5
    message = str(info.value)
    manual = tmp_path / "downloads" / "manual"
    for name in ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"):
        assert str(manual / name) in message
    assert "tfds build imagenet2012" in message
    assert isinstance(info.value, DatasetNotFoundError) and isinstance(info.value, KbnnError)
    assert imagenet.manual_dir(tmp_path) == manual


def test_archives_present_but_not_prepared(tmp_path, no_download):
    manual = imagenet.manual_dir(tmp_path)
    manual.mkdir(parents=True)
    (manual / "ILSVRC2012_img_train.tar").touch()
    with pytest.raises(imagenet.ImageNetNotFoundError, match="ILSVRC2012_img_val.tar") as info:
        imagenet.builder(tmp_path)
    assert "ILSVRC2012_img_train.tar" not in str(info.value).split("put ")[1].split(" there")[0]
    (manual / "ILSVRC2012_img_val.tar").touch()
    with pytest.raises(imagenet.ImageNetNotFoundError, match="not prepared") as info:
        imagenet.builder(tmp_path)
    assert f"--manual_dir={manual}" in str(info.value)


def test_data_dir_defaults_to_tfds_data_dir(tmp_path, monkeypatch, no_download):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    with pytest.raises(imagenet.ImageNetNotFoundError, match=str(tmp_path)):
        imagenet.builder()


def test_training_an_imagenet_model_without_the_data_fails_before_building(tmp_path, no_download):
    start = time.monotonic()
    with pytest.raises(imagenet.ImageNetNotFoundError, match="ILSVRC2012_img_train.tar"):
        kbnn.zoo.train("quicknet", data_dir=tmp_path, output=tmp_path / "run", verbose=0)
    assert time.monotonic() - start < 5


# --------------------------------------------------------------------------- pipeline


def _jpeg(image: np.ndarray) -> bytes:
    return tf.io.encode_jpeg(tf.constant(image, tf.uint8), quality=100).numpy()


def _examples(images, labels=None):
    labels = list(range(len(images))) if labels is None else labels
    return tf.data.Dataset.from_tensor_slices(
        {"image": [_jpeg(i) for i in images], "label": np.asarray(labels, np.int64)}
    )


def test_eval_pipeline_normalises_a_uniform_image():
    color = np.array([200, 100, 30])
    images = [np.broadcast_to(color, (48 + 8 * i, 64, 3)).astype(np.uint8) for i in range(4)]
    batches = list(
        imagenet.pipeline(_examples(images), batch_size=2, training=False, image_size=32)
    )
    assert len(batches) == 2
    image, label = batches[0]
    assert image.shape == (2, 32, 32, 3) and image.dtype == tf.float32
    np.testing.assert_array_equal(label, [0, 1])
    expected = (color - np.array(imagenet.MEAN_RGB)) / np.array(imagenet.STDDEV_RGB)
    np.testing.assert_allclose(
        image.numpy().reshape(-1, 3).mean(0), expected, atol=2 / min(imagenet.STDDEV_RGB)
    )


def test_center_crop_keeps_the_centre():
    # 100x100 image: a 20-pixel white border around black; the central 87.5% (87 px) still
    # contains some border, a 62.5% one would not: check the crop is centred and 87.5% wide.
    image = np.full((100, 100, 3), 255, np.uint8)
    image[20:80, 20:80] = 0
    crop = imagenet.decode_center_crop(tf.constant(_jpeg(image)), 87).numpy()
    # the window starts at (100 - 87 + 1) // 2 = 7: rows/cols 7..13 of the crop are border
    assert crop[:10, 40:47].mean() > 200 and crop[-10:, 40:47].mean() > 200
    assert crop[40:47, :10].mean() > 200 and crop[40:47, -10:].mean() > 200
    assert crop[20:67, 20:67].mean() < 30


def _half_white(n=16):
    image = np.zeros((64, 64, 3), np.uint8)
    image[:, 32:] = 255
    return [image] * n


def test_training_augmentation_is_seeded_and_flips():
    def batch(seed):
        pipeline = imagenet.pipeline(
            _examples(_half_white()),
            batch_size=16,
            training=True,
            image_size=24,
            seed=seed,
            shuffle_buffer=1,
        )
        return next(iter(pipeline))[0].numpy()

    first, again, other = batch(1), batch(1), batch(2)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    left, right = first[:, :, :6].mean(axis=(1, 2, 3)), first[:, :, -6:].mean(axis=(1, 2, 3))
    assert np.any(left > right + 1) and np.any(right > left + 1)  # flipped and not flipped
    eval_batch = next(
        iter(
            imagenet.pipeline(
                _examples(_half_white()), batch_size=16, training=False, image_size=24
            )
        )
    )[0].numpy()
    assert np.all(
        eval_batch[:, :, :6].mean(axis=(1, 2, 3)) < eval_batch[:, :, -6:].mean(axis=(1, 2, 3))
    )  # evaluation never flips


def test_random_crop_windows_respect_the_area_range():
    shape = tf.constant([60, 80, 3])
    areas = []
    for i in range(50):
        begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
            shape,
            tf.constant([0.0, 0.0, 1.0, 1.0], shape=(1, 1, 4)),
            seed=[7, i],
            min_object_covered=0.1,
            aspect_ratio_range=imagenet.ASPECT_RATIO_RANGE,
            area_range=imagenet.AREA_RANGE,
            max_attempts=10,
            use_image_if_no_bounding_boxes=True,
        )
        areas.append(int(size[0]) * int(size[1]) / (60 * 80))
    assert min(areas) >= 0.08 - 0.02 and max(areas) <= 1.0
    assert max(areas) - min(areas) > 0.2  # really random
    image = imagenet.decode_random_crop(
        tf.constant(_jpeg(np.zeros((60, 80, 3), np.uint8))), 16, tf.constant([1, 2], tf.int64)
    )
    assert image.shape == (16, 16, 3)


def test_pipeline_validates_and_repeats():
    examples = _examples(_half_white(5))
    assert len(list(imagenet.pipeline(examples, batch_size=2, training=False, image_size=8))) == 2
    repeated = imagenet.pipeline(examples, batch_size=2, training=False, image_size=8, repeat=True)
    assert len(list(repeated.take(7))) == 7
    with pytest.raises(UsageError, match="batch_size"):
        imagenet.pipeline(examples, batch_size=0, training=True)
    with pytest.raises(UsageError, match="image_size"):
        imagenet.pipeline(examples, batch_size=2, training=True, image_size=4)


# --------------------------------------------------------------------------- tfds + sharding

TRAIN_SIZE, VAL_SIZE, NUM_SHARDS = 24, 8, 4


@pytest.fixture(scope="module")
def fake_imagenet(tmp_path_factory):
    """A tfds dataset shaped like imagenet2012 (JPEG image, label, file name), 4 files/split."""
    metadata_dir = tmp_path_factory.mktemp("tfds-metadata")  # (README, citations: none)
    with tfds.core.registered.skip_registration():

        class KbnnFakeImagenet(tfds.core.GeneratorBasedBuilder):
            VERSION = tfds.core.Version("1.0.0")
            pkg_dir_path = metadata_dir

            def _info(self):
                return self.dataset_info_from_configs(
                    features=tfds.features.FeaturesDict(
                        {
                            "image": tfds.features.Image(encoding_format="jpeg"),
                            "label": tfds.features.ClassLabel(num_classes=1000),
                            "file_name": tfds.features.Text(),
                        }
                    ),
                    supervised_keys=("image", "label"),
                )

            def _split_generators(self, dl_manager):
                return {
                    "train": self._generate_examples(TRAIN_SIZE),
                    "validation": self._generate_examples(VAL_SIZE),
                }

            def _generate_examples(self, count):
                for i in range(count):
                    image = np.full((20 + i % 3, 24, 3), i * 9 % 256, np.uint8)
                    yield i, {"image": image, "label": i, "file_name": f"img{i}.JPEG"}

    builder = KbnnFakeImagenet(data_dir=str(tmp_path_factory.mktemp("tfds")))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(num_shards=NUM_SHARDS)
    )
    return builder


def test_records_are_jpeg_bytes(fake_imagenet):
    example = next(iter(imagenet.records(fake_imagenet, "validation")))
    assert set(example) == {"image", "label"}
    assert example["image"].dtype == tf.string
    assert tf.io.decode_jpeg(example["image"]).shape[-1] == 3


def test_workers_read_disjoint_files_covering_the_split(fake_imagenet):
    seen = []
    for worker in range(2):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=worker, num_replicas_in_sync=2
        )
        labels = [
            int(e["label"]) for e in imagenet.records(fake_imagenet, "train", input_context=context)
        ]
        assert 0 < len(labels) < TRAIN_SIZE
        seen.append(set(labels))
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(range(TRAIN_SIZE))


def test_datasets_fn_on_the_default_strategy(fake_imagenet):
    make = imagenet.datasets_fn(dataset_builder=fake_imagenet, image_size=16, shuffle_buffer=4)
    splits = make(8, tf.distribute.get_strategy())
    assert splits.steps_per_epoch == TRAIN_SIZE // 8 and splits.validation_steps == VAL_SIZE // 8
    images, labels = next(iter(splits.train))
    assert images.shape == (8, 16, 16, 3) and labels.shape == (8,)
    assert images.dtype == tf.float32
    val_images, val_labels = next(iter(splits.validation))
    assert val_images.shape == (8, 16, 16, 3)
    assert set(val_labels.numpy()) <= set(range(VAL_SIZE))


def test_imagenet_constants_match_tfds():
    assert imagenet.NAME == "imagenet2012"
    assert pathlib.Path(imagenet.manual_dir("/data")).as_posix() == "/data/downloads/manual"


def test_cli_train_imagenet_model_without_data(tmp_path, capsys, no_download):
    import kbnn.cli

    code = kbnn.cli.main(
        [
            "train",
            "quicknet",
            "--strategy",
            "default",
            "--data-dir",
            str(tmp_path),
            "--output",
            str(tmp_path / "run"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("kbnn train: error: ImageNet (imagenet2012) is not prepared")
    assert "ILSVRC2012_img_val.tar" in err[-1]
    with pytest.raises(SystemExit) as exit_info:  # global and per-replica batch: choose one
        kbnn.cli.main(
            [
                "train",
                "binarynet_mnist",
                "--strategy",
                "mirrored",
                "--batch-size",
                "8",
                "--per-replica-batch-size",
                "8",
                "--output",
                str(tmp_path / "run"),
            ]
        )
    assert exit_info.value.code == 2
    assert "--per-replica-batch-size: not allowed with argument --batch-size" in (
        capsys.readouterr().err
    )
