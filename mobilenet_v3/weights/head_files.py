"""Whole detector and segmenter files, read as tensors that have a place in our head models.

What `kind_of` recognises:
  ssdlite  the OD API's SSDLite-MobileNetV3 (`ssd_mobilenet_v3_{small,large}_coco`): its
           `model.ckpt` (a prefix, or a folder holding one) with FeatureExtractor/ and
           BoxPredictor_ variables, the Core ML conversion `ssd_mobilenet.mlmodel`, or a float
           detector .tflite (ours or its model.tflite: weights matched by shape and verified,
           detector_tflite);
  deeplab  DeepLab's MobileNetV3 LR-ASPP (`deeplab_mnv3_*`): `frozen_inference_graph.pb`, or a
           `model.ckpt` with MobilenetV3/ and aspp0 / image_pooling variables;
  ours     a detection or segmentation run folder (or model.keras beside its
           model_config.json) of this package.
Anything else (a classification .tflite / TF-Slim checkpoint / .h5 / run) is not a head file:
only its backbone can start a detector or segmenter (`training/transfer.py`).

`load(model, tensors, is_class_layer)` writes every tensor into the model built for the run,
or nothing: a tensor without a place, or of another shape, is refused by name. The one
exception is the class-dependent layers (the detector's class predictors, the segmenter's
logits), which stay as built when the run has other classes than the file, and are reported.
BatchNorm statistics are rebased from the file's epsilon to each layer's own.
"""

import dataclasses
import glob
import json
import os
from typing import Callable, List, Optional

from mobilenet_v3.weights import tf_checkpoint
from mobilenet_v3.weights.head_tensors import Tensor, load
from mobilenet_v3.weights.errors import CorruptWeightsError

SSDLITE, DEEPLAB, OURS = "ssdlite", "deeplab", "ours"
HEAD_TYPE_KIND = {"ssdlite": "detection", "lraspp": "segmentation", "raspp": "segmentation"}
KIND_TASK = {SSDLITE: "detection", DEEPLAB: "segmentation"}


@dataclasses.dataclass
class HeadFile:
    kind: str                       # SSDLITE, DEEPLAB or OURS
    task: str                       # "detection" or "segmentation"
    origin: str
    fmt: str                        # mlmodel, od_api_checkpoint, frozen_graph, tflite, ...
    tensors: List[Tensor]
    # files without names (a detector .tflite) load through their own matcher instead:
    # loader(model, is_class_layer) -> summary like `load`'s
    loader: Optional[Callable] = None
    bn_folded: bool = False

    def load_into(self, model, is_class_layer: Callable[[str], bool] = lambda name: False):
        if self.loader is not None:
            return self.loader(model, is_class_layer)
        return load(model, self.tensors, is_class_layer, self.origin)


# --------------------------------------------------------------------------- recognising

def _checkpoint_prefix(path: str) -> Optional[str]:
    if os.path.isfile(path + ".index"):
        return path
    if os.path.isdir(path):
        indexes = sorted(glob.glob(os.path.join(path, "*.index")))
        return indexes[0][:-len(".index")] if indexes else None
    return None


def _our_head_type(path: str) -> Optional[str]:
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    for candidate in (os.path.join(folder, "model_config.json"),
                      os.path.join(folder, "final", "model_config.json")):
        if os.path.isfile(candidate):
            try:
                with open(candidate) as f:
                    return json.load(f).get("head_type")
            except (OSError, ValueError):
                return None
    return None


def _archive_kind(names: List[str]) -> Optional[str]:
    """The OD API's zoo archives hold pipeline.config; DeepLab's a frozen graph and no
    pipeline.config; the classification ones neither."""
    if any(n.endswith("pipeline.config") for n in names):
        return SSDLITE
    if any(n.endswith("frozen_inference_graph.pb") for n in names):
        return DEEPLAB
    return None


def kind_of(path: str) -> Optional[str]:
    """SSDLITE, DEEPLAB, OURS or None (not a whole detector / segmenter file)."""
    path = os.fspath(path)
    from mobilenet_v3.weights import archive
    if archive.is_archive(path):
        return _archive_kind(archive.member_names(path))
    if path.lower().endswith(".mlmodel"):
        return SSDLITE
    if path.lower().endswith(".tflite"):
        from mobilenet_v3.weights import detector_tflite
        return SSDLITE if detector_tflite.is_detector_file(path) else None
    if path.lower().endswith(".pb") or (
            os.path.isdir(path) and os.path.isfile(os.path.join(path,
                                                                "frozen_inference_graph.pb"))
            and _checkpoint_prefix(path) is None):
        return DEEPLAB
    if _our_head_type(path) in HEAD_TYPE_KIND:
        return OURS
    prefix = _checkpoint_prefix(path)
    if prefix is not None:
        names = tf_checkpoint.variable_names(prefix)
        if any(n.startswith(("FeatureExtractor/", "BoxPredictor_")) for n in names):
            return SSDLITE
        if any(n.startswith(("aspp0/", "image_pooling/")) for n in names):
            return DEEPLAB
    return None


# --------------------------------------------------------------------------- reading

def _read_archive(path: str) -> HeadFile:
    """A zoo archive (.tar.gz): its checkpoint (else its frozen graph) read from a temporary
    extraction; the tensors are in memory when the folder goes."""
    from mobilenet_v3.weights import archive
    with archive.extracted_folder(path, (".index", "frozen_inference_graph.pb")) as tmp:
        found = archive.find_checkpoint(tmp)
        graphs = sorted(glob.glob(os.path.join(tmp, "**", "frozen_inference_graph.pb"),
                                  recursive=True))
        if found is None and not graphs:
            raise CorruptWeightsError(f"{path!r} holds neither a checkpoint nor a frozen graph")
        head = read(found or graphs[0])
    return dataclasses.replace(head, origin=path, fmt=head.fmt + " in archive")


def read(path: str) -> HeadFile:
    """The tensors of a whole detector / segmenter file (kind_of(path) must not be None)."""
    path = os.fspath(path)
    from mobilenet_v3.weights import archive
    if archive.is_archive(path):
        return _read_archive(path)
    kind = kind_of(path)
    if kind == OURS:        # a run folder: training.transfer.our_head_file reads it
        raise CorruptWeightsError(f"{path!r} is a run of this package, not a file to import")
    if kind == SSDLITE and path.lower().endswith(".tflite"):
        from mobilenet_v3.weights import detector_tflite
        return HeadFile(kind, "detection", path, "tflite", [], bn_folded=True,
                        loader=lambda model, is_class: detector_tflite.load(model, path,
                                                                             is_class))
    if kind == SSDLITE:
        from mobilenet_v3.weights import official_ssdlite as od
        if path.lower().endswith(".mlmodel"):
            try:
                values, fmt = od.read_mlmodel(path), "mlmodel"
            except (OSError, ValueError) as e:
                raise CorruptWeightsError(f"{path!r}: {e}") from None
        else:
            values = tf_checkpoint.read(_checkpoint_prefix(path), od.MODEL_SCOPES, path)
            fmt = "od_api_checkpoint"
        return HeadFile(kind, KIND_TASK[kind], path, fmt, od.tensors(values, path))
    if kind == DEEPLAB:
        from mobilenet_v3.weights import deeplab_graph
        prefix = _checkpoint_prefix(path)
        if prefix is not None and not path.lower().endswith(".pb"):
            values = tf_checkpoint.read(prefix, ("MobilenetV3/",) + tuple(
                s + "/" for s in deeplab_graph.HEAD_SCOPES), path)
            fmt = "deeplab_checkpoint"
        else:
            graph = path if path.lower().endswith(".pb") else os.path.join(
                path, "frozen_inference_graph.pb")
            try:
                values = deeplab_graph.read_frozen_graph(graph)
            except (OSError, ValueError) as e:
                raise CorruptWeightsError(f"{graph!r}: {e}") from None
            fmt = "frozen_graph"
        return HeadFile(kind, KIND_TASK[kind], path, fmt, deeplab_graph.tensors(values, path))
    raise CorruptWeightsError(f"{path!r} is not a detector or segmenter file")


