"""Accuracy of an exported flatbuffer on MNIST digits re-drawn the way a user draws them.

Each of the first N digits of kbnn's MNIST sample is enlarged with bilinear filtering and pasted
at a random place on a black canvas, then goes through the app's preprocessing
(kbnn.apps.preprocessing, bit-identical to the app's). Prints top-1 in LCE's interpreter for the
stored digits, the stored digits through the preprocessing, and the re-drawn ones.

    python android_demo/scripts/redrawn_mnist_accuracy.py \
        android_demo/core/src/test/resources/assets_example/tiny_bnn_mnist.tflite --samples 500
"""

import argparse

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn.apps import preprocessing as pp
from kbnn.data import mnist_sample, normalize_mnist

import numpy as np
from larq_compute_engine.tflite.python.interpreter import Interpreter
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("flatbuffer")
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--scales", default="6,10", help="enlargement factors (default: 6,10)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    images, labels = mnist_sample()
    images, labels = images[:args.samples], labels[:args.samples]
    with open(args.flatbuffer, "rb") as handle:
        interpreter = Interpreter(handle.read(), num_threads=1)

    def top1(x):
        return float(np.mean(np.argmax(interpreter.predict(x.astype(np.float32)), -1) == labels))

    rng = np.random.default_rng(args.seed)
    print(f"stored MNIST (normalize_mnist): {top1(normalize_mnist(images)):.3f}")
    print(f"stored MNIST, app preprocessing: {top1(np.concatenate([pp.preprocess(i) for i in images])):.3f}")
    for scale in (int(s) for s in args.scales.split(",")):
        side = 28 * scale
        inputs = []
        for image in images:
            big = np.asarray(Image.fromarray(image).resize((side, side), Image.BILINEAR))
            canvas = np.zeros((280 + side, 280 + side), np.uint8)
            top, left = rng.integers(0, 280, size=2)
            canvas[top:top + side, left:left + side] = big
            inputs.append(pp.preprocess(canvas))
        print(f"re-drawn x{scale} (bilinear, random place on a {280 + side} px canvas): "
              f"{top1(np.concatenate(inputs)):.3f}")


if __name__ == "__main__":
    main()
