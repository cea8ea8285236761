"""Writes the first N MNIST test digits for the example: digits_images.bin (raw uint8, 784 bytes
per digit, HWC) and digits_labels.bin (one byte per digit).

    python write_digits.py [N]      (default 10000, the whole test split)
"""

import os
import pathlib
import sys

import numpy as np
import tensorflow_datasets as tfds


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    data = tfds.load(
        "mnist",
        split=f"test[:{count}]",
        batch_size=-1,
        download=False,
        data_dir=os.environ.get("TFDS_DATA_DIR"),
    )
    pathlib.Path("digits_images.bin").write_bytes(data["image"].numpy().astype(np.uint8).tobytes())
    pathlib.Path("digits_labels.bin").write_bytes(data["label"].numpy().astype(np.uint8).tobytes())
    print(f"wrote {count} digits")


if __name__ == "__main__":
    main()
