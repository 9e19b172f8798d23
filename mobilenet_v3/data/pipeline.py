"""Training and evaluation input pipelines over the three sources, for tf.distribute.

Training order is a pure function of (seed, global example position): position p of the run
reads example index_shuffle(p mod N, seed=(seed, epoch)) and augments it with seed (seed, p).
A run resumed at step s therefore starts at position s * global_batch and sees exactly the
batches an uninterrupted run would have seen (for the ImageNet stream: a fresh shuffle).
Input pipeline w of W reads positions p = w (mod W), so the global batch of every step is made
of the same examples however many workers there are.

Every training element carries `skipped`: how many unreadable files tf.data dropped just
before it (found from the gap in positions), so the trainer can count them in its log.
"""

import dataclasses
import math
from typing import Callable, Optional, Tuple

import tensorflow as tf

from mobilenet_v3.data import image_folder, imagenet, preprocessing, sampling, synthetic
from mobilenet_v3.data.preprocessing import decode_image

SOURCES = ("synthetic", "image_folder", "imagenet")
_MAX_POSITION = 2 ** 62


@dataclasses.dataclass
class DataConfig:
    source: str = "synthetic"
    image_size: int = 224
    seed: int = 0
    min_crop_area: float = 0.08          # Inception crop: 8%-100% of the image
    # synthetic
    num_classes: int = 10                # synthetic only; other sources know their classes
    synthetic_train_examples: int = 10000
    synthetic_eval_examples: int = 1000
    # image folder
    image_folder: Optional[str] = None
    held_out_fraction: float = 0.1
    class_list: Optional[str] = None     # labels in this order; classes may lack images
    # imagenet (tfds)
    data_dir: Optional[str] = None
    manual_dir: Optional[str] = None
    imagenet_classes: int = 1000         # or 1001 (background = 0)
    shuffle_buffer: int = 10000

    def validate(self):
        if self.source not in SOURCES:
            raise ValueError(f"unknown data source {self.source!r}; choose from {SOURCES}")
        if self.image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {self.image_size}")
        if not 0.0 < self.min_crop_area <= 1.0:
            raise ValueError(f"min_crop_area must be in (0, 1], got {self.min_crop_area}")
        if self.source == "image_folder" and not self.image_folder:
            raise ValueError("source 'image_folder' needs image_folder=<root>")
        if self.source == "imagenet":
            imagenet.label_offset(self.imagenet_classes)


@dataclasses.dataclass
class Source:
    """What the pipelines need from a dataset.

    `train_element(index)` gives (uint8 image, label) for indexable sources; streamed sources
    (ImageNet through tfds) give `train_stream(seed, input_context)` instead.
    """
    name: str
    num_classes: int
    num_train: int
    num_eval: int
    eval_examples: Callable[[], tf.data.Dataset]
    train_element: Optional[Callable] = None
    train_stream: Optional[Callable] = None
    class_names: Optional[Tuple[str, ...]] = None


def open_source(config: DataConfig) -> Source:
    """Opens the configured dataset (scans folders, prepares tfds) with clear errors."""
    config.validate()
    if config.source == "synthetic":
        def train_element(index):
            return synthetic.make_example(index, config.seed, config.num_classes,
                                          config.image_size)
        return Source(
            "synthetic", config.num_classes, config.synthetic_train_examples,
            config.synthetic_eval_examples,
            eval_examples=lambda: synthetic.synthetic_dataset(
                config.synthetic_eval_examples, config.num_classes, config.image_size,
                seed=config.seed, offset=config.synthetic_train_examples),
            train_element=train_element,
            class_names=tuple(f"class_{i}" for i in range(config.num_classes)))
    if config.source == "image_folder":
        folder = image_folder.scan(config.image_folder, config.class_list)
        train, held_out = image_folder.split(folder, config.held_out_fraction, config.seed)
        if not train.files or not held_out.files:
            raise ValueError(f"{config.image_folder!r} has too few images for a "
                             f"{config.held_out_fraction:.0%} held-out split")
        image_folder.first_readable(train.files, "training")
        image_folder.first_readable(held_out.files, "held-out")
        files = tf.constant(train.files)
        labels = tf.constant(train.labels, tf.int32)

        def train_element(index):
            return image_folder.decode(tf.gather(files, index), tf.gather(labels, index))
        return Source("image_folder", len(folder.class_names), len(train.files),
                      len(held_out.files), eval_examples=lambda: image_folder.dataset(held_out),
                      train_element=train_element, class_names=folder.class_names)
    b = imagenet.builder(config.data_dir, config.manual_dir)

    def decoded(ds):
        return ds.map(lambda img, label: (decode_image(img), label),
                      num_parallel_calls=tf.data.AUTOTUNE)
    offset = imagenet.label_offset(config.imagenet_classes)
    names = tuple(b.info.features["label"].names)
    return Source(
        "imagenet", config.imagenet_classes, imagenet.num_examples(b, "train"),
        imagenet.num_examples(b, "validation"),
        eval_examples=lambda: decoded(imagenet.examples(b, "validation",
                                                        config.imagenet_classes)),
        train_stream=lambda seed, ctx: imagenet.examples(b, "train", config.imagenet_classes,
                                                         shuffle_seed=seed, input_context=ctx),
        class_names=("background",) * offset + names)


def _count_skipped(ds: tf.data.Dataset, first_position, stride: int) -> tf.data.Dataset:
    """(image, label, position) -> (image, label, position, files dropped just before it)."""
    def step(previous, element):
        image, label, position = element
        skipped = (position - previous) // stride - 1
        return position, (image, label, position, tf.cast(skipped, tf.int32))
    return ds.scan(tf.constant(first_position - stride, tf.int64), step)


def positioned_examples(source, seed: int, shuffle_buffer: int, global_batch_size: int,
                        input_context: tf.distribute.InputContext, start_step: int,
                        element_pair: Callable = lambda *e: e,
                        stream_pair: Callable = lambda ex: ex) -> tf.data.Dataset:
    """(a, b, position, skipped) from `start_step` on, for every task's training pipeline.

    Indexable sources read position p as index_shuffle(p mod N, (seed, epoch)); streamed ones
    shuffle a repeated stream. `element_pair` / `stream_pair` turn a source's example into the
    pair (a, b) (e.g. image and label; image and (boxes, classes)). Unreadable files are dropped
    and counted from the gap in positions.
    """
    num_pipelines = input_context.num_input_pipelines
    if source.train_element is not None:
        n = source.num_train
        first = start_step * global_batch_size + input_context.input_pipeline_id

        def read(position):
            index = sampling.shuffled_index(position % n, seed, position // n, n)
            return element_pair(*source.train_element(index)) + (position,)
        ds = tf.data.Dataset.range(first, _MAX_POSITION, num_pipelines)
        ds = ds.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        stride = num_pipelines
    else:
        stream = source.train_stream(seed + start_step, input_context).repeat()
        stream = stream.shuffle(shuffle_buffer, seed=seed + start_step)
        first, stride = start_step * global_batch_size, 1
        ds = stream.enumerate(first).map(lambda p, ex: tuple(stream_pair(ex)) + (p,),
                                         num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return _count_skipped(ds.ignore_errors(log_warning=True), first, stride)


def train_dataset(source: Source, config: DataConfig, global_batch_size: int,
                  input_context: tf.distribute.InputContext,
                  start_step: int = 0) -> tf.data.Dataset:
    """Endless per-replica batches of (images [-1, 1], labels, skipped) from `start_step`."""
    num_pipelines = input_context.num_input_pipelines
    per_replica = input_context.get_per_replica_batch_size(global_batch_size)
    if global_batch_size % num_pipelines:
        raise ValueError(f"global batch {global_batch_size} is not divisible by the "
                         f"{num_pipelines} input pipelines")
    area = (config.min_crop_area, 1.0)
    seed = config.seed

    def augment(image, label, position, skipped):
        image = preprocessing.train_preprocess(
            image, tf.stack([tf.constant(seed, tf.int64), position]), config.image_size,
            area_range=area)
        return image, label, skipped

    ds = positioned_examples(source, seed, config.shuffle_buffer, global_batch_size,
                             input_context, start_step,
                             stream_pair=lambda ex: (decode_image(ex[0]), ex[1]))
    ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(per_replica, drop_remainder=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def eval_steps(num_examples: int, global_batch_size: int) -> int:
    """Steps of one pass over the evaluation set (the last batch padded)."""
    return max(1, math.ceil(num_examples / global_batch_size))


def eval_dataset(source: Source, config: DataConfig, global_batch_size: int,
                 input_context: tf.distribute.InputContext) -> tf.data.Dataset:
    """One pass of per-replica batches of (images, labels) with padding labelled -1.

    Every input pipeline yields the same number of batches (eval_steps x its replicas), so
    the padded tail works with every strategy, TPUs included; padding is masked out by label.
    """
    num_pipelines = input_context.num_input_pipelines
    per_replica = input_context.get_per_replica_batch_size(global_batch_size)
    replicas_per_pipeline = input_context.num_replicas_in_sync // num_pipelines
    steps = eval_steps(source.num_eval,
                       global_batch_size)
    examples_per_pipeline = steps * per_replica * replicas_per_pipeline
    ds = source.eval_examples().shard(num_pipelines, input_context.input_pipeline_id)
    ds = ds.map(lambda image, label: (preprocessing.eval_preprocess(image, config.image_size),
                                      tf.cast(label, tf.int32)),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.ignore_errors(log_warning=True)
    padding = tf.data.Dataset.from_tensors(
        (tf.zeros([config.image_size, config.image_size, 3]), tf.constant(-1, tf.int32)))
    ds = ds.concatenate(padding.repeat()).take(examples_per_pipeline)
    return ds.batch(per_replica, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
