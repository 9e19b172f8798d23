"""Detection (SSDLite): training, export with the guarded mixed int8, COCO evaluation (official
protocol).

Images for calibration (training split) and checks (held-out split) come from the run's
recorded data, or from `data` (a DetectionDataConfig) when the caller names other data.
"""

import dataclasses
import os
from typing import Dict

import numpy as np

from mobilenet_v3.export.formats import HEAD_FORMATS
from mobilenet_v3.tasks.registry import TaskSpec, TrainingSpec, register

HEAD_TYPE = "ssdlite"
POSTPROCESS_OP = "TFLite_Detection_PostProcess"


def load(path: str):
    from mobilenet_v3.detection import data as data_lib
    from mobilenet_v3.modeling.heads.ssdlite import DetectorConfig
    from mobilenet_v3.training import run_dir
    known = {f.name for f in dataclasses.fields(data_lib.DetectionDataConfig)}
    return run_dir.load_head_model(
        path, DetectorConfig.from_flat,
        lambda record: data_lib.DetectionDataConfig(
            **{k: v for k, v in record.items() if k in known}) if record else None)


def data_config(options, image_size: int, seed: int):
    """The DetectionDataConfig of the data options."""
    from mobilenet_v3.detection.data import DetectionDataConfig
    extra = {name: options[name] for name in (
        "synthetic_train_examples", "synthetic_eval_examples") if name in options}
    if "download_data" in options:
        extra["download"] = options["download_data"]
    return DetectionDataConfig(source=options["dataset"], image_size=image_size, seed=seed,
                               num_classes=options["num_classes"],
                               detection_folder=options["detection_folder"],
                               val_json=options["detection_val_json"],
                               val_images=options["detection_val_images"],
                               held_out_fraction=options["held_out_fraction"],
                               data_dir=options["data_dir"], manual_dir=options["manual_dir"],
                               **extra)


def make_task(config, options):
    from mobilenet_v3.detection.task import DetectionTask
    return DetectionTask(config)


def final_metrics(result) -> str:
    return f"COCO mAP {result['mAP']:.4f}  mAP@.5 {result['mAP50']:.4f}"


def _images(source, size: int, split: str, count: int) -> np.ndarray:
    """`count` [-1, 1] images of a split; a corrupt file is a clear error."""
    import tensorflow as tf
    from mobilenet_v3.detection import data as data_lib
    from mobilenet_v3.export.errors import ExportError
    try:
        if split == "eval":
            out = [data_lib.eval_preprocess(ex[0], size).numpy()
                   for ex in source.eval_examples().take(count)]
        elif source.train_element is not None:
            out = [data_lib.eval_preprocess(source.train_element(i)[0], size).numpy()
                   for i in range(min(count, source.num_train))]
        else:
            out = [data_lib.eval_preprocess(data_lib._as_image(ex[0]), size).numpy()
                   for ex in source.train_stream(0, None).take(count)]
    except tf.errors.OpError as e:
        raise ExportError(f"cannot read a {split} image of {source.name}: "
                          f"{e.message.splitlines()[0]}") from None
    if not out:
        raise ExportError(f"{source.name}: no {split} images")
    return np.stack(out)


# Guard: the share of the float model's detections (score >= 0.3) an int8 file must find (same
# class, IoU >= 0.5). Measured on Google's SSDLite-MobileNetV3-Small COCO weights, 40 COCO val
# photos (benchmark/RESULTS.md, "int8 detection and segmentation on real weights"): pure int8
# finds 0.03 (0.1 mAP), a mixed file with 4 float blocks 0.89 (-2.4 mAP points), with 7 blocks
# 0.96 (+0.4): 0.9 reports a loss of a few points.
DEFAULT_MIN_RECALL = 0.9
DEFAULT_TARGET_RECALL = 0.95     # the mixed search adds float blocks until the file finds this
MIN_SCORE = 0.3


def postprocess_tensors(tflite: bytes):
    """Indices of the tensors around the post-processing op and of the ops after it (the
    boxes' clip): float by design."""
    from mobilenet_v3.analysis import tflite_inspect
    from mobilenet_v3.export.detection import ops_after_postprocess
    ops = tflite_inspect.interpreter(tflite, xnnpack=False)._get_ops_details()
    chosen = [op for op in ops if op["op_name"] == POSTPROCESS_OP] + ops_after_postprocess(ops)
    return {int(i) for op in chosen for i in list(op["inputs"]) + list(op["outputs"])}


def export_model(model, det, labels, calibration, check, config, log=print) -> Dict[str, Dict]:
    """A detector in memory -> export/task_export.py (`config`: a TaskExportConfig)."""
    from mobilenet_v3.export import detection as conversion, task_export
    float_graph = conversion.inference_model(model, det, task_export.FLOAT_FORM)
    reference = conversion.keras_detections(float_graph, det, check)

    def score(tflite, fmt=None):
        return conversion.agreement(conversion.run(tflite, check), reference, MIN_SCORE)

    def int8_file(agreement, policy):
        return conversion.convert_int8(conversion.inference_model(model, det, task_export.INT8_FORM), det,
                                       calibration, agreement, policy)
    adapter = task_export.TaskAdapter(
        "detection", det.to_flat(), model.get_weights(),
        float_file=lambda fmt: conversion.convert(float_graph, det, fmt),
        int8_file=int8_file, score=score, value_key="recall", allowed_float=postprocess_tensors,
        card=lambda fmt: card(det, labels))
    return task_export.export(adapter, labels, calibration, config, log)


def card(det, labels) -> Dict:
    """The metadata's name and description of a detector file (export/tflite_metadata)."""
    h, w = det.model.input_shape[:2]
    nms = "per-class" if det.ssd.per_class_nms else "fast"
    return {"name": f"SSDLite-MobileNetV3-{det.model.name.capitalize()} {det.model.alpha:g} "
                    f"{h}x{w} detector",
            "description": f"Object detection, {len(labels)} classes; outputs boxes (ymin, "
                           f"xmin, ymax, xmax, normalised), classes (0 = first label), scores, "
                           f"count; {nms} NMS in the file, at most {det.ssd.max_detections} "
                           f"boxes"}


def export(path, config, data=None, log=print) -> Dict[str, Dict]:
    """A trained detector (run folder) and an export.ExportConfig -> its files."""
    from mobilenet_v3.detection import data as data_lib
    from mobilenet_v3.export import task_export
    trained = load(path)
    det = trained.config
    if config.nms:
        det = dataclasses.replace(det, ssd=dataclasses.replace(
            det.ssd, per_class_nms=config.nms == "per_class"))
    size = det.input_shape[0]
    recorded = dataclasses.replace(trained.data, image_size=size) if trained.data else None
    if data is not None:
        data = dataclasses.replace(data, image_size=size)
    source = task_export.open_data(path, data, recorded, data_lib.open_source,
                                   "--dataset=coco_json --detection_folder=...")
    calibration = _images(source, size, "train", config.calibration_images) \
        if "int8" in config.formats else None
    check = _images(source, size, "eval", config.check_images)
    names = trained.labels
    labels = names[1:] if len(names) == det.classes else names      # drop background
    options = task_export.options_from(config, "ssdlite", DEFAULT_MIN_RECALL,
                                       DEFAULT_TARGET_RECALL, source=path)
    return export_model(trained.model, det, labels, calibration, check, options, log)


def evaluate(paths, config) -> Dict:
    from mobilenet_v3.detection import coco_eval
    if not config.annotations or not config.images:
        raise coco_eval.CocoEvalError("detection evaluation needs --annotations (an "
                                      "instances_*.json) and --images (its image folder)")
    results = []
    for path in paths:
        if path.endswith(".tflite"):
            with open(path, "rb") as f:
                content = f.read()
            from mobilenet_v3.analysis import tflite_inspect
            it = tflite_inspect.interpreter(content)
            size = int(it.get_input_details()[0]["shape"][1])
            slots = _file_slots(path, content)
            predict = coco_eval.tflite_predictor(content, config.num_threads)
            from mobilenet_v3.export.detection import postprocess_options
            regular = postprocess_options(content).get("use_regular_nms")
            kind, nms = "tflite", f"{'per_class' if regular else 'fast'} (in the file)"
        else:
            trained = load(path)
            size, slots = trained.config.input_shape[0], trained.config.classes
            predict = coco_eval.keras_predictor(trained.model, trained.config, config.nms)
            kind, nms = "keras", config.nms
        result = coco_eval.evaluate(predict, config.annotations, config.images, size, slots,
                                    config.category_ids, config.max_examples)
        results.append(dict(result, model=path, kind=kind, nms=nms))
    return {"task": "detection", "dataset": config.annotations,
            "protocol": "pycocotools bbox, official category ids, crowd ignored, whole-image "
                        "resize, boxes clipped", "results": results}


def _file_slots(path: str, content: bytes) -> int:
    """Class slots (background included) of a detector file: from its report beside it, else
    from the post-processing op's num_classes."""
    import json
    report = path[:-len(".tflite")] + ".json"
    if os.path.isfile(report):
        with open(report) as f:
            model = json.load(f).get("model", {})
        if "ssd_classes" in model:
            return int(model["ssd_classes"])
    from mobilenet_v3.export.detection import postprocess_options
    try:
        return int(postprocess_options(content)["num_classes"]) + 1
    except ValueError:
        raise ValueError(f"{path!r} is not a detector file") from None


def is_file(tflite: bytes) -> bool:
    from mobilenet_v3.analysis import tflite_inspect
    return tflite_inspect.has_op(tflite, POSTPROCESS_OP)


SPEC = register(TaskSpec("detection", (HEAD_TYPE,), HEAD_FORMATS, export, evaluate,
                         is_file, data_config=data_config,
                         training=TrainingSpec(make_task=make_task, final_metrics=final_metrics)))
