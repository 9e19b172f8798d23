"""Detection input pipelines: the synthetic set, a COCO-JSON folder of your own boxes, and
tfds coco/2017; SSD augmentation with stateless seeds; anchor targets built in tf.data.

Training order and augmentation follow data/pipeline.py: position p of the run reads example
index_shuffle(p mod N, seed=(seed, epoch)) and augments it with seed (seed, p), so a resumed
run sees exactly the batches an uninterrupted one would.

Boxes are normalised [ymin, xmin, ymax, xmax]; classes are class slots 1..K (0 = background /
padding), each image's boxes padded to the source's `max_boxes`.
"""

import dataclasses
import json
import os
import sys
from typing import Callable, Optional, Tuple

import numpy as np
import tensorflow as tf

from mobilenet_v3.data import sampling
from mobilenet_v3.data.pipeline import positioned_examples
from mobilenet_v3.data.preprocessing import decode_image, to_unit_range
from mobilenet_v3.detection import boxes as box_lib, coco_categories, synthetic

SOURCES = ("synthetic", "coco_json", "coco")
ANNOTATIONS_FILE = "annotations.json"
IMAGES_DIR = "images"
COCO_MAX_BOXES = 100


class AnnotationError(ValueError):
    """A detection folder whose annotations cannot be used: the message says where and why."""


@dataclasses.dataclass
class DetectionDataConfig:
    source: str = "synthetic"
    image_size: int = 320
    seed: int = 0
    num_classes: int = 3                  # synthetic only
    synthetic_train_examples: int = 4096
    synthetic_eval_examples: int = 256
    detection_folder: Optional[str] = None   # coco_json: <root>/annotations.json + images/
    held_out_fraction: float = 0.1
    val_json: Optional[str] = None        # coco_json: evaluate on this COCO JSON instead
    val_images: Optional[str] = None      # ... whose images are here (default: the folder's)
    data_dir: Optional[str] = None        # coco: tfds data_dir
    download: bool = False                # coco: download and prepare when not prepared
    manual_dir: Optional[str] = None
    shuffle_buffer: int = 1000

    def validate(self):
        if self.source not in SOURCES:
            raise ValueError(f"unknown detection data source {self.source!r}; choose from "
                             f"{SOURCES}")
        if self.image_size < 32:
            raise ValueError(f"image_size must be >= 32 for detection, got {self.image_size}")
        if self.source == "coco_json" and not self.detection_folder:
            raise ValueError("--dataset=coco_json needs --detection_folder=<root> (holding "
                             f"{ANNOTATIONS_FILE} and {IMAGES_DIR}/)")
        if (self.val_json or self.val_images) and self.source != "coco_json":
            raise ValueError("--detection_val_json / --detection_val_images need "
                             "--dataset=coco_json")
        if self.val_images and not self.val_json:
            raise ValueError("--detection_val_images needs --detection_val_json")
        if self.source == "synthetic" and self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")


@dataclasses.dataclass
class DetectionSource:
    """`train_element(index)` / `eval_examples()` give (uint8 image, boxes [max_boxes, 4],
    classes [max_boxes]) (+ image id and original size for evaluation)."""
    name: str
    class_names: Tuple[str, ...]          # foreground classes; slot k+1 is class_names[k]
    num_train: int
    num_eval: int
    max_boxes: int
    eval_examples: Callable[[], tf.data.Dataset]
    train_element: Optional[Callable] = None
    train_stream: Optional[Callable] = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _pad(boxes, classes, max_boxes: int):
    boxes, classes = boxes[:max_boxes], classes[:max_boxes]
    n = tf.shape(classes)[0]
    boxes = tf.pad(tf.reshape(tf.cast(boxes, tf.float32), [-1, 4]), [[0, max_boxes - n], [0, 0]])
    classes = tf.pad(tf.cast(classes, tf.int32), [[0, max_boxes - n]])
    return tf.ensure_shape(boxes, [max_boxes, 4]), tf.ensure_shape(classes, [max_boxes])


# ---- the COCO-JSON folder ------------------------------------------------------------------
def read_annotations(root: str):
    """(files, boxes [n, max, 4], classes [n, max], image ids, class names) from
    <root>/annotations.json, checked: every error names the file and the entry."""
    path = os.path.join(root, ANNOTATIONS_FILE)
    if not os.path.isfile(path):
        raise AnnotationError(f"{path!r} not found; a detection folder holds "
                              f"{ANNOTATIONS_FILE} (COCO format) and {IMAGES_DIR}/")
    return read_coco_json(path, os.path.join(root, IMAGES_DIR))


def read_coco_json(path: str, images_dir: str):
    """read_annotations of any COCO JSON whose file_names are in `images_dir`."""
    if not os.path.isfile(path):
        raise AnnotationError(f"{path!r} not found (a COCO-format annotation file)")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AnnotationError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or not all(
            isinstance(data.get(k), list) for k in ("images", "annotations", "categories")):
        raise AnnotationError(f"{path}: expected an object with lists 'images', "
                              "'annotations' and 'categories' (COCO format)")
    try:
        categories = sorted((int(c["id"]), str(c["name"])) for c in data["categories"])
        images = {int(im["id"]): (str(im["file_name"]), float(im["width"]),
                                  float(im["height"])) for im in data["images"]}
    except (KeyError, TypeError, ValueError) as e:
        raise AnnotationError(f"{path}: malformed image or category entry ({e!r}); images "
                              "need id, file_name, width, height; categories id, name") from None
    if not categories:
        raise AnnotationError(f"{path}: no categories")
    slot = {cid: k + 1 for k, (cid, _) in enumerate(categories)}
    per_image = {i: [] for i in images}
    for n, ann in enumerate(data["annotations"]):
        where = f"{path}: annotation #{n} (id {ann.get('id') if isinstance(ann, dict) else '?'})"
        try:
            image_id, cid = int(ann["image_id"]), int(ann["category_id"])
            x, y, w, h = (float(v) for v in ann["bbox"])
        except (KeyError, TypeError, ValueError) as e:
            raise AnnotationError(f"{where}: needs image_id, category_id and bbox [x, y, "
                                  f"width, height] ({e!r})") from None
        if image_id not in images:
            raise AnnotationError(f"{where}: unknown image_id {image_id}")
        if cid not in slot:
            raise AnnotationError(f"{where}: unknown category_id {cid}; categories are "
                                  f"{sorted(slot)}")
        name, width, height = images[image_id]
        if w <= 0 or h <= 0 or x < -0.5 or y < -0.5 or x + w > width + 0.5 \
                or y + h > height + 0.5:
            raise AnnotationError(f"{where}: box [x={x}, y={y}, w={w}, h={h}] is empty or "
                                  f"outside image {name!r} ({width:g}x{height:g})")
        if ann.get("iscrowd"):
            continue
        per_image[image_id].append(([max(y, 0) / height, max(x, 0) / width,
                                     min(y + h, height) / height, min(x + w, width) / width],
                                    slot[cid]))
    ids = sorted(per_image)
    if not ids:
        raise AnnotationError(f"{path}: no images")
    if not any(per_image.values()):
        raise AnnotationError(f"{path}: no boxes (no annotation, or only crowd regions): "
                              "nothing to train on or to score against")
    max_boxes = max(1, min(COCO_MAX_BOXES, max(len(v) for v in per_image.values())))
    boxes = np.zeros((len(ids), max_boxes, 4), np.float32)
    classes = np.zeros((len(ids), max_boxes), np.int32)
    for r, i in enumerate(ids):
        for k, (b, c) in enumerate(per_image[i][:max_boxes]):
            boxes[r, k], classes[r, k] = b, c
    files = [os.path.join(images_dir, images[i][0]) for i in ids]
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise AnnotationError(f"{path}: {len(missing)} image file(s) not found, e.g. "
                              f"{missing[0]!r}")
    readable = check_images(path, files, [images[i][1:] for i in ids])
    keep = np.flatnonzero(readable)
    return ([files[k] for k in keep], boxes[keep], classes[keep], np.array(ids, np.int64)[keep],
            tuple(n for _, n in categories))


def check_images(path: str, files, sizes) -> np.ndarray:
    """Which files decode (their headers, read with PIL); the unreadable ones are named and
    counted on stderr and left out, and none readable is an error. A readable file whose size
    is not the annotation's width x height is an error: its boxes would be normalised by the
    wrong size (e.g. a photo rotated by its EXIF orientation after it was annotated)."""
    from PIL import Image
    readable = np.zeros(len(files), bool)
    wrong = []
    for k, (file, (width, height)) in enumerate(zip(files, sizes)):
        try:
            with Image.open(file) as image:
                found = image.size
        except (OSError, SyntaxError, ValueError):
            continue
        readable[k] = True
        if (int(round(width)), int(round(height))) != tuple(found):
            wrong.append((file, width, height, found))
    if not readable.any():
        raise AnnotationError(f"{path}: none of its {len(files)} images is readable (e.g. "
                              f"{files[0]!r} is not a JPEG/PNG image)")
    if wrong:
        file, width, height, (w, h) = wrong[0]
        raise AnnotationError(
            f"{path}: {len(wrong)} image(s) are not the size the annotations give, e.g. "
            f"{file!r} is {w}x{h} but its entry says {width:g}x{height:g}"
            + (" (rotated: an EXIF orientation applied after annotation?)"
               if (w, h) == (int(round(height)), int(round(width))) else ""))
    bad = [f for f, ok in zip(files, readable) if not ok]
    if bad:
        print(f"warning: {path}: {len(bad)} of {len(files)} images are unreadable and left "
              f"out: {', '.join(os.path.basename(f) for f in bad[:5])}"
              + (" ..." if len(bad) > 5 else ""), file=sys.stderr, flush=True)
    return readable


def _with_validation_json(config: DetectionDataConfig, files, boxes, classes, ids, names):
    """The folder's images all train; --detection_val_json's are the held-out split."""
    images = config.val_images or os.path.join(config.detection_folder, IMAGES_DIR)
    v_files, v_boxes, v_classes, v_ids, v_names = read_coco_json(config.val_json, images)
    if v_names != names:
        raise AnnotationError(f"{config.val_json}: its categories {list(v_names)[:5]}... are "
                              f"not those of {config.detection_folder!r} "
                              f"({list(names)[:5]}...): a model trains and scores on one list")
    m = max(boxes.shape[1], v_boxes.shape[1])

    def pad(a):           # to m boxes an image
        return np.pad(a, [(0, 0), (0, m - a.shape[1])] + [(0, 0)] * (a.ndim - 2))
    files = list(files) + list(v_files)
    boxes = np.concatenate([pad(boxes), pad(v_boxes)])
    classes = np.concatenate([pad(classes), pad(v_classes)])
    ids = np.concatenate([ids, v_ids])
    n = len(files) - len(v_files)
    return files, boxes, classes, ids, np.arange(n, len(files)), np.arange(n)


def _folder_source(config: DetectionDataConfig) -> DetectionSource:
    files, boxes, classes, ids, names = read_annotations(config.detection_folder)
    if config.val_json:
        files, boxes, classes, ids, held, train = _with_validation_json(
            config, files, boxes, classes, ids, names)
        train = np.random.RandomState(config.seed).permutation(train)
    else:
        held, train = sampling.held_out_split(len(files), config.held_out_fraction,
                                              config.seed, AnnotationError,
                                              config.detection_folder)

    def tensors(rows):
        return (tf.constant([files[r] for r in rows]), tf.constant(boxes[rows]),
                tf.constant(classes[rows]), tf.constant(ids[rows]))
    t_files, t_boxes, t_classes, _ = tensors(train)

    def train_element(index):
        image = decode_image(tf.io.read_file(tf.gather(t_files, index)))
        return image, tf.gather(t_boxes, index), tf.gather(t_classes, index)

    def eval_examples():
        def read(f, b, c, i):
            image = decode_image(tf.io.read_file(f))
            return image, b, c, i
        return tf.data.Dataset.from_tensor_slices(tensors(held)).map(read)
    return DetectionSource("coco_json", names, len(train), len(held), boxes.shape[1],
                           eval_examples, train_element=train_element)


# ---- tfds coco/2017 ------------------------------------------------------------------------
def _coco_builder(config: DetectionDataConfig):
    import tensorflow_datasets as tfds
    from mobilenet_v3.data.imagenet import DatasetNotPreparedError
    b = tfds.builder("coco/2017", data_dir=config.data_dir)
    if not config.download and not b.is_prepared():
        raise DatasetNotPreparedError(
            f"coco/2017 is not prepared in data_dir {b.data_dir!r}. Prepare it once "
            "(`tfds build coco/2017 --data_dir=DIR`, ~40 GB) and pass --data_dir=DIR, or pass "
            "--download_data to let train.py download and prepare it")
    try:
        b.download_and_prepare(download_config=tfds.download.DownloadConfig(
            manual_dir=config.manual_dir))
    except Exception as e:  # offline, or not prepared
        raise DatasetNotPreparedError(
            f"coco/2017 is not prepared in data_dir {b.data_dir!r} ({type(e).__name__}). "
            "Prepare it once where the internet is reachable: `tfds build coco/2017 "
            "--data_dir=DIR`, then pass --data_dir=DIR") from e
    return b


def _coco_examples(b, split: str, shuffle_seed=None, input_context=None):
    import tensorflow_datasets as tfds
    read_config = tfds.ReadConfig(shuffle_seed=shuffle_seed, input_context=input_context)
    ds = b.as_dataset(split=split, shuffle_files=shuffle_seed is not None,
                      read_config=read_config)
    official = tf.constant(coco_categories.OFFICIAL_IDS, tf.int32)   # tfds 0..79 -> 1..90

    def convert(ex):
        objects = ex["objects"]
        keep = tf.logical_not(tf.cast(objects["is_crowd"], tf.bool))
        boxes = tf.boolean_mask(objects["bbox"], keep)
        classes = tf.gather(official, tf.boolean_mask(tf.cast(objects["label"], tf.int32), keep))
        boxes, classes = _pad(boxes, classes, COCO_MAX_BOXES)
        return ex["image"], boxes, classes, tf.cast(ex["image/id"], tf.int64)
    return ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE)


def _count(b, split):
    try:
        n = b.info.splits[split].num_examples
    except KeyError:
        n = 0
    if n:
        return n
    return int(b.as_dataset(split=split).reduce(0, lambda n, _: n + 1))


def _as_image(image):
    """Streamed sources give decoded uint8 images (tfds) or encoded bytes."""
    return decode_image(image) if image.dtype == tf.string else image


def _coco_source(config: DetectionDataConfig) -> DetectionSource:
    b = _coco_builder(config)
    # the OD API's 91 slots: slot k is category id k (ten ids unused, named "?")
    names = tuple(coco_categories.slot_labels(91)[1:])

    def decoded(ds):
        return ds.map(lambda img, bx, c, i: (_as_image(img), bx, c, i),
                      num_parallel_calls=tf.data.AUTOTUNE)
    return DetectionSource(
        "coco/2017", names, _count(b, "train"), _count(b, "validation"), COCO_MAX_BOXES,
        eval_examples=lambda: decoded(_coco_examples(b, "validation")),
        train_stream=lambda seed, ctx: _coco_examples(b, "train", seed, ctx))


def open_source(config: DetectionDataConfig) -> DetectionSource:
    config.validate()
    if config.source == "synthetic":
        names = tuple(f"{shape}_{k}" for k, shape in zip(
            range(config.num_classes),
            ["rectangle", "ellipse", "triangle", "diamond"] * config.num_classes))

        def element(index):
            return synthetic.make_example(index, config.seed, config.num_classes,
                                          config.image_size)

        def eval_examples():
            first = config.synthetic_train_examples
            return tf.data.Dataset.range(first, first + config.synthetic_eval_examples).map(
                lambda i: element(i) + (i,))
        return DetectionSource("synthetic", names, config.synthetic_train_examples,
                               config.synthetic_eval_examples, synthetic.MAX_OBJECTS,
                               eval_examples, train_element=element)
    if config.source == "coco_json":
        return _folder_source(config)
    return _coco_source(config)


# ---- augmentation and targets --------------------------------------------------------------
MIN_OBJECT_COVERED = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9)   # 0.0: keep the whole image


def augment(image, boxes, classes, seed, size: int):
    """SSD random crop (the crop covers >= a random fraction of some box; boxes whose centre
    leaves the crop are dropped, the rest clipped), horizontal flip, resize to size x size.
    Returns ([-1, 1] image, boxes, classes) with the same padding."""
    seed = tf.cast(seed, tf.int64)
    valid = classes > 0
    real = tf.boolean_mask(boxes, valid)
    choice = tf.random.stateless_uniform([], seed=seed, maxval=len(MIN_OBJECT_COVERED),
                                         dtype=tf.int32)
    covered = tf.gather(tf.constant(MIN_OBJECT_COVERED), choice)
    begin, crop_size, crop = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image), bounding_boxes=tf.reshape(real, [1, -1, 4]), seed=seed + 1,
        min_object_covered=covered, aspect_ratio_range=(0.5, 2.0), area_range=(0.1, 1.0),
        max_attempts=50, use_image_if_no_bounding_boxes=True)
    whole = tf.equal(choice, 0)
    begin = tf.where(whole, tf.zeros_like(begin), begin)
    crop_size = tf.where(whole, tf.shape(image), crop_size)
    crop = tf.where(whole, tf.constant([0.0, 0.0, 1.0, 1.0]), crop[0, 0])
    image = tf.slice(image, begin, crop_size)
    ch, cw = crop[2] - crop[0], crop[3] - crop[1]
    moved = (boxes - tf.stack([crop[0], crop[1], crop[0], crop[1]])) / tf.stack([ch, cw, ch, cw])
    cy, cx = (moved[:, 0] + moved[:, 2]) / 2, (moved[:, 1] + moved[:, 3]) / 2
    clipped = tf.clip_by_value(moved, 0.0, 1.0)
    keep = valid & (cy > 0) & (cy < 1) & (cx > 0) & (cx < 1) \
        & (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    boxes = tf.where(keep[:, None], clipped, 0.0)
    classes = tf.where(keep, classes, 0)
    flip = tf.random.stateless_uniform([], seed=seed + 2) < 0.5
    image = tf.cond(flip, lambda: tf.image.flip_left_right(image), lambda: image)
    flipped = tf.stack([boxes[:, 0], 1 - boxes[:, 3], boxes[:, 2], 1 - boxes[:, 1]], -1)
    boxes = tf.where(flip & keep[:, None], flipped, boxes)
    image = tf.image.resize(tf.cast(image, tf.float32), (size, size), method="bilinear")
    return to_unit_range(tf.clip_by_value(image, 0.0, 255.0)), boxes, classes


def eval_preprocess(image, size: int):
    """Resize the whole image (the OD API's fixed_shape_resizer), pixels to [-1, 1]."""
    image = tf.image.resize(tf.cast(image, tf.float32), (size, size), method="bilinear")
    return to_unit_range(tf.clip_by_value(image, 0.0, 255.0))


def train_dataset(source: DetectionSource, config: DetectionDataConfig, detector,
                  global_batch_size: int, input_context: tf.distribute.InputContext,
                  start_step: int = 0) -> tf.data.Dataset:
    """Endless per-replica batches of (images, class targets [B, N], box targets [B, N, 4],
    skipped) from `start_step`."""
    per_replica = input_context.get_per_replica_batch_size(global_batch_size)
    anchors = tf.constant(box_lib.anchors(detector))
    scales = detector.ssd.box_scales
    seed, size = config.seed, config.image_size

    def targets(image, boxes, classes, position, skipped):
        image, boxes, classes = augment(
            image, boxes, classes, tf.stack([tf.constant(seed, tf.int64), position]), size)
        cls, codes = box_lib.assign_targets(boxes, classes, anchors, scales)
        return image, cls, codes, skipped

    ds = positioned_examples(
        source, seed, config.shuffle_buffer, global_batch_size, input_context, start_step,
        element_pair=lambda image, boxes, classes: (image, (boxes, classes)),
        stream_pair=lambda ex: (_as_image(ex[0]), (ex[1], ex[2])))
    ds = ds.map(lambda image, bc, p, s: targets(image, bc[0], bc[1], p, s),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(per_replica, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def eval_dataset(source: DetectionSource, config: DetectionDataConfig,
                 global_batch_size: int, input_context: tf.distribute.InputContext):
    """One pass of per-replica batches of (images, boxes, classes, image ids, original
    (height, width)); padding examples have image id -1."""
    from mobilenet_v3.data.pipeline import eval_steps
    num_pipelines = input_context.num_input_pipelines
    per_replica = input_context.get_per_replica_batch_size(global_batch_size)
    replicas_per_pipeline = input_context.num_replicas_in_sync // num_pipelines
    total = eval_steps(source.num_eval, global_batch_size) * per_replica * replicas_per_pipeline
    size, m = config.image_size, source.max_boxes
    ds = source.eval_examples().shard(num_pipelines, input_context.input_pipeline_id)

    def prepare(image, boxes, classes, image_id):
        hw = tf.cast(tf.shape(image)[:2], tf.float32)
        boxes, classes = _pad(boxes, classes, m)
        return eval_preprocess(image, size), boxes, classes, tf.cast(image_id, tf.int64), hw
    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.ignore_errors(log_warning=True)
    padding = tf.data.Dataset.from_tensors((
        tf.zeros([size, size, 3]), tf.zeros([m, 4]), tf.zeros([m], tf.int32),
        tf.constant(-1, tf.int64), tf.ones([2])))
    ds = ds.concatenate(padding.repeat()).take(total)
    return ds.batch(per_replica, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
