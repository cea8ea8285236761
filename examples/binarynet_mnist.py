"""BinaryNet CNN on MNIST (Courbariaux, Hubara et al. 2016), the seed TensorLayer recipe in kbnn.

    python examples/binarynet_mnist.py --epochs 10
    python examples/binarynet_mnist.py --epochs 1 --steps 50     # smoke run

Binary (±1) weights in every layer; binary activations everywhere but the first layer, which
sees the float image. Each BinaryConv2D / BinaryDense binarizes its own input with `ste_sign`,
so the seed's explicit `Sign` layers are the input quantizers here (kl.Sign() is available
for a stand-alone sign). Latent weights are clipped to [−1, 1] by the layers' defaults.
"""

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import layers as kl

import tensorflow as tf
from _mnist_recipe import run


def build_model(args=None) -> tf.keras.Model:
    def bn_htanh():
        return [
            tf.keras.layers.BatchNormalization(momentum=0.9, scale=False),
            tf.keras.layers.Activation("hard_tanh"),
        ]

    return tf.keras.Sequential(
        [
            tf.keras.Input((28, 28, 1)),
            kl.BinaryConv2D(32, 5, padding="same", input_quantizer=None),  # float input
            tf.keras.layers.MaxPool2D(2),
            *bn_htanh(),
            kl.BinaryConv2D(64, 5, padding="same"),  # sign(x) ⊛ sign(W), pad +1
            tf.keras.layers.MaxPool2D(2),
            *bn_htanh(),
            tf.keras.layers.Flatten(),
            kl.BinaryDense(256),
            *bn_htanh(),
            kl.BinaryDense(10),
            tf.keras.layers.BatchNormalization(momentum=0.9, scale=False),
            tf.keras.layers.Activation("softmax"),
        ],
        name="binarynet_mnist",
    )


if __name__ == "__main__":
    run(build_model, __doc__.splitlines()[0], learning_rate=1e-2)
