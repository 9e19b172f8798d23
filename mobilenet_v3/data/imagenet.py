"""ImageNet (ILSVRC 2012) through tensorflow-datasets' `imagenet2012` builder.

ImageNet cannot be downloaded automatically: users place ILSVRC2012_img_train.tar and
ILSVRC2012_img_val.tar in a manual_dir and tfds prepares TFRecords from them once (hours for
the real archives). A missing or empty manual_dir is reported with exactly these steps.

Label conventions: tfds labels are 0..999. The 1001-class convention of TF-Slim / the
paper's checkpoints reserves class 0 for "background", so labels are shifted by one.
"""

import os
from typing import Optional

import tensorflow as tf
import tensorflow_datasets as tfds

NAME = "imagenet2012"
SPLITS = {"train": "train", "validation": "validation"}

PREPARE_HELP = """ImageNet must be prepared once from the original archives:
  1. Download ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from
     https://image-net.org/download-images (free registration).
  2. Put both files in one folder and pass it as --manual_dir (tfds' manual_dir).
  3. The first run converts them into TFRecords under --data_dir (takes hours, ~150 GB).
Already prepared data is read from --data_dir without the archives."""


class DatasetNotPreparedError(FileNotFoundError):
    pass


def label_offset(num_classes: int) -> int:
    """0 for 1000 classes, 1 for the 1001-class (background = 0) convention."""
    if num_classes not in (1000, 1001):
        raise ValueError(f"ImageNet has 1000 classes (or 1001 with background), got "
                         f"{num_classes}")
    return num_classes - 1000


def builder(data_dir: Optional[str], manual_dir: Optional[str] = None):
    """The imagenet2012 builder, prepared from `manual_dir` if not prepared yet.

    download_and_prepare is a no-op for prepared data (and under tfds.testing.mock_data).
    """
    b = tfds.builder(NAME, data_dir=data_dir)
    archives = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
    has_archives = bool(manual_dir) and any(
        os.path.exists(os.path.join(manual_dir, a)) for a in archives)
    try:
        b.download_and_prepare(download_config=tfds.download.DownloadConfig(
            manual_dir=manual_dir if has_archives else None))
    except Exception as e:  # tfds raises AssertionError or its own errors here
        if has_archives:
            raise
        where = (f"manual_dir {manual_dir!r} has neither {' nor '.join(archives)}"
                 if manual_dir else "no manual_dir was given")
        raise DatasetNotPreparedError(
            f"imagenet2012 is not prepared in data_dir {b.data_dir!r} and {where}.\n"
            + PREPARE_HELP) from e
    return b


def num_examples(b, split: str) -> int:
    """From the dataset info; counted when the info has none (tfds.testing.mock_data)."""
    try:
        count = b.info.splits[SPLITS[split]].num_examples
    except KeyError:
        count = 0
    if count:
        return count
    ds = b.as_dataset(split=SPLITS[split], decoders={"image": tfds.decode.SkipDecoding()})
    return int(ds.reduce(0, lambda n, _: n + 1))


def examples(b, split: str, num_classes: int, shuffle_seed: Optional[int] = None,
             input_context: Optional[tf.distribute.InputContext] = None) -> tf.data.Dataset:
    """(uint8 image, int32 label) pairs of `split`; files shuffled when a seed is given.

    With an input context each input pipeline reads its own shard of the files.
    """
    offset = label_offset(num_classes)
    read_config = tfds.ReadConfig(shuffle_seed=shuffle_seed, input_context=input_context,
                                  interleave_cycle_length=16)
    ds = b.as_dataset(split=SPLITS[split], shuffle_files=shuffle_seed is not None,
                      read_config=read_config, decoders={"image": tfds.decode.SkipDecoding()})
    return ds.map(lambda ex: (ex["image"], tf.cast(ex["label"], tf.int32) + offset),
                  num_parallel_calls=tf.data.AUTOTUNE)
