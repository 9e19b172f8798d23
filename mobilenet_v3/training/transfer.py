"""Transfer learning: start a run from pretrained weights, the backbone optionally frozen.

`--init_weights` takes whatever the importer reads (official .tflite / .tgz / TF-Slim
checkpoint, keras.applications .h5) or one of this package's models (a `convert` folder or
train.py model_dir, a model.keras with model_config.json beside it). What is loaded:

  backbone (stem .. lastconv)  always; the file's architecture must be the run's
  head 1x1 conv (1280 / 1024)  when the file has a top (its shape does not depend on classes)
  logits                       only when the file's classes are the dataset's (1001 -> 1000
                               drops the background logit); otherwise new, for the dataset

Nothing depends on the resolution: the weights of a 224 file load into a run at any size.
TFLite files have BatchNorm folded into the convs: imported as identity BN, which training-mode
BN would turn into a per-channel standardisation the network never saw. Their BN statistics
are therefore re-estimated on a few training batches, with gamma and beta changed so that the
network computes exactly what the file does (`restandardize_batch_norm`).
Freezing sets `trainable=False` on the backbone's layers (Keras' transfer-learning recipe),
which also runs its BatchNorm in inference mode: statistics and weights stay as imported.
Detection and segmentation runs: the last section (`head_initializer`).
"""

import dataclasses
import os
from typing import Callable, Dict, Iterable, List, Optional

import numpy as np
import tensorflow as tf
import tf_keras

from mobilenet_v3.modeling import naming
from mobilenet_v3.modeling.config import ModelConfig
from mobilenet_v3.training import run_dir as run_dir_lib
from mobilenet_v3.weights import assign as assign_lib
from mobilenet_v3.weights import detect as detect_lib
from mobilenet_v3.weights import head_files
from mobilenet_v3.weights import loader
from mobilenet_v3.weights import plan as plan_lib
from mobilenet_v3.weights.errors import ArchitectureMismatchError, NotMobileNetV3Error, WeightsError
from mobilenet_v3.weights.source import BatchNormStats, Entry, SourceWeights

# ---- which layers are the backbone --------------------------------------------------------
def is_backbone_layer(layer) -> bool:
    """Stem, bottleneck rows and the last conv (what include_top=False keeps)."""
    row = naming.row_of(layer.name)
    return row in (naming.STEM, naming.LAST_CONV) or naming.is_bneck(row)


def backbone_layers(model: tf_keras.Model) -> List[tf_keras.layers.Layer]:
    return [layer for layer in model.layers if is_backbone_layer(layer)]


def set_backbone_trainable(model: tf_keras.Model, trainable: bool) -> None:
    """trainable=False freezes weights and puts the backbone's BatchNorm in inference mode."""
    for layer in backbone_layers(model):
        layer.trainable = trainable


# ---- reading the source -------------------------------------------------------------------
@dataclasses.dataclass
class InitSource:
    """The weights of an --init_weights file and the network they belong to."""
    weights: SourceWeights
    config: ModelConfig


def _is_our_model(path: str) -> bool:
    if os.path.isdir(path):
        return any(os.path.exists(os.path.join(path, name)) for name in (
            run_dir_lib.MODEL_FILE, run_dir_lib.CONFIG_FILE,
            os.path.join("final", run_dir_lib.MODEL_FILE)))
    return path.endswith(".keras") or (
        path.endswith((".h5", ".hdf5")) and os.path.exists(
            os.path.join(os.path.dirname(os.path.abspath(path)), run_dir_lib.MODEL_CONFIG_FILE)))


def weights_of_model(model: tf_keras.Model, config: ModelConfig, origin: str) -> SourceWeights:
    """One of this package's models as importer entries (BN exact, the SE +3 not folded)."""
    entries = []
    for b in plan_lib.bind(model, config):
        conv = b.conv
        kernel = (conv.depthwise_kernel if b.slot.kind == "depthwise" else conv.kernel).numpy()
        if b.bn is not None:
            stats = BatchNormStats(*[np.asarray(w.numpy(), np.float32) for w in (
                b.bn.gamma, b.bn.beta, b.bn.moving_mean, b.bn.moving_variance)],
                epsilon=float(b.bn.epsilon))
            entries.append(Entry(b.slot.kind, kernel, None, stats, conv.name))
        else:
            entries.append(Entry(b.slot.kind, kernel, conv.bias.numpy(), None, conv.name))
    return SourceWeights(entries=entries, origin=origin, fmt="mobilenet_v3", bn_folded=False)


def read_source(path: str, config: ModelConfig) -> InitSource:
    """Reads `path` and checks that its architecture is `config`'s; clear errors otherwise."""
    try:
        if _is_our_model(path):
            in_folder = os.path.join(path, run_dir_lib.MODEL_FILE)   # a convert folder
            trained = run_dir_lib.load_trained(in_folder if os.path.isfile(in_folder) else path)
            source = InitSource(weights_of_model(trained.model, trained.config, path),
                                trained.config)
        else:
            weights = loader.read_weights(path)
            found = detect_lib.detect(weights.shapes(), config.input_shape)
            if found is None:   # an alpha outside the published list: try the run's
                found = detect_lib.detect(weights.shapes(), config.input_shape, name=config.name,
                                          alpha=config.alpha, minimalistic=config.minimalistic)
            if found is None:
                raise NotMobileNetV3Error(
                    f"{path!r}: its {len(weights.entries)} conv layers match no MobileNetV3 "
                    f"variant, nor the run's {detect_lib.describe(config)}")
            source = InitSource(weights, found)
    except (WeightsError, run_dir_lib.RunFolderError) as e:
        raise type(e)(f"init_weights: {e}") from None
    check_architecture(source.config, config, path)
    return source


def check_architecture(found: ModelConfig, wanted: ModelConfig, origin: str) -> None:
    """Raises naming every backbone field (model, alpha, minimalistic) that differs."""
    fields = (("model", found.name, wanted.name), ("alpha", float(found.alpha),
                                                   float(wanted.alpha)),
              ("minimalistic", bool(found.minimalistic), bool(wanted.minimalistic)))
    differ = [f"--{flag}: the file has {a}, the run {b}" for flag, a, b in fields if a != b]
    if differ:
        raise ArchitectureMismatchError(
            f"init_weights {origin!r} holds {detect_lib.describe(found)}, but this run trains "
            f"{detect_lib.describe(wanted)}; " + "; ".join(differ)
            + ". Set --model/--alpha/--minimalistic to the file's")


# ---- loading it ----------------------------------------------------------------------------
def keeps_logits(source: ModelConfig, run: ModelConfig) -> bool:
    """The file's classifier is kept when it has the dataset's classes (1001 -> 1000 too)."""
    return bool(source.include_top and run.include_top and (
        source.classes == run.classes or (source.classes == 1001 and run.classes == 1000)))


def initialize(model: tf_keras.Model, config: ModelConfig, source: InitSource) -> Dict:
    """Writes the source's backbone (and head conv, and logits when the classes agree) into
    `model`, built from `config`; returns what was loaded."""
    bound = plan_lib.bind(model, config)
    slots = [b.slot for b in bound]
    if keeps_logits(source.config, config):
        entries = assign_lib.select_entries(source.weights, slots)
        count = len(slots)
    else:
        count = len(plan_lib.plan(config.replace(include_top=False)))
        count += 1 if source.config.include_top else 0       # the head conv
        entries = source.weights.entries[:count]
    if not detect_lib.fits([(e.shape, e.kind) for e in entries[:count]], slots[:count]):
        raise ArchitectureMismatchError(f"init_weights {source.weights.origin!r} does not fit "
                                        f"{detect_lib.describe(config)}")
    assign_lib.write(bound[:count], entries[:count], source.weights)
    loaded = "backbone" + (" + head conv" if source.config.include_top else "")
    kept = keeps_logits(source.config, config)
    return {"source": source.weights.origin, "format": source.weights.fmt,
            "bn_folded": source.weights.bn_folded, "layers": count,
            "loaded": loaded + (" + logits" if kept else ""),
            "new_logits": not kept, "classes": config.classes}


def restandardize_batch_norm(model: tf_keras.Model, layers, batches) -> int:
    """Sets the moving statistics of the BatchNorm layers among `layers` to those of their
    inputs over `batches` (inference mode), with gamma and beta changed so that the inference
    function stays exactly the same; training-mode BN then starts close to it. Returns the
    number of BN layers changed."""
    bns = [l for l in layers if isinstance(l, tf_keras.layers.BatchNormalization)]
    if not bns:
        return 0
    tap = tf_keras.Model(model.input, [bn.input for bn in bns])
    sums, squares, counts = [0.0] * len(bns), [0.0] * len(bns), [0] * len(bns)
    for images in batches:
        for i, x in enumerate(tap(images, training=False)):
            x = tf.cast(x, tf.float64)
            axes = list(range(len(x.shape) - 1))
            sums[i] += tf.reduce_sum(x, axes).numpy()
            squares[i] += tf.reduce_sum(x * x, axes).numpy()
            counts[i] += int(np.prod(x.shape[:-1]))
    if not counts[0]:
        raise ValueError("restandardize_batch_norm: no images")
    for bn, total, square, count in zip(bns, sums, squares, counts):
        mean = total / count
        var = np.maximum(square / count - mean ** 2, 0.0)
        gamma, beta, old_mean, old_var = [w.astype(np.float64) for w in bn.get_weights()]
        old_std, std = np.sqrt(old_var + bn.epsilon), np.sqrt(var + bn.epsilon)
        bn.set_weights([np.asarray(v, np.float32) for v in (
            gamma * std / old_std, beta + gamma * (mean - old_mean) / old_std, mean, var)])
    return len(bns)


def describe(summary: Dict) -> str:
    head = ("the file's logits kept" if not summary["new_logits"]
            else f"new logits for {summary['classes']} classes")
    restandardized = (f"; BN statistics of {summary['restandardized']} layers re-estimated on "
                      f"{summary['calibration_images']} training images"
                      if summary.get("restandardized") else "")
    return (f"initialized from {summary['source']} ({summary['format']}"
            f"{', BN folded' if summary['bn_folded'] else ''}): {summary['loaded']}, {head}"
            + restandardized)


# ---- detection and segmentation runs --------------------------------------------------------
# `--init_weights` of a detection or segmentation run.
#
# Two kinds of file start a detector or segmenter:
#
# * a whole detector / segmenter of the run's task (`weights/head_files`: the OD API's
#   SSDLite-MobileNetV3, DeepLab's LR-ASPP, our own runs): every tensor loads, the class layers
#   too when the run has the file's classes; otherwise they stay new, for the dataset's classes.
#   A tensor of another shape anywhere else is refused by name (the run's architecture or head
#   settings are not the file's).
# * a classification file (what a classification run's `--init_weights` takes: official .tflite
#   / .tgz / TF-Slim checkpoint, keras.applications .h5, our classifier runs): its backbone loads
#   into the run's backbone row by row. The rows the run changes have other shapes and stay as
#   built, and the log names them: the detector's reduced tail (paper 6.3: the channels between
#   C4 and C5 halved) and RF2's halved last stage. Output stride changes no shape. A BN-folded
#   file (TFLite) has its BN statistics re-estimated on training images, the function unchanged
#   (`transfer.restandardize_batch_norm`), as classification transfer learning does.

HEAD_CALIBRATION_BATCHES = 4     # batches of training images that re-estimate a folded BN


@dataclasses.dataclass
class HeadSource:
    path: str
    head: Optional[head_files.HeadFile] = None           # a whole detector / segmenter
    backbone: Optional[InitSource] = None                # a classification file


def our_head_file(path: str) -> head_files.HeadFile:
    """A detection / segmentation run (or convert folder) of this package as a head file."""
    from mobilenet_v3.weights import head_tensors
    trained = run_dir_lib.load_head_model(path, lambda flat: flat, lambda record: None)
    task = head_files.HEAD_TYPE_KIND[trained.config.get("head_type")]
    return head_files.HeadFile(head_files.OURS, task, path, "mobilenet_v3",
                               head_tensors.model_tensors(trained.model))


def read_head_source(path: str, task: str, backbone: ModelConfig) -> HeadSource:
    """Reads and checks `path` for a `task` run whose backbone is `backbone` (errors now)."""
    try:
        kind = head_files.kind_of(path)
        if kind is not None:
            head = our_head_file(path) if kind == head_files.OURS else head_files.read(path)
            if head.task != task:
                raise ArchitectureMismatchError(
                    f"{path!r} holds a {head.task} model ({head.fmt}); a {task} run starts "
                    f"from a {task} model or from a classification file (its backbone)")
            return HeadSource(path, head=head)
    except (WeightsError, run_dir_lib.RunFolderError) as e:
        raise type(e)(f"init_weights: {e}") from None
    return HeadSource(path, backbone=read_source(path, backbone))


def load_backbone(model: tf_keras.Model, backbone: ModelConfig,
                  source: InitSource) -> Dict:
    """The classification file's backbone rows into the model's backbone; rows of another
    shape stay as built. Returns what was loaded and what was not."""
    config = backbone.replace(include_top=False)
    bound = plan_lib.bind_layers(backbone_layers(model), config, model.name)
    count = len(plan_lib.plan(source.config.replace(include_top=False)))
    entries = source.weights.entries[:count]
    if count != len(bound):
        raise ArchitectureMismatchError(
            f"init_weights {source.weights.origin!r}: its backbone has {count} conv layers, "
            f"the run's {len(bound)}")
    fits = [b.slot.shape == e.shape and b.slot.kind == e.kind for b, e in zip(bound, entries)]
    assign_lib.write([b for b, ok in zip(bound, fits) if ok],
                     [e for e, ok in zip(entries, fits) if ok], source.weights)
    fresh = [b.conv.name for b, ok in zip(bound, fits) if not ok]
    return {"source": source.weights.origin, "format": source.weights.fmt,
            "bn_folded": source.weights.bn_folded, "loaded": sum(fits), "layers": len(bound),
            "fresh": fresh}


def head_initializer(path: str, task: str, backbone: ModelConfig,
                is_class_layer: Callable[[str], bool],
                images: Callable[[], Iterable]) -> Callable[[tf_keras.Model], str]:
    """Task.initializer for a head task: reads now, loads into the built model later.

    `images()` yields batches of training images (re-estimating a BN-folded file's BN
    statistics); `is_class_layer(name)` tells the layers that depend on the classes.
    """
    source = read_head_source(path, task, backbone)

    def initialize(model: tf_keras.Model) -> str:
        if source.head is not None:
            summary = source.head.load_into(model, is_class_layer)
            new = summary["new_layers"]
            line = (f"initialized from {path} ({source.head.kind} {source.head.fmt}): "
                    f"{summary['tensors']} tensors"
                    + (f"; {len(new)} class layers new for this run's classes ({', '.join(new)})"
                       if new else "; the file's classes kept"))
            if source.head.bn_folded:
                batches = list(images())
                count = restandardize_batch_norm(model, model.layers, batches)
                line += (f"; BN statistics of {count} layers re-estimated on "
                         f"{sum(int(b.shape[0]) for b in batches)} training images (BN folded)")
            return line
        summary = load_backbone(model, backbone, source.backbone)
        line = (f"initialized the backbone from {path} ({summary['format']}"
                f"{', BN folded' if summary['bn_folded'] else ''}): {summary['loaded']} of "
                f"{summary['layers']} conv layers")
        if summary["fresh"]:
            line += (f"; {len(summary['fresh'])} of another shape in this run stay new "
                     f"({describe_rows(summary['fresh'])})")
        if summary["bn_folded"]:
            batches = list(images())
            count = restandardize_batch_norm(model, backbone_layers(model),
                                                      batches)
            line += (f"; BN statistics of {count} layers re-estimated on "
                     f"{sum(int(b.shape[0]) for b in batches)} training images")
        return line + "; the head starts new"
    return initialize


def describe_rows(layers: List[str]) -> str:
    """'bneck10_expand, bneck10_depthwise, ...' shortened to the rows: 'bneck10-11, lastconv'."""
    from mobilenet_v3.modeling import naming
    rows = []
    for name in layers:
        row = naming.row_of(name)
        if row not in rows:
            rows.append(row)
    return ", ".join(rows)
