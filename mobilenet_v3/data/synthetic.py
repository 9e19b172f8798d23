"""A built-in dataset that needs no download and no files, and that a model can learn.

Example i is generated from (seed, i) alone: an oriented sine grating whose orientation is set
by the class, tinted by a class colour, at a random frequency and phase, plus pixel noise.
Orientation and colour are what a small CNN picks up within a few hundred steps, so a
training run shows real learning well above chance; everything is deterministic in the seed.
"""

import math

import tensorflow as tf


def _class_colours(num_classes: int):
    hues = tf.range(num_classes, dtype=tf.float32) * (0.61803398875)  # golden-ratio spread
    hues = hues - tf.floor(hues)
    hsv = tf.stack([hues, tf.fill([num_classes], 0.7), tf.ones([num_classes])], axis=-1)
    return tf.image.hsv_to_rgb(hsv)  # [num_classes, 3] in [0, 1]


def make_example(index, seed: int, num_classes: int, image_size: int):
    """(uint8 image [size, size, 3], int32 label) for example `index`."""
    index = tf.cast(index, tf.int64)
    key = tf.stack([tf.constant(seed, tf.int64), index])
    label = tf.cast(index % num_classes, tf.int32)
    u = tf.random.stateless_uniform([4], seed=key)
    angle = (tf.cast(label, tf.float32) + 0.3 * (u[0] - 0.5)) * math.pi / num_classes
    frequency = 2.0 * math.pi * (0.08 + 0.08 * u[1])   # radians per pixel
    phase = 2.0 * math.pi * u[2]
    coords = tf.range(image_size, dtype=tf.float32)
    yy, xx = tf.meshgrid(coords, coords, indexing="ij")
    grating = tf.sin(frequency * (xx * tf.cos(angle) + yy * tf.sin(angle)) + phase)
    colour = tf.gather(_class_colours(num_classes), label)
    brightness = 0.6 + 0.4 * u[3]
    image = 0.5 + 0.5 * grating[..., None] * colour[None, None, :] * brightness
    image += 0.15 * tf.random.stateless_normal([image_size, image_size, 3], seed=key + 7)
    image = tf.clip_by_value(image, 0.0, 1.0) * 255.0
    return tf.cast(tf.round(image), tf.uint8), label


def synthetic_dataset(num_examples: int, num_classes: int = 10, image_size: int = 64,
                      seed: int = 0, offset: int = 0) -> tf.data.Dataset:
    """Examples offset .. offset + num_examples - 1 as (uint8 image, int32 label), in order.

    Use disjoint offsets for training and held-out splits.
    """
    if num_examples < 1 or num_classes < 2 or image_size < 8:
        raise ValueError("synthetic_dataset needs num_examples >= 1, num_classes >= 2 and "
                         f"image_size >= 8, got {num_examples}, {num_classes}, {image_size}")
    return tf.data.Dataset.range(offset, offset + num_examples).map(
        lambda i: make_example(i, seed, num_classes, image_size),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
