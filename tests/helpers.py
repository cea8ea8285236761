"""Reference formulas and model set-up shared by several test files (one copy each).

Import as `from helpers import np_ap2` (pytest puts `tests/` on `sys.path`).
"""

import numpy as np
import tensorflow as tf


def np_ap2(x):
    """sign(x) · 2^round(log2|x|), 0 at 0 — float64, independent of kbnn (BinaryNet's AP2)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros_like(x)
    nonzero = x != 0
    out[nonzero] = np.sign(x[nonzero]) * 2.0 ** np.round(np.log2(np.abs(x[nonzero])))
    return out


def randomize_weights(model, seed=0, *, signed_gamma=True, mean_scale=2.0, nested=False):
    """Random latent kernels in [−1, 1] and random BN parameters and statistics, in place.

    Identity statistics would hide folding mistakes. γ is drawn from ±[0.5, 2] (`signed_gamma`)
    or [0.5, 2]; β and biases from N(0, 1); moving means from N(0, `mean_scale`²); variances
    (or SBN's inverse std) from [0.2, 2]. `nested=True` descends into sub-models (seed + 1)
    instead of drawing their weights in place. Returns `model`.
    """
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if nested and isinstance(layer, tf.keras.Model):
            randomize_weights(
                layer, seed + 1, signed_gamma=signed_gamma, mean_scale=mean_scale, nested=nested
            )
            continue
        for variable in layer.weights:
            name = variable.name.split("/")[-1]
            if name.startswith(("kernel", "depthwise_kernel")):
                variable.assign(rng.uniform(-1, 1, variable.shape))
            elif name.startswith("gamma"):
                gamma = rng.uniform(0.5, 2.0, variable.shape)
                if signed_gamma:
                    gamma = gamma * rng.choice([-1, 1], variable.shape)
                variable.assign(gamma)
            elif name.startswith(("beta", "bias")):
                variable.assign(rng.normal(size=variable.shape))
            elif name.startswith("moving_mean"):
                variable.assign(rng.normal(size=variable.shape) * mean_scale)
            elif name.startswith(("moving_variance", "moving_inv_std")):
                variable.assign(rng.uniform(0.2, 2.0, variable.shape))
    return model
