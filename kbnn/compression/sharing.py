"""Weight sharing by k-means and its fine-tuning (DeepCompression, Han et al. 2016, §3).

Each kernel's weights are clustered into 2^b shared values (the codebook); a weight is then
stored as a b-bit index k_ij and the layer computes with W_ij = c[k_ij]. Centroids start
*linearly* spaced over [min W, max W] (§3.2: linear initialisation keeps the rare large
weights, which density-based initialisation loses) and are refined by Lloyd's k-means. During
fine-tuning the indices are fixed and each centroid moves with the *sum* of its members'
gradients (§3.3, eq. 3): ∂L/∂c_k = Σ_{ij: k_ij = k} ∂L/∂W_ij.

In a pruned kernel the zeros are not clustered: index 0 is reserved for the exact value 0
(pruned weights and the relative index's filler entries), and the 2^b − 1 other entries are
the centroids of the surviving weights, so the kernel keeps exactly the pruned sparsity.

Why not tfmot's `cluster_weights`: its centroid gradient is the summed member gradient
(`GradientAggregation.SUM`, checked against a numpy reference), but it also trains the
original weights through a straight-through estimator and re-assigns every weight to its
nearest centroid at every step — in a 3-epoch check 38 of 48 memberships changed — so it is
not the paper's fixed-index fine-tuning, and the indices trained are not the ones stored. It
also refuses larq/kbnn layers. kbnn's `SharedWeights` keeps the indices fixed.
"""

from __future__ import annotations

from collections.abc import Mapping

from kbnn._registry import register
from kbnn.compression import layers as klayers
from kbnn.compression.pruning import check_functional, copy_model

import numpy as np
import tensorflow as tf

#: Lloyd iterations stop when no assignment changes, or after this many.
KMEANS_MAX_ITERATIONS = 100


def kmeans_1d(values, k: int, max_iterations: int = KMEANS_MAX_ITERATIONS):
    """Lloyd's k-means on scalars with linear initialisation; returns `(centroids, labels)`.

    Centroids start at linspace(min, max, k); each iteration assigns every value to its nearest
    centroid and moves each centroid to the mean of its members (a centroid without members
    keeps its place). In one dimension "nearest" is a binary search against the midpoints of
    the sorted centroids, so an iteration costs O(n log k). (Written here rather than taken
    from scikit-learn/scipy, which are not kbnn dependencies and have no 1-D fast path.)
    Centroids are float32, sorted; labels index them.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if values.size == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    centroids = np.linspace(values.min(), values.max(), k)
    labels = None
    for _ in range(max_iterations):
        new_labels = _nearest(values, centroids)
        if labels is not None and np.array_equal(new_labels, labels):
            break
        labels = new_labels
        counts = np.bincount(labels, minlength=k)
        sums = np.bincount(labels, weights=values, minlength=k)
        centroids = np.sort(np.where(counts > 0, sums / np.maximum(counts, 1), centroids))
    centroids = centroids.astype(np.float32)
    return centroids, _nearest(values, centroids.astype(np.float64))


def _nearest(values: np.ndarray, sorted_centroids: np.ndarray) -> np.ndarray:
    midpoints = (sorted_centroids[1:] + sorted_centroids[:-1]) / 2.0
    return np.searchsorted(midpoints, values, side="left").astype(np.int64)


def cluster_kernel(kernel, bits: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Codebook and indices for one kernel: `(codebook, indices, zero_code)`.

    With exact zeros in `kernel` (a pruned kernel), `zero_code` is True, codebook[0] = 0 holds
    them and the 2^b − 1 other entries are k-means centroids of the nonzeros; otherwise all
    2^b entries are centroids. codebook[indices] is the shared kernel.
    """
    if not 1 <= bits <= 16:
        raise ValueError(f"bits must be in 1..16, got {bits}")
    kernel = np.asarray(kernel, dtype=np.float32)
    size = 1 << bits
    zero_code = bool(np.any(kernel == 0))
    nonzero = kernel != 0 if zero_code else np.ones(kernel.shape, bool)
    clusters = size - 1 if zero_code else size
    if clusters < 1:
        raise ValueError("bits=1 leaves no centroid besides the zero of a pruned kernel")
    centroids, labels = kmeans_1d(kernel[nonzero], clusters)
    codebook = np.concatenate([[0.0], centroids]).astype(np.float32) if zero_code else centroids
    indices = np.zeros(kernel.shape, dtype=np.int32)
    indices[nonzero] = labels + (1 if zero_code else 0)
    return codebook, indices, zero_code


@register
class SharedWeights(tf.keras.layers.Wrapper):
    """Run `layer` with the shared kernel W = c[k]; only the codebook c (and biases) train.

    Forward: W_ij = c[k_ij] (exactly +0.0 where k_ij = 0 if `zero_code`), so the gradient of each
    centroid is the sum of its members' gradients and index 0 stays exactly zero. The indices
    are non-trainable int32 weights; the wrapped layer's own kernel is kept (non-trainable)
    and receives c[k] on `strip_sharing`.

    # Arguments
        layer: a float layer with a kernel (Dense, Conv*, DepthwiseConv2D, Embedding).
        bits: index width b; the codebook has 2^b entries.
        zero_code: reserve index 0 for the exact zero (pruned kernels).
    """

    def __init__(self, layer, bits: int = 5, zero_code: bool = False, **kwargs):
        attribute = klayers.kernel_attribute(layer)
        if attribute is None:
            raise ValueError(
                f"layer {layer.name!r} ({type(layer).__name__}) has no kernel to share"
            )
        if klayers.kernel_quantizer(layer) is not None:
            raise ValueError(
                f"layer {layer.name!r} already quantizes its kernel "
                f"({type(klayers.kernel_quantizer(layer)).__name__}); weight sharing applies to "
                "float kernels — code quantized kernels by their levels instead"
            )
        if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or not 1 <= bits <= 16:
            raise ValueError(f"`bits` must be an integer in 1..16, got {bits!r}")
        kwargs.setdefault("name", f"shared_{layer.name}")
        super().__init__(layer, **kwargs)
        self.bits = int(bits)
        self.zero_code = bool(zero_code)
        self.kernel_attribute = attribute

    def build(self, input_shape=None):
        super().build(input_shape)
        kernel = klayers.kernel_variable(self.layer)
        self.centroids = self.add_weight(
            "centroids",
            shape=(1 << self.bits,),
            dtype=kernel.dtype,
            initializer="zeros",
            trainable=True,
        )
        self.indices = self.add_weight(
            "indices", shape=kernel.shape, dtype=tf.int32, initializer="zeros", trainable=False
        )

    def cluster(self) -> None:
        """Initialise codebook and indices by k-means of the wrapped layer's current kernel."""
        kernel = klayers.kernel_variable(self.layer).numpy()
        codebook, indices, zero_code = cluster_kernel(kernel, self.bits)
        if zero_code != self.zero_code:
            raise ValueError(
                f"{self.name}: zero_code={self.zero_code} but the kernel "
                f"{'has' if zero_code else 'has no'} zeros"
            )
        self.centroids.assign(np.pad(codebook, (0, (1 << self.bits) - codebook.size)))
        self.indices.assign(indices)

    def shared_kernel(self) -> tf.Tensor:
        """c[k] (with exact zeros at index 0 when `zero_code`)."""
        kernel = tf.gather(self.centroids, self.indices)
        if self.zero_code:
            kernel = tf.where(self.indices != 0, kernel, tf.zeros_like(kernel))
        return kernel

    def call(self, inputs, training=None, **kwargs):
        with klayers.substituted(self.layer, self.kernel_attribute, self.shared_kernel()):
            return klayers.call_inner(self.layer, inputs, training=training, **kwargs)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    @property
    def trainable(self):
        return self.layer.trainable

    @trainable.setter
    def trainable(self, value):
        self.layer.trainable = value

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        if not self.built:
            return self.layer.trainable_weights
        kernel = klayers.kernel_variable(self.layer)
        return [w for w in self.layer.trainable_weights if w is not kernel] + [self.centroids]

    @property
    def non_trainable_weights(self):
        if not self.built:
            return self.layer.non_trainable_weights
        if not self.trainable:
            return self.layer.weights + [self.centroids, self.indices]
        kernel = klayers.kernel_variable(self.layer)
        inner = [w for w in self.layer.non_trainable_weights if w is not kernel]
        return [kernel] + inner + [self.indices]

    def get_config(self):
        return {**super().get_config(), "bits": self.bits, "zero_code": self.zero_code}


def share_weights(model: tf.keras.Model, bits) -> tf.keras.Model:
    """Copy of `model` with the chosen layers wrapped in `SharedWeights` and clustered.

    `bits`: an int for every float layer with a kernel, or {layer name: bits}.
    """
    check_functional(model)
    if isinstance(bits, Mapping):
        unknown = sorted(set(bits) - {layer.name for layer in model.layers})
        if unknown:
            raise ValueError(f"bits: no layer named {unknown} in model {model.name!r}")
        per_layer = dict(bits)
    else:
        per_layer = {layer.name: bits for layer in model.layers if is_shareable(layer)}
    clone = copy_model(model)

    def wrap(layer):
        if layer.name not in per_layer:
            return layer
        kernel = klayers.kernel_variable(layer).numpy()
        return SharedWeights(layer, bits=per_layer[layer.name], zero_code=bool(np.any(kernel == 0)))

    wrapped = tf.keras.models.clone_model(clone, clone_function=wrap)
    for layer in wrapped.layers:
        if isinstance(layer, SharedWeights):
            layer.cluster()
    return wrapped


def is_shareable(layer: tf.keras.layers.Layer) -> bool:
    """A built float layer with a kernel (quantized kernels are coded by their levels)."""
    return (
        not isinstance(layer, tf.keras.Model | tf.keras.layers.Wrapper)
        and layer.built
        and klayers.kernel_attribute(layer) is not None
        and klayers.kernel_quantizer(layer) is None
    )


def strip_sharing(model: tf.keras.Model) -> tf.keras.Model:
    """Write c[k] into each wrapped kernel and remove the `SharedWeights` wrappers."""
    check_functional(model)

    def unwrap(layer):
        if isinstance(layer, SharedWeights):
            klayers.kernel_variable(layer.layer).assign(layer.shared_kernel())
            return layer.layer
        return layer

    return tf.keras.models.clone_model(model, clone_function=unwrap)
