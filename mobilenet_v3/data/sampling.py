"""Seeded positions -> example indices, and fixed image samples for calibration and checks.

Training order and export's calibration sample use the same stateless shuffle.
"""

import numpy as np
import tensorflow as tf

from mobilenet_v3.data import preprocessing

CALIBRATION_STREAM = 7   # the "epoch" key of export's calibration sample


def shuffled_index(position, seed, epoch, num_examples: int):
    """The example at `position` of permutation (seed, epoch) of range(num_examples)."""
    key = tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)])
    return tf.random.experimental.index_shuffle(position, key, num_examples - 1)


def sample_images(source, image_size: int, split: str, count: int, seed: int = 0):
    """(images [-1, 1], labels): `count` evaluation-preprocessed examples of `split`.

    Training examples are a seeded sample (for calibration); held-out ones come in order.
    """
    if split == "train":
        if source.train_element is not None:
            n = source.num_train
            order = shuffled_index(tf.range(min(count, n), dtype=tf.int64), seed,
                                   CALIBRATION_STREAM, n)
            ds = tf.data.Dataset.from_tensor_slices(order).map(source.train_element)
        else:
            ds = source.train_stream(seed, None).map(
                lambda img, label: (preprocessing.decode_image(img), label))
    else:
        ds = source.eval_examples()
    ds = ds.map(lambda img, label: (preprocessing.eval_preprocess(img, image_size), label),
                num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.ignore_errors(log_warning=True).take(count).batch(64)
    images, labels = [], []
    for x, y in ds:
        images.append(x.numpy())
        labels.append(y.numpy())
    if not images:
        raise ValueError(f"no readable images in the {split} split of the {source.name} data")
    return np.concatenate(images), np.concatenate(labels)


def held_out_split(count: int, fraction: float, seed: int, error: type, where: str):
    """(held-out rows, training rows) of `count` examples: `fraction` of them, chosen by `seed`;
    `error(message)` when that leaves either side empty."""
    order = np.random.RandomState(seed).permutation(count)
    n_eval = int(round(count * fraction))
    if n_eval < 1 or n_eval >= count:
        raise error(f"{where!r}: {count} images are too few for a {fraction:.0%} held-out split")
    return order[:n_eval], order[n_eval:]
