"""A built-in segmentation set that needs no download: shapes on textured backgrounds.

Example i is a function of (seed, i) alone. Class 0 is the background; classes 1..K-1 are
shapes (rectangle, ellipse, triangle, diamond, repeating) with a class hue. The image is cut
into a 2x2 grid; each cell holds a shape with probability 0.7 (cell i mod 4 always does),
15-45% of the image in each direction. The background is a colour gradient with a random
sinusoidal texture and pixel noise; shapes get noise too, so colour alone is not enough at
the edges. Masks are exact per pixel; a one-pixel ring around each shape is 255 (ignore), as
in VOC-style annotations.
"""

import math

import tensorflow as tf

IGNORE = 255
MAX_OBJECTS = 4


def make_example(index, seed: int, num_classes: int, image_size: int):
    """(uint8 image [S, S, 3], uint8 mask [S, S] with ids 0..num_classes-1 and 255)."""
    index = tf.cast(index, tf.int64)
    key = tf.stack([tf.constant(seed, tf.int64), index])
    u = tf.random.stateless_uniform([MAX_OBJECTS, 8], seed=key)
    present = (u[:, 0] < 0.7) | tf.equal(tf.range(MAX_OBJECTS, dtype=tf.int64), index % 4)
    label = 1 + tf.minimum(tf.cast(tf.floor(u[:, 1] * (num_classes - 1)), tf.int32),
                           num_classes - 2)
    h = 0.15 + 0.30 * u[:, 2]
    w = 0.15 + 0.30 * u[:, 3]
    ymin = tf.constant([0.0, 0.0, 0.5, 0.5]) + (0.5 - h) * u[:, 4]
    xmin = tf.constant([0.0, 0.5, 0.0, 0.5]) + (0.5 - w) * u[:, 5]

    coords = (tf.range(image_size, dtype=tf.float32) + 0.5) / image_size
    yy, xx = tf.meshgrid(coords, coords, indexing="ij")

    def shape_mask(grow):
        v = (yy[None] - (ymin - grow)[:, None, None]) / (h + 2 * grow)[:, None, None]
        x = (xx[None] - (xmin - grow)[:, None, None]) / (w + 2 * grow)[:, None, None]
        inside = (v >= 0) & (v <= 1) & (x >= 0) & (x <= 1)
        cu, cv = tf.abs(2 * x - 1), tf.abs(2 * v - 1)
        kind = ((label - 1) % 4)[:, None, None]
        m = tf.where(kind == 0, inside,
                     tf.where(kind == 1, cu ** 2 + cv ** 2 <= 1.0,
                              tf.where(kind == 2, inside & (cu <= v), cu + cv <= 1.0)))
        return m & present[:, None, None]
    mask, ring = shape_mask(0.0), shape_mask(1.0 / image_size)

    hue = (tf.cast(label, tf.float32) * 0.61803398875) + 0.04 * (u[:, 6] - 0.5)
    hue = hue - tf.floor(hue)
    colour = tf.image.hsv_to_rgb(tf.stack([hue, tf.fill([MAX_OBJECTS], 0.75),
                                           0.6 + 0.4 * u[:, 7]], -1))
    g = tf.random.stateless_uniform([4, 3], seed=key + 11)
    angle = 2 * math.pi * g[2, 0]
    ramp = (xx * tf.cos(angle) + yy * tf.sin(angle))[..., None]
    image = 0.25 + 0.35 * (g[0][None, None] * (1 - ramp) + g[1][None, None] * ramp)
    freq = 4.0 + 20.0 * g[3, 0]
    texture = tf.sin(2 * math.pi * freq * (xx * tf.cos(3 * angle) + yy * tf.sin(3 * angle)))
    image += 0.12 * texture[..., None] * g[3][None, None]
    labels = tf.zeros([image_size, image_size], tf.int32)
    ignore = tf.zeros([image_size, image_size], tf.bool)
    for k in range(MAX_OBJECTS):
        image = tf.where(mask[k][..., None], colour[k][None, None], image)
        labels = tf.where(mask[k], label[k], labels)
        ignore = (ignore | (ring[k] & ~mask[k])) & ~mask[k]
    image += 0.08 * tf.random.stateless_normal([image_size, image_size, 3], seed=key + 7)
    image = tf.cast(tf.round(tf.clip_by_value(image, 0.0, 1.0) * 255.0), tf.uint8)
    labels = tf.where(ignore, IGNORE, labels)
    return image, tf.cast(labels, tf.uint8)
