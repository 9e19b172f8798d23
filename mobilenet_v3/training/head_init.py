"""`--init_weights` of a detection or segmentation run.

Two kinds of file start a detector or segmenter:

* a whole detector / segmenter of the run's task (`weights/head_files`: the OD API's
  SSDLite-MobileNetV3, DeepLab's LR-ASPP, our own runs): every tensor loads, the class layers
  too when the run has the file's classes; otherwise they stay new, for the dataset's classes.
  A tensor of another shape anywhere else is refused by name (the run's architecture or head
  settings are not the file's).
* a classification file (what a classification run's `--init_weights` takes: official .tflite
  / .tgz / TF-Slim checkpoint, keras.applications .h5, our classifier runs): its backbone loads
  into the run's backbone row by row. The rows the run changes have other shapes and stay as
  built, and the log names them: the detector's reduced tail (paper 6.3: the channels between
  C4 and C5 halved) and RF2's halved last stage. Output stride changes no shape. A BN-folded
  file (TFLite) has its BN statistics re-estimated on training images, the function unchanged
  (`transfer.restandardize_batch_norm`), as classification transfer learning does.
"""

import dataclasses
from typing import Callable, Dict, Iterable, List, Optional

import tf_keras

from mobilenet_v3.modeling.config import ModelConfig
from mobilenet_v3.training import transfer
from mobilenet_v3.weights import assign as assign_lib
from mobilenet_v3.weights import head_files
from mobilenet_v3.weights import plan as plan_lib
from mobilenet_v3.weights.errors import ArchitectureMismatchError, WeightsError

CALIBRATION_BATCHES = 4


@dataclasses.dataclass
class Source:
    path: str
    head: Optional[head_files.HeadFile] = None           # a whole detector / segmenter
    backbone: Optional[transfer.InitSource] = None       # a classification file


def read(path: str, task: str, backbone: ModelConfig) -> Source:
    """Reads and checks `path` for a `task` run whose backbone is `backbone` (errors now)."""
    try:
        kind = head_files.kind_of(path)
        if kind is not None:
            head = head_files.read(path)
            if head.task != task:
                raise ArchitectureMismatchError(
                    f"{path!r} holds a {head.task} model ({head.fmt}); a {task} run starts "
                    f"from a {task} model or from a classification file (its backbone)")
            return Source(path, head=head)
    except WeightsError as e:
        raise type(e)(f"init_weights: {e}") from None
    return Source(path, backbone=transfer.read_source(path, backbone))


def load_backbone(model: tf_keras.Model, backbone: ModelConfig,
                  source: transfer.InitSource) -> Dict:
    """The classification file's backbone rows into the model's backbone; rows of another
    shape stay as built. Returns what was loaded and what was not."""
    config = backbone.replace(include_top=False)
    bound = plan_lib.bind_layers(transfer.backbone_layers(model), config, model.name)
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


def initializer(path: str, task: str, backbone: ModelConfig,
                is_class_layer: Callable[[str], bool],
                images: Callable[[], Iterable]) -> Callable[[tf_keras.Model], str]:
    """Task.initializer for a head task: reads now, loads into the built model later.

    `images()` yields batches of training images (re-estimating a BN-folded file's BN
    statistics); `is_class_layer(name)` tells the layers that depend on the classes.
    """
    source = read(path, task, backbone)

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
                count = transfer.restandardize_batch_norm(model, model.layers, batches)
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
            count = transfer.restandardize_batch_norm(model, transfer.backbone_layers(model),
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
