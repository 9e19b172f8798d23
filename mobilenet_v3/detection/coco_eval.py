"""COCO detection evaluation under the official protocol, for Keras detectors and .tflite files.

Ground truth is the given `instances_*.json` read by pycocotools itself (crowd regions are
ignore regions, areas as annotated, official category ids); each image is resized whole to the
detector's input (the OD API's fixed_shape_resizer), detections are mapped back to the image's
pixels, clipped to it, and given their official category id. Keras models are post-processed
with per-class NMS as the OD API's SSDLite evaluation config (`batch_non_max_suppression`,
score 1e-8, IoU 0.6, 100 per class, 100 in all); a .tflite is scored on what its
TFLite_Detection_PostProcess op gives (fast NMS, one class per box: what a phone runs), and
Keras also with that rule (`nms="fast"`) so that the two compare like with like.
"""

import contextlib
import io
import os
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from mobilenet_v3.data.preprocessing import decode_image
from mobilenet_v3.detection import boxes as box_lib
from mobilenet_v3.detection.data import eval_preprocess

NMS_RULES = ("per_class", "fast")


class CocoEvalError(ValueError):
    """Bad evaluation input: missing files, a label map that does not fit."""


def _coco(annotations_file: str):
    from pycocotools.coco import COCO
    if not os.path.isfile(annotations_file):
        raise CocoEvalError(f"annotations file {annotations_file!r} not found (an official "
                            "instances_*.json)")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(annotations_file)
    except (ValueError, KeyError, TypeError) as e:
        raise CocoEvalError(f"{annotations_file}: not a COCO instances file ({e!r})") from None


def category_ids(coco, class_slots: int, rule: str = "auto") -> List[int]:
    """The official category id of each foreground class index (0-based) of a detector with
    `class_slots` outputs (background slot included).

    'identity': slot k is category id k (Google's COCO detectors: 91 slots for ids 1..90);
    'sorted': slot k is the k-th category in id order (what train.py learns from a COCO JSON);
    'auto': identity when the slots cover every id, sorted when they match the category count.
    """
    ids = sorted(coco.getCatIds())
    if rule == "auto":
        if class_slots == len(ids) + 1:
            rule = "sorted"
        elif class_slots == max(ids) + 1:
            rule = "identity"
        else:
            raise CocoEvalError(
                f"the detector has {class_slots - 1} foreground classes; the annotations have "
                f"{len(ids)} categories with ids up to {max(ids)}: no label map fits (pass "
                "category ids explicitly)")
    if rule == "identity":
        return list(range(1, class_slots))
    if rule == "sorted":
        if class_slots - 1 != len(ids):
            raise CocoEvalError(f"'sorted' needs {len(ids)} foreground classes, the detector "
                                f"has {class_slots - 1}")
        return ids
    raise CocoEvalError(f"unknown category rule {rule!r}; choose auto, identity or sorted")


def keras_predictor(model, config, nms: str = "per_class") -> Callable:
    """images [B, H, W, 3] in [-1, 1] -> list of {boxes, classes, scores, count}."""
    if nms not in NMS_RULES:
        raise CocoEvalError(f"nms must be one of {NMS_RULES}, got {nms!r}")
    anchors = tf.constant(box_lib.anchors(config))

    def predict(images):
        enc, logits = model(images, training=False)
        b, c, s, n = (t.numpy() for t in box_lib.postprocess(
            enc, logits, anchors, config, per_class=nms == "per_class"))
        return [{"boxes": b[r], "classes": c[r], "scores": s[r], "count": n[r]}
                for r in range(len(b))]
    return predict


def tflite_predictor(tflite: bytes, num_threads: int = 1) -> Callable:
    from mobilenet_v3.export import detection as conversion

    def predict(images):
        return conversion.run(tflite, images, num_threads)
    return predict


def evaluate(predict: Callable, annotations_file: str, images_dir: str, size: int,
             class_slots: int, category_rule: str = "auto", max_images: int = 0,
             batch_size: int = 8, image_ids: Optional[Sequence[int]] = None) -> Dict:
    """mAP @[.5:.95], mAP@.5 (and the other ten COCO numbers) of `predict` on the images of
    `annotations_file` found in `images_dir`."""
    from pycocotools.cocoeval import COCOeval
    coco = _coco(annotations_file)
    cats = category_ids(coco, class_slots, category_rule)
    ids = sorted(image_ids if image_ids is not None else coco.getImgIds())
    if max_images:
        ids = ids[:max_images]
    if not ids:
        raise CocoEvalError(f"{annotations_file}: no images to score")
    infos = coco.loadImgs(ids)
    paths = [os.path.join(images_dir, info["file_name"]) for info in infos]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise CocoEvalError(f"{len(missing)} image(s) of {annotations_file} not in "
                            f"{images_dir!r}, e.g. {missing[0]!r}")
    results = []
    for start in range(0, len(ids), batch_size):
        chunk = infos[start:start + batch_size]
        batch = []
        for info, path in zip(chunk, paths[start:start + batch_size]):
            try:
                image = decode_image(tf.io.read_file(path))
            except tf.errors.OpError as e:
                raise CocoEvalError(f"cannot decode {path!r}: {e.message}") from None
            batch.append(eval_preprocess(image, size).numpy())
        for info, det in zip(chunk, predict(np.stack(batch))):
            h, w = float(info["height"]), float(info["width"])
            for k in range(int(det["count"])):
                y0, x0, y1, x1 = (float(v) for v in det["boxes"][k])
                x0, x1 = min(max(x0 * w, 0.0), w), min(max(x1 * w, 0.0), w)
                y0, y1 = min(max(y0 * h, 0.0), h), min(max(y1 * h, 0.0), h)
                cls = int(det["classes"][k])
                if x1 <= x0 or y1 <= y0 or not 0 <= cls < len(cats):
                    continue
                results.append({"image_id": int(info["id"]), "category_id": cats[cls],
                                "bbox": [x0, y0, x1 - x0, y1 - y0],
                                "score": float(det["scores"][k])})
    names = ("mAP", "mAP50", "mAP75", "mAP_small", "mAP_medium", "mAP_large",
             "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large")
    report = {"images": len(ids), "detections": len(results),
              "annotations": annotations_file}
    if not results:
        return dict(report, **dict.fromkeys(names, 0.0))
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(coco, coco.loadRes(results), "bbox")
        evaluator.params.imgIds = ids
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return dict(report, **{n: float(max(v, 0.0)) for n, v in zip(names, evaluator.stats)})
