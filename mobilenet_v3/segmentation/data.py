"""Segmentation input pipelines: the synthetic set, an image + mask folder of your own data,
and tfds cityscapes (19 training classes); DeepLab's augmentation with stateless seeds.

Training order and augmentation follow data/pipeline.py: position p of the run reads example
index_shuffle(p mod N, seed=(seed, epoch)) and augments it with seed (seed, p), so a resumed
run sees exactly the batches an uninterrupted one would.

Masks hold class ids 0..classes-1 per pixel and 255 for pixels to ignore (loss and mIoU).
"""

import dataclasses
import os
from typing import Callable, Optional, Tuple

import numpy as np
import tensorflow as tf

from mobilenet_v3.data import sampling
from mobilenet_v3.data.pipeline import eval_steps, positioned_examples
from mobilenet_v3.data.preprocessing import decode_image, to_unit_range
from mobilenet_v3.segmentation import synthetic

SOURCES = ("synthetic", "mask_folder", "cityscapes")
IGNORE = 255
IMAGES_DIR, MASKS_DIR = "images", "masks"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
SYNTHETIC_CLASSES = ("background", "rectangle", "ellipse", "triangle", "diamond")

# Cityscapes labelIds -> trainIds (cityscapesScripts labels.py); everything else is ignored.
CITYSCAPES_TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
                        23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
CITYSCAPES_CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
                      "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
                      "truck", "bus", "train", "motorcycle", "bicycle")


class MaskError(ValueError):
    """A segmentation folder that cannot be used: the message names the file and the reason."""


SCALE_OF = ("crop", "original")


@dataclasses.dataclass
class SegmentationDataConfig:
    source: str = "synthetic"
    image_size: int = 128                 # training crop (square) and evaluation size
    seed: int = 0
    num_classes: Optional[int] = None     # synthetic: default 4; folder: default max id + 1
    synthetic_train_examples: int = 2048
    synthetic_eval_examples: int = 128
    synthetic_image_size: Optional[int] = None   # default: image_size
    mask_folder: Optional[str] = None     # <root>/images/*.jpg|png + <root>/masks/*.png
    held_out_fraction: float = 0.1
    data_dir: Optional[str] = None        # cityscapes: tfds data_dir
    manual_dir: Optional[str] = None      # cityscapes: leftImg8bit/gtFine_trainvaltest.zip
    min_scale: float = 0.5                # DeepLab's random scale range
    max_scale: float = 2.0
    scale_step: float = 0.0               # DeepLab's scale_factor_step_size (0: uniform)
    scale_of: str = "crop"                # 'original': DeepLab's (image x s); 'crop': see augment
    class_list: Optional[str] = None      # mask_folder: class names, one a line, id order
    shuffle_buffer: int = 100

    def validate(self):
        if self.source not in SOURCES:
            raise ValueError(f"unknown segmentation data source {self.source!r}; choose from "
                             f"{SOURCES}")
        if self.image_size < 32:
            raise ValueError(f"image_size must be >= 32, got {self.image_size}")
        if self.source == "mask_folder" and not self.mask_folder:
            raise ValueError("--dataset=mask_folder needs --mask_folder=<root> (holding "
                             f"{IMAGES_DIR}/ and {MASKS_DIR}/)")
        if self.num_classes is not None and not 2 <= self.num_classes < IGNORE:
            raise ValueError(f"num_classes must be in [2, {IGNORE}), got {self.num_classes}")
        if self.source == "cityscapes" and self.num_classes not in (None, 19):
            raise ValueError("cityscapes has 19 training classes; leave --num_classes unset")
        if not 0 < self.min_scale <= self.max_scale:
            raise ValueError(f"scales must satisfy 0 < min_scale <= max_scale, got "
                             f"{self.min_scale}, {self.max_scale}")
        if self.scale_step < 0 or self.scale_of not in SCALE_OF:
            raise ValueError(f"scale_step must be >= 0 and scale_of one of {SCALE_OF}, got "
                             f"{self.scale_step}, {self.scale_of!r}")


@dataclasses.dataclass
class SegmentationSource:
    """`train_element(index)` / `eval_examples()` give (uint8 image [H, W, 3], uint8 mask
    [H, W]); streamed sources give `train_stream(seed, input_context)` instead."""
    name: str
    class_names: Tuple[str, ...]
    num_train: int
    num_eval: int
    eval_examples: Callable[[], tf.data.Dataset]
    train_element: Optional[Callable] = None
    train_stream: Optional[Callable] = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


# ---- the image + mask folder ---------------------------------------------------------------
def read_mask_folder(root: str, num_classes: Optional[int] = None):
    """(image files, mask files, classes, largest id) from <root>/images and <root>/masks: a
    missing mask, a mask whose size differs from its image, or a class id >= classes that is
    not 255 is a MaskError naming the file."""
    from PIL import Image
    images_dir, masks_dir = os.path.join(root, IMAGES_DIR), os.path.join(root, MASKS_DIR)
    for d in (images_dir, masks_dir):
        if not os.path.isdir(d):
            raise MaskError(f"{d!r} not found; a segmentation folder holds {IMAGES_DIR}/"
                            f"(*.jpg|*.png) and {MASKS_DIR}/ (*.png with the same names)")
    images = sorted(f for f in os.listdir(images_dir)
                    if f.lower().endswith(IMAGE_EXTENSIONS))
    if not images:
        raise MaskError(f"{images_dir!r} holds no .jpg/.png images")
    image_files, mask_files, largest = [], [], 0
    for name in images:
        image_path = os.path.join(images_dir, name)
        mask_path = os.path.join(masks_dir, os.path.splitext(name)[0] + ".png")
        if not os.path.isfile(mask_path):
            raise MaskError(f"no mask for {image_path!r}: expected {mask_path!r}")
        try:
            with Image.open(image_path) as im:
                image_size = im.size
            with Image.open(mask_path) as m:
                mode, mask = m.mode, np.asarray(m)
        except OSError as e:
            raise MaskError(f"cannot read {image_path!r} or its mask ({e})") from None
        if mode != "L":
            raise MaskError(f"{mask_path!r}: a mask must be an 8-bit single-channel PNG whose "
                            f"pixel values are class ids (PIL mode 'L'), got mode {mode!r}; "
                            "e.g. Image.fromarray(ids.astype(np.uint8)).save(path)")
        if (mask.shape[1], mask.shape[0]) != image_size:
            raise MaskError(f"{mask_path!r} is {mask.shape[1]}x{mask.shape[0]} but its image "
                            f"{image_path!r} is {image_size[0]}x{image_size[1]} (width x height)")
        ids = np.unique(mask)
        ids = ids[ids != IGNORE]
        if num_classes is not None and ids.size and ids.max() >= num_classes:
            bad = sorted(int(i) for i in ids if i >= num_classes)
            raise MaskError(f"{mask_path!r} holds class id(s) {bad[:5]} >= num_classes "
                            f"{num_classes}; ids must be 0..{num_classes - 1}, or {IGNORE} "
                            "to ignore a pixel")
        largest = max(largest, int(ids.max()) if ids.size else 0)
        image_files.append(image_path)
        mask_files.append(mask_path)
    classes = num_classes if num_classes is not None else max(largest + 1, 2)
    if classes >= IGNORE:
        raise MaskError(f"{root!r}: class ids reach {largest}; at most {IGNORE - 1} classes")
    return image_files, mask_files, classes, largest


def _decode_mask(encoded):
    mask = tf.io.decode_png(encoded, channels=1)
    return mask[..., 0]


def folder_classes(config: SegmentationDataConfig):
    """(image files, mask files, class names) of a mask folder. Names come from class_list
    (its length is the class count); without it they are class_0.., and --num_classes beyond
    the ids the masks hold is refused: those classes would never be seen, only predicted."""
    from mobilenet_v3.data.image_folder import read_class_list
    names = read_class_list(config.class_list) if config.class_list else None
    if names is not None and config.num_classes is not None and \
            config.num_classes != len(names):
        raise MaskError(f"--num_classes={config.num_classes} but --class_list "
                        f"{config.class_list!r} names {len(names)} classes")
    wanted = len(names) if names is not None else config.num_classes
    images, masks, classes, largest = read_mask_folder(config.mask_folder, wanted)
    if names is None and config.num_classes is not None:
        found = largest + 1
        if found < config.num_classes:
            raise MaskError(
                f"{config.mask_folder!r}: --num_classes={config.num_classes}, but its masks "
                f"hold ids up to {found - 1} only: class(es) {found}..{config.num_classes - 1} "
                f"would never be trained. Leave --num_classes unset ({max(found, 2)} classes), "
                "or name every class with --class_list")
    names = names if names is not None else tuple(f"class_{i}" for i in range(classes))
    return images, masks, names


def _folder_source(config: SegmentationDataConfig) -> SegmentationSource:
    images, masks, names = folder_classes(config)
    held, train = sampling.held_out_split(len(images), config.held_out_fraction, config.seed,
                                          MaskError, config.mask_folder)
    t_images = tf.constant([images[i] for i in train])
    t_masks = tf.constant([masks[i] for i in train])

    def read(image_file, mask_file):
        return (decode_image(tf.io.read_file(image_file)),
                _decode_mask(tf.io.read_file(mask_file)))

    def train_element(index):
        return read(tf.gather(t_images, index), tf.gather(t_masks, index))

    def eval_examples():
        return tf.data.Dataset.from_tensor_slices(
            ([images[i] for i in held], [masks[i] for i in held])).map(read)
    return SegmentationSource("mask_folder", names, len(train), len(held), eval_examples,
                              train_element=train_element)


# ---- tfds cityscapes -----------------------------------------------------------------------
def cityscapes_train_ids(label_ids):
    """labelIds (0..33, anything else) -> trainIds 0..18, 255 elsewhere."""
    table = np.full(256, IGNORE, np.uint8)
    for label_id, train_id in CITYSCAPES_TRAIN_IDS.items():
        table[label_id] = train_id
    return tf.gather(tf.constant(table), tf.cast(label_ids, tf.int32))


def _cityscapes_builder(config: SegmentationDataConfig):
    import tensorflow_datasets as tfds
    from mobilenet_v3.data.imagenet import DatasetNotPreparedError
    b = tfds.builder("cityscapes/semantic_segmentation", data_dir=config.data_dir)
    try:
        b.download_and_prepare(download_config=tfds.download.DownloadConfig(
            manual_dir=config.manual_dir))
    except Exception as e:  # no archives, or not prepared
        raise DatasetNotPreparedError(
            f"cityscapes is not prepared in data_dir {b.data_dir!r} ({type(e).__name__}: "
            f"{str(e)[:200]}). Put leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip "
            "(cityscapes-dataset.com, registration needed) in a folder and pass "
            "--manual_dir=FOLDER [--data_dir=DIR]") from e
    return b


def _cityscapes_examples(b, split: str, shuffle_seed=None, input_context=None):
    import tensorflow_datasets as tfds
    read_config = tfds.ReadConfig(shuffle_seed=shuffle_seed, input_context=input_context)
    ds = b.as_dataset(split=split, shuffle_files=shuffle_seed is not None,
                      read_config=read_config)
    return ds.map(lambda ex: (ex["image_left"],
                              cityscapes_train_ids(ex["segmentation_label"][..., 0])),
                  num_parallel_calls=tf.data.AUTOTUNE)


def _cityscapes_source(config: SegmentationDataConfig) -> SegmentationSource:
    b = _cityscapes_builder(config)

    def count(split):
        try:
            return b.info.splits[split].num_examples
        except KeyError:
            return 0
    return SegmentationSource(
        "cityscapes", CITYSCAPES_CLASSES, count("train"), count("validation"),
        eval_examples=lambda: _cityscapes_examples(b, "validation"),
        train_stream=lambda seed, ctx: _cityscapes_examples(b, "train", seed, ctx))


def open_source(config: SegmentationDataConfig) -> SegmentationSource:
    config.validate()
    if config.source == "synthetic":
        classes = config.num_classes or 4
        size = config.synthetic_image_size or config.image_size
        names = ("background",) + tuple(
            f"{SYNTHETIC_CLASSES[1 + (k % 4)]}_{k + 1}" for k in range(classes - 1))

        def element(index):
            return synthetic.make_example(index, config.seed, classes, size)

        def eval_examples():
            first = config.synthetic_train_examples
            return tf.data.Dataset.range(first, first + config.synthetic_eval_examples).map(
                element)
        return SegmentationSource("synthetic", names, config.synthetic_train_examples,
                                  config.synthetic_eval_examples, eval_examples,
                                  train_element=element)
    if config.source == "mask_folder":
        return _folder_source(config)
    return _cityscapes_source(config)


# ---- augmentation --------------------------------------------------------------------------
def augment(image, mask, seed, size: int, min_scale: float = 0.5, max_scale: float = 2.0,
            scale_step: float = 0.0, scale_of: str = "crop"):
    """DeepLab's training preprocessing with stateless seeds: scale the image (bilinear) and
    the mask (nearest) by a random factor s in [min, max] (uniform, or one of min, min + step,
    ..., max as DeepLab's scale_factor_step_size), of the original image (`scale_of`
    'original', DeepLab's input_preprocess) or so that the shorter side is `size` x s
    ('crop'), pad to at least size x size at the bottom / right (image with the mean grey,
    mask with 255), random size x size crop, random horizontal flip.
    Returns ([-1, 1] image [size, size, 3], int32 mask [size, size])."""
    seed = tf.cast(seed, tf.int64)
    hw = tf.cast(tf.shape(image)[:2], tf.float32)
    if scale_step > 0:
        count = int((max_scale - min_scale) / scale_step + 1e-6) + 1
        pick = tf.random.stateless_uniform([], seed=seed, maxval=count, dtype=tf.int32)
        scale = min_scale + scale_step * tf.cast(pick, tf.float32)
    else:
        scale = tf.random.stateless_uniform([], seed=seed, minval=min_scale, maxval=max_scale)
    reference = 1.0 if scale_of == "original" else size / tf.reduce_min(hw)
    new = tf.maximum(tf.cast(tf.round(hw * scale * reference), tf.int32), 1)
    image = tf.image.resize(tf.cast(image, tf.float32), new, method="bilinear")
    mask = tf.image.resize(tf.cast(mask, tf.int32)[..., None], new, method="nearest")[..., 0]
    pad_h, pad_w = tf.maximum(size - new[0], 0), tf.maximum(size - new[1], 0)
    image = tf.pad(image - 127.5, [[0, pad_h], [0, pad_w], [0, 0]]) + 127.5
    mask = tf.pad(mask, [[0, pad_h], [0, pad_w]], constant_values=IGNORE)
    h, w = new[0] + pad_h, new[1] + pad_w
    u = tf.random.stateless_uniform([2], seed=seed + 1)
    top = tf.cast(tf.floor(u[0] * tf.cast(h - size + 1, tf.float32)), tf.int32)
    left = tf.cast(tf.floor(u[1] * tf.cast(w - size + 1, tf.float32)), tf.int32)
    image = image[top:top + size, left:left + size]
    mask = mask[top:top + size, left:left + size]
    flip = tf.random.stateless_uniform([], seed=seed + 2) < 0.5
    image = tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)
    mask = tf.cond(flip, lambda: tf.reverse(mask, [1]), lambda: mask)
    image = to_unit_range(tf.clip_by_value(image, 0.0, 255.0))
    return tf.ensure_shape(image, [size, size, 3]), tf.ensure_shape(mask, [size, size])


def eval_preprocess(image, mask, size: int):
    """The whole image resized to size x size (bilinear; the mask nearest), [-1, 1] pixels."""
    image = tf.image.resize(tf.cast(image, tf.float32), (size, size), method="bilinear")
    mask = tf.image.resize(tf.cast(mask, tf.int32)[..., None], (size, size),
                           method="nearest")[..., 0]
    return to_unit_range(tf.clip_by_value(image, 0.0, 255.0)), mask


def train_dataset(source: SegmentationSource, config: SegmentationDataConfig,
                  global_batch_size: int, input_context: tf.distribute.InputContext,
                  start_step: int = 0) -> tf.data.Dataset:
    """Endless per-replica batches of (images, masks, skipped) from `start_step`."""
    per_replica = input_context.get_per_replica_batch_size(global_batch_size)
    seed, size = config.seed, config.image_size
    ds = positioned_examples(source, seed, config.shuffle_buffer, global_batch_size,
                             input_context, start_step)

    def prepare(image, mask, position, skipped):
        image, mask = augment(image, mask, tf.stack([tf.constant(seed, tf.int64), position]),
                              size, config.min_scale, config.max_scale, config.scale_step,
                              config.scale_of)
        return image, mask, skipped
    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(per_replica, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def eval_dataset(source: SegmentationSource, config: SegmentationDataConfig,
                 global_batch_size: int, input_context: tf.distribute.InputContext):
    """One pass of per-replica batches of (images, masks, real); padding examples are all
    ignore (255) and real = 0."""
    num_pipelines = input_context.num_input_pipelines
    per_replica = input_context.get_per_replica_batch_size(global_batch_size)
    replicas_per_pipeline = input_context.num_replicas_in_sync // num_pipelines
    total = eval_steps(source.num_eval, global_batch_size) * per_replica * replicas_per_pipeline
    size = config.image_size
    ds = source.eval_examples().shard(num_pipelines, input_context.input_pipeline_id)
    ds = ds.map(lambda image, mask: eval_preprocess(image, mask, size) + (1.0,),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.ignore_errors(log_warning=True)
    padding = tf.data.Dataset.from_tensors((tf.zeros([size, size, 3]),
                                            tf.fill([size, size], IGNORE), 0.0))
    ds = ds.concatenate(padding.repeat()).take(total)
    return ds.batch(per_replica, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
