"""The 1000 ILSVRC-2012 classes in the standard order (sorted wnids; tfds / keras order), and names.

Read from files tensorflow-datasets installs (no download, nothing from outside the installed packages).
"""

import functools
import os
from typing import List

import tensorflow_datasets as tfds

BACKGROUND = "background"
_LABEL_FILES = ("datasets/imagenet2012/labels.txt", "image_classification/imagenet2012_labels.txt")


@functools.lru_cache(maxsize=None)
def wnids() -> List[str]:
    """The 1000 sorted ILSVRC-2012 synset ids (n01440764, ...); label k is wnids()[k]."""
    root = os.path.dirname(tfds.__file__)
    for relative in _LABEL_FILES:
        path = os.path.join(root, relative)
        if os.path.exists(path):
            with open(path) as f:
                ids = [line.strip() for line in f if line.strip()]
            if len(ids) == 1000:
                return ids
    raise FileNotFoundError("tensorflow-datasets' imagenet2012 labels.txt was not found in "
                            f"{root}; reinstall tensorflow-datasets")


@functools.lru_cache(maxsize=None)
def names() -> List[str]:
    """Human-readable names of the 1000 classes (wnids when no name list is installed)."""
    try:
        from tensorflow_datasets.datasets.siscore import labels as siscore_labels
        listed = list(siscore_labels.IMAGENET_LABELS_LIST)
    except ImportError:
        listed = []
    return listed if len(listed) == 1000 else list(wnids())


def labels(classes: int) -> List[str]:
    """labels.txt lines: 1000 names, or 1001 with 'background' first."""
    if classes not in (1000, 1001):
        raise ValueError(f"ImageNet has 1000 classes (1001 with background), got {classes}")
    return ([BACKGROUND] if classes == 1001 else []) + names()
