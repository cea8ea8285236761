"""DoReFa-Net CNN on MNIST (Zhou et al. 2016), bit_w=1, bit_a=3: the seed recipe in kbnn.

    python examples/dorefanet_mnist.py --epochs 10
    python examples/dorefanet_mnist.py --epochs 1 --steps 50      # smoke run
    python examples/dorefanet_mnist.py --bit-g 6                   # also 6-bit gradients

Weights E|W|·sign(W) (1 bit), activations round(7·clip(x, 0, 1))/7 (3 bits), quantized by each
DorefaConv2D / DorefaDense on its input; the first layer sees the float image and the output
layer is float, as in the seed. `--bit-g k` inserts a GradientQuantizer after each hidden
layer (DoReFa's k-bit gradients, stochastic rounding).
"""

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import layers as kl

import tensorflow as tf
from _mnist_recipe import run

BIT_W, BIT_A = 1, 3


def build_model(args=None) -> tf.keras.Model:
    bit_g = getattr(args, "bit_g", None)

    def bn():
        layers = [tf.keras.layers.BatchNormalization(momentum=0.9)]
        if bit_g:
            layers.append(kl.GradientQuantizer(bit_g, seed=0))
        return layers

    return tf.keras.Sequential(
        [
            tf.keras.Input((28, 28, 1)),
            kl.DorefaConv2D(32, 5, padding="same", bit_w=BIT_W, bit_a=None),  # float image
            tf.keras.layers.MaxPool2D(2),
            *bn(),
            kl.DorefaConv2D(64, 5, padding="same", bit_w=BIT_W, bit_a=BIT_A),
            tf.keras.layers.MaxPool2D(2),
            *bn(),
            tf.keras.layers.Flatten(),
            kl.DorefaDense(256, bit_w=BIT_W, bit_a=BIT_A),
            *bn(),
            tf.keras.layers.Dense(10, use_bias=False),  # float output layer
            tf.keras.layers.BatchNormalization(momentum=0.9),
            tf.keras.layers.Activation("softmax"),
        ],
        name="dorefanet_mnist",
    )


def _add_arguments(parser):
    parser.add_argument(
        "--bit-g",
        type=int,
        default=None,
        help="quantize gradients to this many bits (GradientQuantizer)",
    )


if __name__ == "__main__":
    run(build_model, __doc__.splitlines()[0], learning_rate=1e-3, add_arguments=_add_arguments)
