"""Whole detector / segmenter files -> a folder export_tflite.py and evaluate.py take, with the
network's config detected from the file (`python -m mobilenet_v3.weights.convert FILE`).

  OD API SSDLite-MobileNetV3 (model.ckpt, .mlmodel): Small or Large with the reduced tail,
    320x320 (or --resolution), input in [-1, 1], class slots from the class predictor
    (91 for the COCO zoo files: labels.txt gives background + the official COCO names);
  DeepLab MobileNetV3 LR-ASPP (frozen_inference_graph.pb, model.ckpt): Small or Large, RF2,
    output stride 32, DeepLab's gate and pool geometry, 513x1025 (or --resolution square),
    uint8-range input as the graph's; classes from the decoder's logits conv.
Each candidate architecture is tried in turn; when none fits, the error of the first names the
first tensor that disagrees.
"""

from typing import List, Optional, Tuple

from mobilenet_v3.weights import head_files
from mobilenet_v3.weights.errors import ArchitectureMismatchError

NAMES = ("small", "large")


def _shape(head: head_files.HeadFile, layer: str, attr: str = "kernel") -> Tuple[int, ...]:
    for t in head.tensors:
        if t.layer == layer and t.attr == attr:
            return tuple(t.value.shape)
    raise ArchitectureMismatchError(f"{head.origin!r} has no tensor for {layer}.{attr}")


def _ssdlite_configs(head, size):
    import dataclasses
    from mobilenet_v3.weights import official_ssdlite as od
    if head.fmt == "tflite":
        from mobilenet_v3.weights import detector_tflite
        facts = detector_tflite.file_facts(head.origin)
        slots, size = facts["slots"], size or facts["size"]
    else:
        boxes, classes = _shape(head, "ssd_box0_predict"), _shape(head, "ssd_class0_predict")
        slots = classes[-1] // (boxes[-1] // 4)
        size = size or (320, 320)
    base = od.official_small_config()
    for name in NAMES:
        model = base.model.replace(input_shape=(size[0], size[1], 3))
        model = model.replace(name=name) if name != model.name else model
        yield dataclasses.replace(base, model=model,
                                  ssd=dataclasses.replace(base.ssd, classes=slots))


def _deeplab_configs(head, size):
    import dataclasses
    from mobilenet_v3.weights import deeplab_graph
    classes = _shape(head, "seg_logits_high")[-1]
    for name in NAMES:
        config = deeplab_graph.deeplab_small_config(*size)
        model = config.model.replace(name=name) if name != config.model.name else config.model
        yield dataclasses.replace(config, model=model,
                                  seg=dataclasses.replace(config.seg, classes=classes))


def build(head: head_files.HeadFile, size: Optional[Tuple[int, int]] = None):
    """(model with the file's weights, its config, load summary)."""
    if head.kind == head_files.SSDLITE:
        from mobilenet_v3.modeling.heads.ssdlite import build_ssdlite as builder
        candidates = _ssdlite_configs(head, size)
    elif head.kind == head_files.DEEPLAB:
        from mobilenet_v3.modeling.heads.lraspp import build_segmenter as builder
        from mobilenet_v3.weights import deeplab_graph
        candidates = _deeplab_configs(head, size or deeplab_graph.GRAPH_SIZE)
    else:
        raise ArchitectureMismatchError(f"{head.origin!r} is one of this package's runs: "
                                        "export and evaluate take it as it is")
    errors: List[Exception] = []
    for config in candidates:
        config.validate()
        model = builder(config)
        try:
            return model, config, head.load_into(model)
        except ArchitectureMismatchError as e:
            errors.append(e)
    raise errors[0]


def labels(head: head_files.HeadFile, config) -> List[str]:
    if head.kind == head_files.SSDLITE and config.classes == 91:
        from mobilenet_v3.detection import coco_categories
        return coco_categories.slot_labels(91)
    if head.kind == head_files.SSDLITE:
        return ["background"] + [f"class_{k}" for k in range(1, config.classes)]
    return [f"class_{k}" for k in range(config.classes)]


def from_file(source: str, size: Optional[Tuple[int, int]] = None):
    """(model, config, labels, summary) of a whole detector / segmenter file; `convert`
    writes them as a folder."""
    head = head_files.read(source)
    model, config, summary = build(head, size)
    return model, config, labels(head, config), {
        "format": f"{head.kind} {head.fmt}", "tensors": summary["tensors"], "task": head.task}
