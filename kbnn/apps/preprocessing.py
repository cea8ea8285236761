"""The Android demo's digit preprocessing, in numpy: a canvas drawing → an MNIST-style input.

This module is the Python twin of `org.kbnn.demo.core.Preprocessor` (android_demo/core). Both
implement the specification below with integer arithmetic up to the last step and float32 for
the normalisation, so the two produce bit-identical input tensors. The golden vectors under
android_demo/core/src/test/resources/golden/ are written by this module
(`python -m kbnn.apps.preprocessing --write-golden DIR`) and read by the JUnit tests.

MNIST itself was made this way (LeCun et al., "Gradient-based learning applied to document
recognition", 1998; http://yann.lecun.com/exdb/mnist/): each digit was size-normalised to fit
a 20×20 box preserving its aspect ratio, anti-aliased, then centred by its centre of mass in a
28×28 field.

Specification (all divisions of non-negative integers are floor divisions):

1. Ink. For an ARGB pixel (A, R, G, B in 0..255):
   lum = (299·R + 587·G + 114·B + 500) div 1000            (ITU-R BT.601 luma)
   light strokes on a dark canvas:  ink = (lum·A + 127) div 255      (composited over black)
   dark strokes on a light canvas (``invert``):
       ink = 255 − (lum·A + 255·(255 − A) + 127) div 255           (over white, then inverted)
   Pixels with ink ≤ ``ink_threshold`` are set to 0.
2. Bounding box of the pixels with ink > 0; none → an empty drawing: every field value is 0.
3. Resample the box (bw × bh) to fit a ``digit_box`` square, preserving the aspect ratio:
   m = max(bw, bh); ow = max(1, (2·bw·box + m) div 2m); oh likewise (round half up).
   Area averaging with exact integer weights: output column i covers [i·bw, (i+1)·bw) and source
   column j covers [j·ow, (j+1)·ow) (both in units of 1/ow source pixels); the weight is the
   overlap length wx(i, j) (rows alike with wy). With S = Σ wy·wx·ink (int64) and D = bw·bh,
   out = (2·S + D) div 2D, an integer in 0..255 (the exact area average, rounded half up).
4. Centre of mass: M = Σ out, Mx = Σ out·(2i + 1), My = Σ out·(2k + 1), so the centre of mass
   in pixel indices is x̄ = Mx/2M − 1/2. The box is placed at left = round(Fw/2 − x̄) (half up)
   = floor((Fw·M − Mx + 2M) / 2M), clamped to [0, Fw − ow]; top alike with Fh. This puts the
   centre of mass at pixel index Fw/2 (14 for MNIST) as in MNIST, whose digits have their centre
   of mass at index 14.0 ± 0.29 (measured on kbnn's sample). If M = 0 the box is centred
   geometrically: left = (Fw − ow) div 2. Fh × Fw is the model's input size.
5. Normalise in float32: x = (float32(v) / scale − mean) / std, each operation rounded to float32.
"""

from __future__ import annotations

import argparse
import gzip
import os
import struct
import sys
from dataclasses import dataclass

from kbnn._io import write_atomic
from kbnn._validation import check_int, check_positive_number, fail

import numpy as np

GOLDEN_MAGIC = b"KBNNPP01"
GOLDEN_FILE = "preprocessing.bin.gz"
METHOD = "mnist_centre_of_mass"


@dataclass(frozen=True)
class PreprocessingConfig:
    """Parameters of the preprocessing; the app reads them from model.json (`input` section).

    `field` is (height, width) of the model input; `scale`, `mean`, `std` define
    x = (v / scale − mean) / std for the 0..255 field values v.
    """

    field: tuple[int, int] = (28, 28)
    digit_box: int = 20
    ink_threshold: int = 0
    scale: float = 255.0
    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self):
        height, width = self.field
        if min(height, width) < 1:
            raise fail("field", "a positive (height, width)", self.field)
        check_int(self.digit_box, "digit_box", low=1, high=min(height, width))
        check_int(self.ink_threshold, "ink_threshold", low=0, high=254)
        check_positive_number(self.scale, "scale")
        check_positive_number(self.std, "std")
        if not np.isfinite(self.mean):
            raise fail("mean", "a finite number", self.mean)

    @classmethod
    def from_model_json(cls, spec: dict) -> PreprocessingConfig:
        """The configuration a kbnn model.json (`kbnn export-android`) describes."""
        inputs = spec["input"]
        _, height, width, _ = inputs["shape"]
        norm, prep = inputs["normalization"], inputs["preprocessing"]
        if prep.get("method") != METHOD:
            raise ValueError(
                f"unknown preprocessing method {prep.get('method')!r}; expected {METHOD!r}"
            )
        return cls(
            field=(int(height), int(width)),
            digit_box=int(prep["digit_box"]),
            ink_threshold=int(prep["ink_threshold"]),
            scale=float(norm["scale"]),
            mean=float(norm["mean"]),
            std=float(norm["std"]),
        )


def argb_from_rgba(rgba) -> np.ndarray:
    """uint8 (H, W, 4) RGBA → uint32 (H, W) packed ARGB (Android's `Bitmap.getPixels` layout)."""
    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
        raise ValueError(f"rgba must be uint8 (H, W, 4), got {rgba.dtype} {rgba.shape}")
    r, g, b, a = (rgba[..., c].astype(np.uint32) for c in range(4))
    return (a << 24) | (r << 16) | (g << 8) | b


def _as_argb(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2 and image.dtype == np.uint8:  # grayscale: opaque gray pixels
        gray = image.astype(np.uint32)
        return np.uint32(0xFF000000) | (gray << 16) | (gray << 8) | gray
    if image.ndim == 2 and image.dtype in (np.uint32, np.int32, np.int64, np.uint64):
        if image.size and (image.min() < -(2**31) or image.max() > 0xFFFFFFFF):
            raise ValueError("packed ARGB values must fit in 32 bits")
        return (image.astype(np.int64) & 0xFFFFFFFF).astype(np.uint32)
    if image.ndim == 3 and image.shape[2] == 4 and image.dtype == np.uint8:
        return argb_from_rgba(image)
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        alpha = np.full(image.shape[:2] + (1,), 255, np.uint8)
        return argb_from_rgba(np.concatenate([image, alpha], axis=2))
    raise ValueError(
        "image must be packed ARGB (H, W) uint32/int32, grayscale (H, W) uint8, or "
        f"RGB/RGBA (H, W, 3|4) uint8; got {image.dtype} {image.shape}"
    )


def ink(image, *, invert: bool = False, ink_threshold: int = 0) -> np.ndarray:
    """Step 1: ink intensity (int64, 0..255, 0 = background) of a drawing.

    `image`: packed ARGB (H, W) as `Bitmap.getPixels` gives it, grayscale (H, W) uint8, or
    RGB/RGBA uint8. `invert=True` for dark strokes on a light canvas.
    """
    argb = _as_argb(image).astype(np.int64)
    if argb.size == 0:
        raise ValueError("image is empty (zero width or height)")
    a, r = (argb >> 24) & 0xFF, (argb >> 16) & 0xFF
    g, b = (argb >> 8) & 0xFF, argb & 0xFF
    lum = (299 * r + 587 * g + 114 * b + 500) // 1000
    if invert:
        values = 255 - (lum * a + 255 * (255 - a) + 127) // 255
    else:
        values = (lum * a + 127) // 255
    return np.where(values > ink_threshold, values, 0)


def _area_weights(n_out: int, n_in: int) -> np.ndarray:
    """Integer overlaps w[i, j] of output cell i, [i·n_in, (i+1)·n_in), and input cell j,
    [j·n_out, (j+1)·n_out), in units of 1/n_out input pixels; each row sums to n_in."""
    i = np.arange(n_out, dtype=np.int64)[:, None]
    j = np.arange(n_in, dtype=np.int64)[None, :]
    lo = np.maximum(i * n_in, j * n_out)
    hi = np.minimum((i + 1) * n_in, (j + 1) * n_out)
    return np.maximum(hi - lo, 0)


def resample_to_box(crop: np.ndarray, digit_box: int) -> np.ndarray:
    """Step 3: area-average a (bh, bw) ink crop to fit a `digit_box` square (aspect kept)."""
    bh, bw = crop.shape
    m = max(bw, bh)
    ow = max(1, (2 * bw * digit_box + m) // (2 * m))
    oh = max(1, (2 * bh * digit_box + m) // (2 * m))
    # Exact in int64: numpy's integer matmul does not go through floating point.
    total = _area_weights(oh, bh) @ crop.astype(np.int64) @ _area_weights(ow, bw).T
    d = bw * bh
    return (2 * total + d) // (2 * d)


def _offset(mass: int, moment: int, field: int, size: int) -> int:
    if mass == 0:
        return (field - size) // 2
    return min(max((field * mass - moment + 2 * mass) // (2 * mass), 0), field - size)


def centre_digit(
    image, config: PreprocessingConfig = PreprocessingConfig(), *, invert: bool = False
) -> np.ndarray:
    """Steps 1–4: a drawing → uint8 (Fh, Fw) field, MNIST-style (box-fit, centre of mass)."""
    values = ink(image, invert=invert, ink_threshold=config.ink_threshold)
    height, width = config.field
    field = np.zeros((height, width), np.uint8)
    rows = np.flatnonzero(values.any(axis=1))
    if rows.size == 0:
        return field
    cols = np.flatnonzero(values.any(axis=0))
    crop = values[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    box = resample_to_box(crop, config.digit_box)
    oh, ow = box.shape
    mass = int(box.sum())
    moment_x = int((box.sum(axis=0) * (2 * np.arange(ow, dtype=np.int64) + 1)).sum())
    moment_y = int((box.sum(axis=1) * (2 * np.arange(oh, dtype=np.int64) + 1)).sum())
    left = _offset(mass, moment_x, width, ow)
    top = _offset(mass, moment_y, height, oh)
    field[top : top + oh, left : left + ow] = box
    return field


def normalize(field, config: PreprocessingConfig = PreprocessingConfig()) -> np.ndarray:
    """Step 5: uint8 field → float32 (x / scale − mean) / std, every operation in float32."""
    values = np.asarray(field).astype(np.float32)
    return (values / np.float32(config.scale) - np.float32(config.mean)) / np.float32(config.std)


def preprocess(
    image, config: PreprocessingConfig = PreprocessingConfig(), *, invert: bool = False
) -> np.ndarray:
    """A drawing → the model input, float32 (1, Fh, Fw, 1), exactly as the Android app does."""
    field = centre_digit(image, config, invert=invert)
    return normalize(field, config)[None, :, :, None]


# --- golden vectors shared with the JVM tests ----------------------------------------------------


@dataclass(frozen=True)
class GoldenCase:
    """One drawing with its parameters; the expected outputs are computed, not stored here."""

    name: str
    argb: np.ndarray  # uint32 (H, W)
    config: PreprocessingConfig = PreprocessingConfig()
    invert: bool = False


def _stroke_canvas(
    height: int, width: int, strokes, stroke_width: float, colour: int, background: int = 0x00000000
) -> np.ndarray:
    """Anti-aliased round-capped polylines, like a finger drawing on an Android Canvas.

    Coverage of a pixel = clip(w/2 + 1/2 − distance to the polyline, 0, 1), used as alpha over
    the background. Only used to make test drawings; the result is stored in the golden file.
    """
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    dist = np.full((height, width), np.inf)
    for stroke in strokes:
        points = np.asarray(stroke, np.float64)
        if len(points) == 1:
            points = np.vstack([points, points])
        for (x0, y0), (x1, y1) in zip(points[:-1], points[1:], strict=True):
            dx, dy = x1 - x0, y1 - y0
            length2 = dx * dx + dy * dy
            t = (
                np.zeros_like(xs)
                if length2 == 0
                else np.clip(((xs - x0) * dx + (ys - y0) * dy) / length2, 0.0, 1.0)
            )
            dist = np.minimum(dist, np.hypot(xs - (x0 + t * dx), ys - (y0 + t * dy)))
    coverage = np.clip(stroke_width / 2 + 0.5 - dist, 0.0, 1.0)
    alpha = np.rint(coverage * 255).astype(np.int64)
    if background >> 24 == 0:  # transparent canvas: the stroke is the only paint
        argb = np.where(alpha > 0, (alpha << 24) | (colour & 0xFFFFFF), background)
        return argb.astype(np.uint32)
    argb = np.full((height, width), 0xFF000000, np.int64)  # opaque canvas: blend per channel
    for shift in (16, 8, 0):
        c, b = (colour >> shift) & 0xFF, (background >> shift) & 0xFF
        argb |= ((c * alpha + b * (255 - alpha) + 127) // 255) << shift
    return argb.astype(np.uint32)


def _upscaled_digit(
    digit: np.ndarray, canvas: tuple[int, int], factor: int, offset: tuple[int, int], invert: bool
) -> np.ndarray:
    """A real MNIST digit, enlarged (nearest) and placed off-centre on an opaque canvas."""
    big = np.kron(digit.astype(np.uint8), np.ones((factor, factor), np.uint8))
    gray = np.zeros(canvas, np.uint8)
    top, left = offset
    h = min(big.shape[0], canvas[0] - top)
    w = min(big.shape[1], canvas[1] - left)
    gray[top : top + h, left : left + w] = big[:h, :w]
    if invert:
        gray = 255 - gray
    return _as_argb(gray)


def golden_cases() -> list[GoldenCase]:
    """The drawings of the cross-language golden test: strokes, real digits, edge cases."""
    return [*_stroke_cases(), *_edge_cases(), *_mnist_cases(), *_random_stroke_cases()]


def _stroke_cases() -> list[GoldenCase]:
    cases: list[GoldenCase] = []
    white = 0xFFFFFF
    seven = [[(60, 50), (215, 52), (120, 235)]]
    cases.append(
        GoldenCase("seven_white_on_transparent", _stroke_canvas(280, 280, seven, 22, white))
    )
    cases.append(
        GoldenCase(
            "seven_black_on_white_inverted",
            _stroke_canvas(280, 280, seven, 22, 0x000000, 0xFFFFFFFF),
            invert=True,
        )
    )
    four = [[(90, 40), (60, 170), (200, 170)], [(170, 90), (165, 250)]]
    cases.append(
        GoldenCase(
            "four_two_strokes_offset",
            _stroke_canvas(280, 280, [[(x + 40, y + 15) for x, y in s] for s in four], 22, white),
        )
    )
    cases.append(
        GoldenCase(
            "one_tall_narrow", _stroke_canvas(280, 280, [[(150, 30), (140, 250)]], 20, white)
        )
    )
    cases.append(
        GoldenCase("dash_wide_flat", _stroke_canvas(280, 280, [[(40, 150), (240, 150)]], 18, white))
    )
    cases.append(GoldenCase("dot_tiny", _stroke_canvas(280, 280, [[(100, 100)]], 6, white)))
    zero = [[(140 + 70 * np.cos(t), 140 + 100 * np.sin(t)) for t in np.linspace(0, 2 * np.pi, 40)]]
    ring = _stroke_canvas(280, 280, zero, 20, 0xE04010).astype(np.int64)
    half_alpha = ((ring >> 24) // 2 << 24) | (ring & 0xFFFFFF)  # orange, semi-transparent
    cases.append(GoldenCase("zero_orange_half_alpha", half_alpha.astype(np.uint32)))
    cases.append(
        GoldenCase(
            "touching_canvas_edges",
            _stroke_canvas(200, 160, [[(-10, 20), (150, 0), (80, 230)]], 24, white),
        )
    )
    cases.append(
        GoldenCase(
            "wide_canvas_1080x720",
            _stroke_canvas(720, 1080, [[(700, 100), (620, 600), (900, 620)]], 60, white),
        )
    )
    return cases


def _edge_cases() -> list[GoldenCase]:
    cases: list[GoldenCase] = []
    white = 0xFFFFFF
    cases.append(GoldenCase("empty_canvas", np.zeros((280, 280), np.uint32)))
    single = np.zeros((20, 30), np.uint32)
    single[7, 5] = 0xFFFFFFFF
    cases.append(GoldenCase("single_pixel", single))
    line = np.zeros((40, 120), np.uint32)
    line[13, 10:110] = 0xFFFFFFFF
    cases.append(GoldenCase("line_one_pixel_high", line))
    rng = np.random.default_rng(20240611)
    noisy = _stroke_canvas(
        140, 140, [[(30, 30), (110, 110)], [(110, 30), (30, 110)]], 10, white, 0xFF000000
    )
    noise = rng.integers(0, 40, size=noisy.shape, dtype=np.uint32)
    noisy = noisy | (noise << 16) | (noise << 8) | noise
    cases.append(
        GoldenCase("cross_noise_threshold_48", noisy, PreprocessingConfig(ink_threshold=48))
    )
    cases.append(
        GoldenCase(
            "cross_noise_field_32x24_box_16_mean_std",
            noisy,
            PreprocessingConfig(field=(32, 24), digit_box=16, scale=255.0, mean=0.1307, std=0.3081),
        )
    )
    return cases


def _mnist_cases() -> list[GoldenCase]:
    from kbnn.data import mnist_sample

    cases: list[GoldenCase] = []
    images, labels = mnist_sample()
    for k, (index, factor, offset) in enumerate(
        [(0, 10, (5, 30)), (1, 8, (60, 10)), (2, 9, (0, 0))]
    ):
        digit = images[index]
        cases.append(
            GoldenCase(
                f"mnist_test_{index}_label_{int(labels[index])}_x{factor}",
                _upscaled_digit(digit, (300, 260), factor, offset, invert=False),
            )
        )
        if k == 0:
            cases.append(
                GoldenCase(
                    f"mnist_test_{index}_label_{int(labels[index])}_x{factor}_inverted",
                    _upscaled_digit(digit, (300, 260), factor, offset, invert=True),
                    invert=True,
                )
            )
    return cases


def _random_stroke_cases() -> list[GoldenCase]:
    cases: list[GoldenCase] = []
    white = 0xFFFFFF
    for seed in range(3):
        rng = np.random.default_rng(seed)
        strokes = [
            rng.uniform(20, 260, size=(rng.integers(2, 7), 2)) for _ in range(rng.integers(1, 4))
        ]
        cases.append(
            GoldenCase(
                f"random_strokes_seed_{seed}",
                _stroke_canvas(280, 280, strokes, float(rng.uniform(8, 30)), white),
            )
        )
    return cases


def write_golden(directory: str, cases: list[GoldenCase] | None = None) -> str:
    """Write the golden file (big-endian, gzip) the JUnit test `PreprocessorGoldenTest` reads.

    Layout: magic "KBNNPP01", int32 count, then per case: int32 name length + UTF-8 name,
    int32 width, height, invert (0/1), field height, field width, digit_box, ink_threshold,
    float32 scale, mean, std, int32[H·W] ARGB pixels, uint8[Fh·Fw] expected field,
    float32[Fh·Fw] expected input tensor.
    """
    cases = golden_cases() if cases is None else cases
    chunks = [GOLDEN_MAGIC, struct.pack(">i", len(cases))]
    for case in cases:
        cfg = case.config
        name = case.name.encode("utf-8")
        height, width = case.argb.shape
        chunks.append(struct.pack(">i", len(name)) + name)
        chunks.append(
            struct.pack(
                ">7i",
                width,
                height,
                int(case.invert),
                cfg.field[0],
                cfg.field[1],
                cfg.digit_box,
                cfg.ink_threshold,
            )
        )
        chunks.append(struct.pack(">3f", cfg.scale, cfg.mean, cfg.std))
        chunks.append(case.argb.astype(">u4").tobytes())
        field = centre_digit(case.argb, cfg, invert=case.invert)
        chunks.append(field.astype(np.uint8).tobytes())
        chunks.append(normalize(field, cfg).astype(">f4").tobytes())
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, GOLDEN_FILE)
    # mtime=0 keeps the gzip bytes reproducible, so regenerating shows no spurious diff.
    write_atomic(path, gzip.compress(b"".join(chunks), compresslevel=9, mtime=0))
    return path


def read_golden(path: str) -> list[dict]:
    """Parse a golden file back: a list of dicts (name, argb, config, invert, field, tensor)."""
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    if data[:8] != GOLDEN_MAGIC:
        raise ValueError(f"{path}: not a kbnn preprocessing golden file (magic {data[:8]!r})")
    pos = 8
    (count,) = struct.unpack_from(">i", data, pos)
    pos += 4
    cases = []
    for _ in range(count):
        (name_len,) = struct.unpack_from(">i", data, pos)
        pos += 4
        name = data[pos : pos + name_len].decode("utf-8")
        pos += name_len
        width, height, invert, fh, fw, box, threshold = struct.unpack_from(">7i", data, pos)
        pos += 28
        scale, mean, std = struct.unpack_from(">3f", data, pos)
        pos += 12
        argb = (
            np.frombuffer(data, ">u4", width * height, pos).reshape(height, width).astype(np.uint32)
        )
        pos += 4 * width * height
        field = np.frombuffer(data, np.uint8, fh * fw, pos).reshape(fh, fw)
        pos += fh * fw
        tensor = np.frombuffer(data, ">f4", fh * fw, pos).reshape(fh, fw).astype(np.float32)
        pos += 4 * fh * fw
        config = PreprocessingConfig(
            field=(fh, fw),
            digit_box=box,
            ink_threshold=threshold,
            scale=float(scale),
            mean=float(mean),
            std=float(std),
        )
        cases.append(
            dict(
                name=name, argb=argb, config=config, invert=bool(invert), field=field, tensor=tensor
            )
        )
    if pos != len(data):
        raise ValueError(f"{path}: {len(data) - pos} trailing bytes")
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kbnn.apps.preprocessing",
        description="Write the golden preprocessing vectors shared with the Android demo's JVM tests.",
    )
    parser.add_argument(
        "--write-golden",
        metavar="DIR",
        required=True,
        help="directory, e.g. android_demo/core/src/test/resources/golden",
    )
    args = parser.parse_args(argv)
    path = write_golden(args.write_golden)
    print(f"wrote {path} ({os.path.getsize(path):,} bytes, {len(read_golden(path))} cases)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
