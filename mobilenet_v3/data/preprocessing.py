"""Image decoding, Inception-style training preprocessing and central-crop evaluation,
pixels to [-1, 1].

Paper 6.1.1 / TF-Slim: random-sized crop covering 8%-100% of the image with aspect ratio in
[3/4, 4/3], random horizontal flip, resize; evaluation: central crop of 87.5%, resize.
Randomness is stateless (seeded per example) so a run is reproducible and a resumed run sees
the same augmentations as an uninterrupted one.
"""

import tensorflow as tf


def decode_image(encoded):
    """Encoded JPEG/PNG bytes -> uint8 HxWx3 (streamed sources hold encoded images)."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def to_unit_range(image):
    """[0, 255] pixels (any dtype) -> float32 in [-1, 1]."""
    return tf.cast(image, tf.float32) / 127.5 - 1.0


def train_preprocess(image, seed, size: int, area_range=(0.08, 1.0),
                     aspect_ratio_range=(3 / 4, 4 / 3)):
    """Random-sized crop + flip + resize to `size` for one uint8 HxWx3 image.

    `seed` is a shape-[2] int tensor (e.g. (run seed, example index)).
    """
    seed = tf.cast(seed, tf.int64)
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image), bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed, min_object_covered=0.1, aspect_ratio_range=aspect_ratio_range,
        area_range=area_range, max_attempts=10, use_image_if_no_bounding_boxes=True)
    image = tf.slice(image, begin, crop_size)
    image = tf.image.stateless_random_flip_left_right(image, seed=seed + 1)
    image = tf.image.resize(tf.cast(image, tf.float32), (size, size), method="bilinear")
    image = tf.clip_by_value(image, 0.0, 255.0)
    return to_unit_range(image)


def eval_preprocess(image, size: int, central_fraction: float = 0.875):
    """Central crop of `central_fraction` of the image, resized to `size`."""
    image = tf.image.central_crop(tf.cast(image, tf.float32), central_fraction)
    image = tf.image.resize(image, (size, size), method="bilinear")
    return to_unit_range(tf.clip_by_value(image, 0.0, 255.0))
