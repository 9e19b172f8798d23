"""Users' own data as an image folder: <root>/<class name>/*.jpg|jpeg|png.

Classes are the sub-folder names in sorted order (label = position). The held-out split is
stratified and fixed by a seed. Files that cannot be decoded are skipped with a logged
warning per file (tf.data's ignore_errors); a split with no readable file at all is refused.
"""

import dataclasses
import os
from typing import Optional, Tuple

import numpy as np
import tensorflow as tf

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


@dataclasses.dataclass(frozen=True)
class ImageFolder:
    class_names: Tuple[str, ...]
    files: Tuple[str, ...]
    labels: Tuple[int, ...]


def read_class_list(path: str) -> Tuple[str, ...]:
    """Class names in label order, one per line (e.g. a pretrained model's labels.txt)."""
    try:
        with open(path) as f:
            names = tuple(line.strip() for line in f if line.strip())
    except OSError as e:
        raise FileNotFoundError(f"class list {path!r} cannot be read: {e.strerror}") from None
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if len(names) < 2 or duplicated:
        raise ValueError(f"class list {path!r} needs >= 2 distinct names, one per line"
                         + (f" (repeated: {duplicated[:5]})" if duplicated else ""))
    return names


def scan(root: str, class_list: Optional[str] = None, min_classes: int = 2) -> ImageFolder:
    """Lists the classes and image files under `root`; clear errors for unusable folders.

    Without `class_list` the classes are the sorted sub-folders, and each must hold an image.
    With it, labels follow the list and a class may have no folder or no image (e.g. a few
    ImageNet classes fine-tuned in the 1001-class label space of a pretrained model); a
    sub-folder the list does not name is refused. Training needs `min_classes` = 2; scoring a
    model on one class's photos needs 1.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"image folder not found: {root!r} (expected "
                                "<root>/<class name>/*.jpg|png)")
    folders = tuple(sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))))
    class_names = read_class_list(class_list) if class_list else folders
    if not class_names:
        raise ValueError(f"no class sub-folders in {root!r} (expected <root>/<class>/*.jpg)")
    unknown = sorted(set(folders) - set(class_names))
    if unknown:
        raise ValueError(f"sub-folder(s) {unknown[:5]} of {root!r} are not in the class list "
                         f"{class_list!r}")
    files, labels = [], []
    for label, name in enumerate(class_names):
        if name not in folders:
            continue
        for filename in sorted(os.listdir(os.path.join(root, name))):
            if filename.lower().endswith(IMAGE_EXTENSIONS):
                files.append(os.path.join(root, name, filename))
                labels.append(label)
    if not files:
        raise ValueError(f"no .jpg/.jpeg/.png files under {root!r}")
    empty = [name for label, name in enumerate(class_names) if label not in set(labels)]
    if empty and not class_list:
        raise ValueError(f"class folder(s) {empty} under {root!r} hold no .jpg/.jpeg/.png "
                         "file: add images or remove the folder (an empty class would still "
                         "get a label and a classifier output; to keep such labels on "
                         "purpose, name every class in a class list)")
    if len(class_names) < min_classes:
        raise ValueError(f"{root!r} has one class ({class_names[0]!r}); a classifier needs "
                         "at least 2 class sub-folders")
    return ImageFolder(class_names, tuple(files), tuple(labels))


def first_readable(files, what: str) -> str:
    """The first of `files` that decodes as an image; a clear error when none does.

    Checked before training: a pipeline that skips unreadable files would otherwise wait
    forever for a first readable one.
    """
    for path in files:
        try:
            decode(tf.constant(path), 0)
            return path
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError,
                tf.errors.UnknownError):
            continue
    raise ValueError(f"no readable image among the {len(files)} {what} files tried (none "
                     "decodes as JPEG or PNG)")


def split(folder: ImageFolder, held_out_fraction: float,
          seed: int = 0) -> Tuple[ImageFolder, ImageFolder]:
    """(train, held_out): the same fraction of every class held out, chosen by `seed`.

    The held-out files are interleaved across classes (one of each class in turn), so that
    its first N images, e.g. an export's check images, are a fair sample rather than the
    first class's.
    """
    if not 0.0 <= held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must be in [0, 1), got {held_out_fraction}")
    rng = np.random.RandomState(seed)
    labels = np.array(folder.labels)
    chosen = []
    for label in range(len(folder.class_names)):
        members = np.flatnonzero(labels == label)
        count = int(round(len(members) * held_out_fraction))
        chosen.append(np.sort(rng.permutation(members)[:count]))
    interleaved = [c[k] for k in range(max(map(len, chosen), default=0))
                   for c in chosen if k < len(c)]
    held = np.zeros(len(labels), bool)
    held[interleaved] = True

    def subset(idx) -> ImageFolder:
        return ImageFolder(folder.class_names, tuple(folder.files[i] for i in idx),
                           tuple(int(labels[i]) for i in idx))
    return subset(np.flatnonzero(~held)), subset(interleaved)


def decode(path, label):
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image, label


def dataset(folder: ImageFolder) -> tf.data.Dataset:
    """(uint8 image, int32 label) in file order; undecodable files are skipped and logged."""
    ds = tf.data.Dataset.from_tensor_slices((list(folder.files),
                                             tf.constant(folder.labels, tf.int32)))
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.ignore_errors(log_warning=True)
