"""The spine: larq model → train on real MNIST → LCE flatbuffer → LCE interpreter agrees with Keras.

Built with plain larq layers and LCE's own converter on purpose: this is the path every kbnn
capability extends, checked without any kbnn code in between.
"""

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn.data import mnist, mnist_arrays

import larq as lq
import larq_compute_engine as lce
import numpy as np
import pytest
import tensorflow as tf
from larq_compute_engine.tflite.python.interpreter import Interpreter

BINARY = dict(
    input_quantizer="ste_sign",
    kernel_quantizer="ste_sign",
    kernel_constraint="weight_clip",
    use_bias=False,
)


def seed_binarynet() -> tf.keras.Model:
    """The seed's MNIST BinaryNet (TensorLayer example) with larq layers."""
    return tf.keras.Sequential(
        [
            tf.keras.Input((28, 28, 1)),
            lq.layers.QuantConv2D(
                32,
                5,
                padding="same",
                kernel_quantizer="ste_sign",
                kernel_constraint="weight_clip",
                use_bias=False,
            ),
            tf.keras.layers.MaxPool2D(2),
            tf.keras.layers.BatchNormalization(momentum=0.9, scale=False),
            tf.keras.layers.Activation("hard_tanh"),
            lq.layers.QuantConv2D(64, 5, padding="same", pad_values=1.0, **BINARY),
            tf.keras.layers.MaxPool2D(2),
            tf.keras.layers.BatchNormalization(momentum=0.9, scale=False),
            tf.keras.layers.Activation("hard_tanh"),
            tf.keras.layers.Flatten(),
            lq.layers.QuantDense(256, **BINARY),
            tf.keras.layers.BatchNormalization(momentum=0.9, scale=False),
            tf.keras.layers.Activation("hard_tanh"),
            lq.layers.QuantDense(10, **BINARY),
            tf.keras.layers.BatchNormalization(momentum=0.9, scale=False),
            tf.keras.layers.Activation("softmax"),
        ]
    )


@pytest.mark.slow
def test_train_convert_run_agrees_with_keras(mnist_available):
    model = seed_binarynet()
    model.compile(
        tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    train = mnist("train", batch_size=100, shuffle=True, seed=0, repeat=True)
    model.fit(train, steps_per_epoch=300, epochs=1, verbose=0)

    x, y = mnist_arrays("test")
    x, y = x[:2000], y[:2000]
    keras_probs = model.predict(x, batch_size=500, verbose=0)
    assert (keras_probs.argmax(1) == y).mean() > 0.9  # it learned

    flatbuffer = lce.convert_keras_model(model)
    assert b"LceBconv2d" in flatbuffer  # the binary conv runs on LCE's binary kernel

    interpreter = Interpreter(flatbuffer, num_threads=2, use_indirect_bgemm=True)
    lce_probs = np.concatenate([interpreter.predict(x[i : i + 500]) for i in range(0, len(x), 500)])
    agreement = (lce_probs.argmax(1) == keras_probs.argmax(1)).mean()
    assert agreement >= 0.99, agreement
    assert np.abs(lce_probs - keras_probs).max() < 1e-3
