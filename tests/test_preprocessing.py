"""kbnn.apps.preprocessing: the Android demo's digit preprocessing, and its golden vectors.

The same golden file is read by the JVM test PreprocessorGoldenTest (android_demo/core), so the
two tests together show that Python and the app produce bit-identical model inputs.
"""

import pathlib

from kbnn.apps import preprocessing as pp
from kbnn.data import mnist_sample

import numpy as np
import pytest

GOLDEN_DIR = (
    pathlib.Path(__file__).resolve().parents[1] / "android_demo/core/src/test/resources/golden"
)
GOLDEN = GOLDEN_DIR / pp.GOLDEN_FILE


@pytest.fixture(scope="module")
def committed():
    if not GOLDEN.is_file():
        pytest.fail(
            f"{GOLDEN} is missing; run `python -m kbnn.apps.android --write-golden {GOLDEN_DIR}`"
        )
    return pp.read_golden(str(GOLDEN))


def test_committed_golden_vectors_match_python(committed):
    assert len(committed) >= 15
    for case in committed:
        field = pp.centre_digit(case["argb"], case["config"], invert=case["invert"])
        np.testing.assert_array_equal(field, case["field"], err_msg=case["name"])
        tensor = pp.normalize(field, case["config"])
        assert tensor.dtype == np.float32
        # bit-for-bit, not approximately
        np.testing.assert_array_equal(
            tensor.view(np.uint32), case["tensor"].view(np.uint32), err_msg=case["name"]
        )


def test_golden_drawings_are_reproducible(committed):
    cases = pp.golden_cases()
    assert [c.name for c in cases] == [c["name"] for c in committed]
    for case, stored in zip(cases, committed, strict=True):
        np.testing.assert_array_equal(case.argb, stored["argb"], err_msg=case.name)
        got, want = case.config, stored["config"]  # the file stores scale/mean/std as float32
        assert (got.field, got.digit_box, got.ink_threshold) == (
            want.field,
            want.digit_box,
            want.ink_threshold,
        )
        for name in ("scale", "mean", "std"):
            assert np.float32(getattr(got, name)) == np.float32(getattr(want, name))
        assert case.invert == stored["invert"]


def test_write_and_read_golden_round_trip(tmp_path, committed):
    cases = pp.golden_cases()[:3]
    path = pp.write_golden(str(tmp_path), cases)
    back = pp.read_golden(path)
    assert [c["name"] for c in back] == [c.name for c in cases]
    for stored, ref in zip(back, committed[:3], strict=True):
        np.testing.assert_array_equal(stored["field"], ref["field"])
        np.testing.assert_array_equal(stored["tensor"], ref["tensor"])
    assert not list(tmp_path.glob("*.tmp"))


def test_real_mnist_digits_are_a_fixed_point():
    """MNIST was made this way, so preprocessing a real MNIST digit must give it back."""
    images, _ = mnist_sample()
    unchanged = [np.array_equal(pp.centre_digit(image), image) for image in images]
    assert np.mean(unchanged) >= 0.99, np.mean(unchanged)


def test_centre_of_mass_lands_on_pixel_14_like_mnist():
    images, _ = mnist_sample()
    rows = np.arange(28)
    for image in images[:50]:
        field = pp.centre_digit(np.kron(image, np.ones((7, 5), np.uint8)))
        mass = field.sum()
        assert abs((field.sum(axis=1) * rows).sum() / mass - 14) <= 0.5
        assert abs((field.sum(axis=0) * rows).sum() / mass - 14) <= 0.5


def test_resampling_is_the_exact_area_average():
    """Reference: enlarge each source pixel to (oh × ow) cells, average (bh × bw) blocks."""
    rng = np.random.default_rng(3)
    for _ in range(100):
        bh, bw = rng.integers(1, 90, size=2)
        crop = rng.integers(0, 256, size=(bh, bw)) * (rng.random((bh, bw)) < 0.6)
        out = pp.resample_to_box(crop, 20)
        oh, ow = out.shape
        assert max(oh, ow) == 20
        assert abs(ow / oh - bw / bh) <= max(1 / oh, 1 / ow) * bw / bh + 1 / min(oh, ow)
        fine = np.repeat(np.repeat(crop.astype(np.float64), oh, axis=0), ow, axis=1)
        exact = fine.reshape(oh, bh, ow, bw).mean(axis=(1, 3))
        np.testing.assert_array_less(np.abs(out - exact), 0.5 + 1e-9)


def test_translation_upscaling_and_inversion_do_not_change_the_input():
    images, _ = mnist_sample()
    digit = images[7]
    reference = pp.preprocess(digit)
    canvas = np.zeros((400, 300), np.uint8)
    big = np.kron(digit, np.ones((9, 9), np.uint8))
    canvas[113 : 113 + 252, 17 : 17 + 252] = big
    np.testing.assert_array_equal(pp.preprocess(canvas), reference)
    np.testing.assert_array_equal(pp.preprocess(255 - canvas, invert=True), reference)
    rgba = np.zeros(canvas.shape + (4,), np.uint8)
    rgba[..., :3] = 255
    rgba[..., 3] = canvas  # white ink whose alpha is the stroke coverage
    np.testing.assert_array_equal(pp.preprocess(rgba), reference)


def test_ink_formula():
    argb = np.array([[0xFFFFFFFF, 0x80FFFFFF, 0xFFFF0000, 0x00FFFFFF, 0xFF000000]], np.uint32)
    np.testing.assert_array_equal(pp.ink(argb), [[255, 128, 76, 0, 0]])
    np.testing.assert_array_equal(pp.ink(argb, invert=True), [[0, 0, 179, 0, 255]])
    np.testing.assert_array_equal(pp.ink(argb, ink_threshold=127), [[255, 128, 0, 0, 0]])
    # signed int32 (Java's int) and unsigned give the same pixels
    np.testing.assert_array_equal(pp.ink(argb.view(np.int32)), pp.ink(argb))


def test_empty_drawing_gives_the_blank_input():
    config = pp.PreprocessingConfig(mean=0.5, std=0.25)
    x = pp.preprocess(np.zeros((50, 40), np.uint8), config)
    assert x.shape == (1, 28, 28, 1) and x.dtype == np.float32
    np.testing.assert_array_equal(x, np.float32(-2.0))


def test_normalisation_matches_kbnn_data():
    images, _ = mnist_sample()
    from kbnn.data import normalize_mnist

    np.testing.assert_array_equal(
        pp.normalize(images[:20])[..., None], normalize_mnist(images[:20])
    )


def test_config_from_model_json():
    spec = {
        "input": {
            "shape": [1, 32, 24, 1],
            "normalization": {"scale": 255.0, "mean": 0.1307, "std": 0.3081},
            "preprocessing": {"method": pp.METHOD, "digit_box": 16, "ink_threshold": 3},
        }
    }
    config = pp.PreprocessingConfig.from_model_json(spec)
    assert config == pp.PreprocessingConfig(
        field=(32, 24), digit_box=16, ink_threshold=3, mean=0.1307, std=0.3081
    )
    spec["input"]["preprocessing"]["method"] = "resize"
    with pytest.raises(ValueError, match="unknown preprocessing method 'resize'"):
        pp.PreprocessingConfig.from_model_json(spec)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"digit_box": 29}, "digit_box: expected an integer in 1..28, got 29"),
        ({"ink_threshold": 255}, "ink_threshold: expected an integer in 0..254, got 255"),
        ({"std": 0.0}, "std: expected a finite number > 0, got 0.0"),
        ({"scale": float("inf")}, "scale: expected a finite number > 0, got inf"),
        ({"mean": float("nan")}, "mean: expected a finite number, got nan"),
        ({"field": (0, 28)}, r"field: expected a positive \(height, width\), got \(0, 28\)"),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pp.PreprocessingConfig(**kwargs)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((4, 4), np.float32),
        np.zeros((4, 4, 2), np.uint8),
        np.zeros((0, 5), np.uint8),
    ],
)
def test_ink_rejects_unknown_image_layouts(image):
    with pytest.raises(ValueError, match="image"):
        pp.ink(image)


def test_write_golden_command(tmp_path, capsys):
    assert pp.main(["--write-golden", str(tmp_path)]) == 0
    assert "cases)" in capsys.readouterr().out
    fresh = pp.read_golden(str(tmp_path / pp.GOLDEN_FILE))
    stored = pp.read_golden(str(GOLDEN))
    for a, b in zip(fresh, stored, strict=True):
        assert a["name"] == b["name"]
        np.testing.assert_array_equal(a["argb"], b["argb"])
        np.testing.assert_array_equal(a["tensor"].view(np.uint32), b["tensor"].view(np.uint32))
