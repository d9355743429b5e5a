"""Datasets as uint8 tensors (resident or memory-mapped), batches, batched augmentation.

Example:
    >>> from cnnlab.data import load_data, batches, build_augment, to_float, to_float_normalized
    >>> b = load_data("digits")
    >>> aug = build_augment("crop", b.image_size)
    >>> x, y = next(batches(b.train, 64, shuffle=True, generator=torch.Generator().manual_seed(0)))
    >>> to_float_normalized(aug(to_float(x)), b.mean, b.std).shape
    torch.Size([64, 1, 32, 32])
"""

import torch  # noqa: F401  (used by the docstring example)

from cnnlab.data.augment import Augment, center_crop
from cnnlab.data.batches import batches, num_batches
from cnnlab.data.bundle import DataBundle, Split, channel_stats, to_model_classes
from cnnlab.data.images import IMAGE_EXTENSIONS, decode_image, decode_images
from cnnlab.data.normalize import Normalizer, to_float, to_float_normalized
from cnnlab.data.prefetch import prefetch
from cnnlab.data.presets import PRESETS, build_augment, default_augment_name, resolve_augment_name
from cnnlab.data.sharding import shard_order
from cnnlab.data.sources import SOURCES, load_data, split_pool
from cnnlab.data.stored import StoredImages

__all__ = [
    "IMAGE_EXTENSIONS",
    "PRESETS",
    "SOURCES",
    "Augment",
    "DataBundle",
    "Normalizer",
    "Split",
    "StoredImages",
    "batches",
    "build_augment",
    "center_crop",
    "channel_stats",
    "decode_image",
    "decode_images",
    "default_augment_name",
    "load_data",
    "num_batches",
    "prefetch",
    "resolve_augment_name",
    "shard_order",
    "to_model_classes",
    "split_pool",
    "to_float",
    "to_float_normalized",
]
