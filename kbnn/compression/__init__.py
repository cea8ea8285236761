"""DeepCompression for Keras/larq models: pruning, weight sharing, Huffman coding, exact files.

Han, Mao & Dally, "Deep Compression: Compressing Deep Neural Networks with Pruning, Trained
Quantization and Huffman Coding", ICLR 2016 — and Han, Pool, Tran & Dally, "Learning both
Weights and Connections for Efficient Neural Networks", NeurIPS 2015, for iterative pruning.

- `pruning`: tfmot's magnitude pruning with gradient-masked, monotone masks; schedules,
  one-shot pruning, per-layer sensitivity scan; larq/kbnn ternary layers are prunable.
- `sharing`: per-layer k-means codebooks (linear init) and fine-tuning of the centroids with
  the summed gradients of their members.
- `huffman`, `relative_index`, `encoding`: canonical Huffman, the paper's relative-index
  sparse format with filler zeros, and exact tensor encodings (levels for ternary kernels).
- `format`: `save_compressed` / `load_compressed`, the checksummed `.kbz` file.
- `pipeline.compress`: all stages (settings in a `CompressionConfig`) with a per-stage
  size/accuracy report.
"""

from kbnn.compression.encoding import Stage
from kbnn.compression.format import (
    CompressedFileError,
    CorruptFileError,
    NotCompressedFileError,
    TruncatedFileError,
    UnsupportedVersionError,
    load_compressed,
    read_compressed,
    save_compressed,
)
from kbnn.compression.pipeline import (
    CompressionConfig,
    CompressionResult,
    StageReport,
    compress,
    prune_and_retrain,
)
from kbnn.compression.pruning import (
    ConstantSparsity,
    IterativeSparsity,
    PolynomialDecay,
    PruneLowMagnitude,
    UpdatePruningStep,
    iterative_targets,
    magnitude_prune,
    prune_low_magnitude,
    pruning_masks,
    sensitivity_scan,
    strip_pruning,
)
from kbnn.compression.quantized import level_statistics, materialize_quantized
from kbnn.compression.sharing import SharedWeights, kmeans_1d, share_weights, strip_sharing

__all__ = [
    "CompressedFileError",
    "CompressionConfig",
    "CompressionResult",
    "ConstantSparsity",
    "CorruptFileError",
    "IterativeSparsity",
    "NotCompressedFileError",
    "PolynomialDecay",
    "PruneLowMagnitude",
    "SharedWeights",
    "Stage",
    "StageReport",
    "TruncatedFileError",
    "UnsupportedVersionError",
    "UpdatePruningStep",
    "compress",
    "iterative_targets",
    "kmeans_1d",
    "level_statistics",
    "load_compressed",
    "magnitude_prune",
    "materialize_quantized",
    "prune_and_retrain",
    "prune_low_magnitude",
    "pruning_masks",
    "read_compressed",
    "save_compressed",
    "sensitivity_scan",
    "share_weights",
    "strip_pruning",
    "strip_sharing",
]
