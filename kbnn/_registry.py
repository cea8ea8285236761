"""One way to register a kbnn Keras object, so saved models load without `custom_objects`.

Every custom layer, quantizer, optimizer, initializer, activation and schedule is registered
with Keras as `kbnn>Name` (Keras' own `register_keras_serializable(package="kbnn")`, the name
`.keras` and `.h5` files record). `bare_name=True` also registers the plain `Name`: larq's
legacy (`.h5`) deserialization and its `CaseOptimizer` look objects up by class name only,
the way larq registers its own (`larq.utils.register_keras_custom_object`).
"""

from __future__ import annotations

import tensorflow as tf

PACKAGE = "kbnn"


def register(obj=None, *, bare_name: bool = False):
    """Register `obj` (class or function) as `kbnn>Name`, and as `Name` if `bare_name`.

    Usable as `@register`, `@register(bare_name=True)` or `register(obj, bare_name=True)`;
    returns `obj`.
    """

    def decorator(target):
        target = tf.keras.utils.register_keras_serializable(package=PACKAGE)(target)
        if bare_name:
            tf.keras.utils.get_custom_objects()[target.__name__] = target
        return target

    return decorator if obj is None else decorator(obj)


def registered_name(obj) -> str:
    """The name Keras records for a kbnn object: `kbnn>Name`."""
    return tf.keras.utils.get_registered_name(obj)
