"""A built-in detection set that needs no download: coloured shapes with exact boxes.

Example i is a function of (seed, i) alone. The image is cut into a 2x2 grid; each cell holds
an object with probability 0.7 (cell i mod 4 always does), 15-45% of the image in each
direction, placed anywhere inside its cell so objects never overlap. The class sets the shape
(rectangle, ellipse, triangle, diamond, repeating) and the hue; every shape touches all four
sides of its box (the triangle its apex), so the box is exact. Background: a random colour
gradient plus pixel noise.
"""

import math

import tensorflow as tf

MAX_OBJECTS = 4


def _hues(num_classes: int):
    hues = tf.range(num_classes, dtype=tf.float32) * 0.61803398875
    return hues - tf.floor(hues)


def make_example(index, seed: int, num_classes: int, image_size: int):
    """(uint8 image [S, S, 3], boxes [4, 4] normalised ymin/xmin/ymax/xmax, classes [4] int32
    1..num_classes, 0 = no object in that slot)."""
    index = tf.cast(index, tf.int64)
    key = tf.stack([tf.constant(seed, tf.int64), index])
    u = tf.random.stateless_uniform([MAX_OBJECTS, 8], seed=key)
    present = (u[:, 0] < 0.7) | tf.equal(tf.range(MAX_OBJECTS, dtype=tf.int64), index % 4)
    label = tf.cast(tf.floor(u[:, 1] * num_classes), tf.int32)
    label = tf.minimum(label, num_classes - 1)
    h = 0.15 + 0.30 * u[:, 2]
    w = 0.15 + 0.30 * u[:, 3]
    cell_y = tf.constant([0.0, 0.0, 0.5, 0.5])
    cell_x = tf.constant([0.0, 0.5, 0.0, 0.5])
    ymin = cell_y + (0.5 - h) * u[:, 4]
    xmin = cell_x + (0.5 - w) * u[:, 5]
    boxes = tf.stack([ymin, xmin, ymin + h, xmin + w], axis=-1)
    # pixel-aligned boxes: the drawn shape fills exactly these pixel edges
    boxes = tf.round(boxes * image_size) / image_size

    coords = (tf.range(image_size, dtype=tf.float32) + 0.5) / image_size
    yy, xx = tf.meshgrid(coords, coords, indexing="ij")
    v = (yy[None] - boxes[:, 0, None, None]) / (boxes[:, 2] - boxes[:, 0])[:, None, None]
    x = (xx[None] - boxes[:, 1, None, None]) / (boxes[:, 3] - boxes[:, 1])[:, None, None]
    inside = (v >= 0) & (v <= 1) & (x >= 0) & (x <= 1)
    cu, cv = tf.abs(2 * x - 1), tf.abs(2 * v - 1)
    shape = (label % 4)[:, None, None]
    mask = tf.where(shape == 0, inside,
                    tf.where(shape == 1, cu ** 2 + cv ** 2 <= 1.0,
                             tf.where(shape == 2, inside & (cu <= v), cu + cv <= 1.0)))
    mask = mask & present[:, None, None]

    hue = tf.gather(_hues(num_classes), label) + 0.04 * (u[:, 6] - 0.5)
    hue = hue - tf.floor(hue)
    colour = tf.image.hsv_to_rgb(tf.stack([hue, tf.fill([MAX_OBJECTS], 0.8),
                                           0.7 + 0.3 * u[:, 7]], -1))      # [4, 3]
    g = tf.random.stateless_uniform([3, 3], seed=key + 11)
    angle = 2 * math.pi * g[2, 0]
    ramp = (xx * tf.cos(angle) + yy * tf.sin(angle))[..., None]
    image = 0.25 + 0.35 * (g[0][None, None] * (1 - ramp) + g[1][None, None] * ramp)
    for k in range(MAX_OBJECTS):
        image = tf.where(mask[k][..., None], colour[k][None, None], image)
    image += 0.08 * tf.random.stateless_normal([image_size, image_size, 3], seed=key + 7)
    image = tf.cast(tf.round(tf.clip_by_value(image, 0.0, 1.0) * 255.0), tf.uint8)
    classes = tf.where(present, label + 1, 0)
    boxes = tf.where(present[:, None], boxes, 0.0)
    return image, boxes, classes
