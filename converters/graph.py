"""Rebuild a Keras graph layer by layer, replacing chosen layers by small subgraphs.

`tf.keras.models.clone_model` can swap one layer for another but not for a subgraph, and the
rewrites in `kbnn.converters.passes` need exactly that (one ternary convolution becomes two
binary ones and an Add). `rebuild` walks the functional graph in the same order Keras'
`Functional._run_internal_graph` does, clones every layer it is not told to replace (config
and weights copied, the original model left untouched) and inlines nested functional models.

Layers a pass creates are named `<original>_kb_<role>`; `origin(name)` recovers the original
layer's name, which is how the conversion report attributes flatbuffer ops to user layers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from kbnn.converters.errors import ConversionError
from kbnn.kernels import latent_variable

import tensorflow as tf

#: Separator between an original layer name and the role of a layer derived from it.
DERIVED = "_kb_"

#: replace(layer, args, kwargs) -> output tensors, or None to keep (a clone of) the layer.
Replacement = Callable[[tf.keras.layers.Layer, tuple, dict], Any]


def origin(name: str) -> str:
    """Name of the user's layer a (possibly derived) layer name comes from."""
    return name.split(DERIVED, 1)[0]


def derived_name(name: str, role: str) -> str:
    """Name for a layer that a pass derives from layer `name` (`conv1` -> `conv1_kb_w0`)."""
    return f"{name}_{role}" if DERIVED in name else f"{name}{DERIVED}{role}"


def check_graph_network(model) -> None:
    """Raise ConversionError unless `model` is a built functional or Sequential Keras model."""
    if not isinstance(model, tf.keras.Model):
        raise ConversionError(
            f"Expected a tf.keras.Model (Keras 2, `import kbnn` first), got {type(model).__name__}."
        )
    if not getattr(model, "_is_graph_network", False):
        if isinstance(model, tf.keras.Sequential):
            raise ConversionError(
                f"Sequential model '{model.name}' has no input shape yet: give its first layer "
                "an `input_shape` or build it with `model.build(input_shape)`."
            )
        raise ConversionError(
            f"Model '{model.name}' ({type(model).__name__}) is a subclassed model; its graph "
            "cannot be rewritten. Build it with the functional or Sequential API."
        )


def clone_layer(layer: tf.keras.layers.Layer, name: str | None = None) -> tf.keras.layers.Layer:
    """A new, unbuilt layer with the same config (weights are copied after the first call)."""
    config = layer.get_config()
    if name is not None:
        config["name"] = name
    return layer.__class__.from_config(config)


@contextlib.contextmanager
def zero_initialized(layer: tf.keras.layers.Layer):
    """Within the block, `layer` builds its weights with zeros instead of its initializers
    (restored on exit, so its config is unchanged). For a layer whose weights are set right
    after building: a random 37.7M-weight kernel takes about a second to draw."""
    saved = {
        name: value
        for name, value in vars(layer).items()
        if name.endswith("_initializer") and isinstance(value, tf.keras.initializers.Initializer)
    }
    for name in saved:
        setattr(layer, name, tf.keras.initializers.Zeros())
    try:
        yield layer
    finally:
        for name, value in saved.items():
            setattr(layer, name, value)


def copy_weights(source: tf.keras.layers.Layer, target: tf.keras.layers.Layer) -> None:
    """`target.set_weights(source.get_weights())` without the round trip through numpy: each
    latent variable is assigned from the other (one copy instead of three; on XNORNet's 62M
    weights that is ~0.3 s per rebuilt graph)."""
    if len(source.weights) != len(target.weights):
        raise ValueError(
            f"layer {target.name!r} has {len(target.weights)} weights, {source.name!r} has "
            f"{len(source.weights)}."
        )
    for from_variable, to_variable in zip(source.weights, target.weights, strict=True):
        latent_variable(to_variable).assign(latent_variable(from_variable))


def input_layer_of(tensor) -> tf.keras.layers.Layer:
    return tensor._keras_history.layer


def all_layers(model) -> list[tf.keras.layers.Layer]:
    """Every non-input layer of `model`, nested models flattened, in graph order."""
    found = []
    for layer in model.layers:
        if isinstance(layer, tf.keras.Model):
            found.extend(all_layers(layer))
        elif not isinstance(layer, tf.keras.layers.InputLayer):
            found.append(layer)
    return found


def call_counts(model) -> dict[str, int]:
    """layer name -> how many times `model`'s graph calls it (nested models flattened)."""
    counts: dict[str, int] = {}
    for nodes in model._nodes_by_depth.values():
        for node in nodes:
            if node.is_input:
                continue
            if isinstance(node.layer, tf.keras.Model):
                for name, count in call_counts(node.layer).items():
                    counts[name] = counts.get(name, 0) + count
            else:
                counts[node.layer.name] = counts.get(node.layer.name, 0) + 1
    return counts


def is_flat(model) -> bool:
    return not any(isinstance(layer, tf.keras.Model) for layer in model.layers)


def flatten(model):
    """`model` itself when it has no nested models, else a rebuilt copy with them inlined."""
    check_graph_network(model)
    return model if is_flat(model) else rebuild(model)


def consumers(model) -> dict[str, list[str]]:
    """layer name -> names of the layers that consume its output (`"<output>"` for model outputs).

    `model` must be flat (see `flatten`).
    """
    result: dict[str, list[str]] = {}
    for nodes in model._nodes_by_depth.values():
        for node in nodes:
            if node.is_input:
                continue
            for tensor in node.keras_inputs:
                source = _producer(tensor)
                if source is not None:
                    result.setdefault(source.name, []).append(node.layer.name)
    for tensor in tf.nest.flatten(model.outputs):
        source = _producer(tensor)
        if source is not None:
            result.setdefault(source.name, []).append("<output>")
    return result


def _producer(tensor):
    layer = tensor._keras_history.layer
    if isinstance(layer, tf.keras.layers.InputLayer):
        return None
    if isinstance(layer, tf.keras.Model):
        # The producer of a nested model's output is the inner layer that made it.
        index = tensor._keras_history.tensor_index
        return _producer(tf.nest.flatten(layer.outputs)[index])
    return layer


def producer(tensor):
    """The (non-input, non-model) layer whose call produced KerasTensor `tensor`, or None."""
    return _producer(tensor)


def rebuild(model, replace: Replacement | None = None, *, name: str | None = None):
    """Return a new functional model computing `model`'s graph with some layers replaced.

    For every layer call, `replace(layer, args, kwargs)` may return the output tensor(s) of a
    subgraph built on the (new) input tensors in `args`; returning None clones the layer.
    Weights are copied, the original model is not modified (no new inbound nodes on its
    layers). Sequential models are rebuilt as functional models with the same layers.
    """
    check_graph_network(model)
    inputs = [
        tf.keras.Input(
            batch_shape=tuple(tensor.shape), dtype=tensor.dtype, name=input_layer_of(tensor).name
        )
        for tensor in model.inputs
    ]
    builder = _Builder(replace)
    outputs = builder.run(model, inputs)
    nested_inputs = inputs[0] if len(inputs) == 1 else inputs
    return tf.keras.Model(nested_inputs, outputs, name=name or model.name)


class _Builder:
    def __init__(self, replace: Replacement | None):
        self.replace = replace
        self.clones: dict[int, tf.keras.layers.Layer] = {}
        self.names: set[str] = set()

    def run(self, model, inputs):
        tensors = {id(ref): new for ref, new in zip(model.inputs, inputs, strict=True)}
        for depth in sorted(model._nodes_by_depth, reverse=True):
            for node in model._nodes_by_depth[depth]:
                if node.is_input:
                    continue
                args, kwargs = tf.nest.map_structure(
                    lambda value: (
                        tensors.get(id(value), value) if _is_keras_tensor(value) else value
                    ),
                    (tuple(node.call_args), dict(node.call_kwargs)),
                )
                outputs = self.call(node.layer, args, kwargs, model)
                for ref, new in zip(
                    tf.nest.flatten(node.outputs), tf.nest.flatten(outputs), strict=True
                ):
                    tensors[id(ref)] = new
        outputs = [tensors[id(ref)] for ref in tf.nest.flatten(model.outputs)]
        return tf.nest.pack_sequence_as(model._nested_outputs, outputs)

    def call(self, layer, args, kwargs, parent):
        if isinstance(layer, tf.keras.Model):
            check_graph_network(layer)
            inner_inputs = tf.nest.flatten(args[0] if args else next(iter(kwargs.values())))
            return self.run(layer, inner_inputs)
        if self.replace is not None:
            outputs = self.replace(layer, args, kwargs)
            if outputs is not None:
                return outputs
        clone = self.clones.get(id(layer))
        first_call = clone is None
        if first_call:
            clone_name = layer.name
            if clone_name in self.names:  # same name in two inlined models
                clone_name = f"{parent.name}_{layer.name}"
            self.names.add(clone_name)
            clone = clone_layer(layer, clone_name)
            self.clones[id(layer)] = clone
        if first_call and layer.weights:
            with zero_initialized(clone):
                outputs = clone(*args, **kwargs)
            copy_weights(layer, clone)
        else:
            outputs = clone(*args, **kwargs)
        return outputs


def _is_keras_tensor(value) -> bool:
    return hasattr(value, "_keras_history")
