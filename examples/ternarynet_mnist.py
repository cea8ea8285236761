"""Ternary-weight CNN on MNIST (TWN, Li & Liu 2016), the seed TensorLayer recipe in kbnn.

    python examples/ternarynet_mnist.py --epochs 10
    python examples/ternarynet_mnist.py --epochs 1 --steps 50     # smoke run

Every kernel is α·t with t ∈ {−1, 0, 1}, Δ = 0.7·E|W| per output channel (kernel quantizer
"twn"); activations stay float (BatchNormalization + ReLU), as in the seed.
"""

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import layers as kl

import tensorflow as tf
from _mnist_recipe import run


def build_model(args=None) -> tf.keras.Model:
    def bn_relu():
        return [tf.keras.layers.BatchNormalization(momentum=0.9), tf.keras.layers.ReLU()]

    return tf.keras.Sequential(
        [
            tf.keras.Input((28, 28, 1)),
            kl.TernaryConv2D(32, 5, padding="same"),
            tf.keras.layers.MaxPool2D(2),
            *bn_relu(),
            kl.TernaryConv2D(64, 5, padding="same"),
            tf.keras.layers.MaxPool2D(2),
            *bn_relu(),
            tf.keras.layers.Flatten(),
            kl.TernaryDense(256),
            *bn_relu(),
            kl.TernaryDense(10),
            tf.keras.layers.BatchNormalization(momentum=0.9),
            tf.keras.layers.Activation("softmax"),
        ],
        name="ternarynet_mnist",
    )


if __name__ == "__main__":
    run(build_model, __doc__.splitlines()[0], learning_rate=1e-3)
