"""Segmentation (LR-ASPP / R-ASPP): training, export with the guarded mixed int8, mIoU
evaluation at each image's own aspect ratio.

Evaluation resizes an image to fit the network's input with its aspect ratio kept, pads the
rest (with 0 in [-1, 1], DeepLab's mean-pixel padding), crops the logits back to the image's
region, resizes them to the mask's full resolution and takes the argmax there: nothing is
squashed (squashing 2:1 street photos into a square cost ~7 mIoU points). Pixels labelled 255
are ignored.
"""

import dataclasses
from typing import Dict, Tuple

import numpy as np

from mobilenet_v3.export.formats import HEAD_FORMATS
from mobilenet_v3.tasks.registry import TaskSpec, TrainingSpec, register

HEAD_TYPES = ("lraspp", "raspp")
# Guard: the share of pixels whose argmax class an int8 file shares with the float model.
# Measured on DeepLab's MobileNetV3-Small LR-ASPP (5 classes) on COCO val photos
# (benchmark/RESULTS.md, "int8 detection and segmentation on real weights"): pure int8 0.951
# (but 0.37 of the non-background pixels), the mixed file 0.992 (0.92).
DEFAULT_MIN_PIXEL_AGREEMENT = 0.98
# The mixed search raises the mean over classes of the IoU between the int8 and float argmax
# maps (pixel agreement alone would favour background) until this.
DEFAULT_TARGET_CLASS_IOU = 0.9


def load(path: str):
    from mobilenet_v3.modeling.heads.lraspp import SegmenterConfig
    from mobilenet_v3.segmentation import data as data_lib
    from mobilenet_v3.training import run_dir
    known = {f.name for f in dataclasses.fields(data_lib.SegmentationDataConfig)}
    return run_dir.load_head_model(
        path, SegmenterConfig.from_flat,
        lambda record: data_lib.SegmentationDataConfig(
            **{k: v for k, v in record.items() if k in known}) if record else None)


def data_config(options, image_size: int, seed: int):
    """The SegmentationDataConfig of the data options (the classes: from the data unless
    num_classes is given)."""
    from mobilenet_v3.segmentation.data import SegmentationDataConfig
    extra = {name: options[name] for name in (
        "synthetic_train_examples", "synthetic_eval_examples", "min_scale", "max_scale",
        "scale_step", "scale_of") if name in options}
    return SegmentationDataConfig(
        source=options["dataset"], image_size=image_size, seed=seed,
        num_classes=options["num_classes"] if "num_classes" in options.given else None,
        mask_folder=options["mask_folder"], held_out_fraction=options["held_out_fraction"],
        class_list=options["class_list"] if "class_list" in options else None,
        data_dir=options["data_dir"], manual_dir=options["manual_dir"], **extra)


def model_options(options) -> Dict:
    """The segmentation backbone: `reduced_tail` is RF2 (the last stage halved with its
    expansion, DeepLab's mobilenet_v3_*_seg), the last stages atrous to `output_stride`."""
    return {"reduced_tail": False, "rf2": options["reduced_tail"],
            "output_stride": int(options["output_stride"])}


def _pair(values, name: str) -> Tuple[int, int]:
    try:
        pair = tuple(int(v) for v in values)
    except (TypeError, ValueError):
        pair = ()
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"--{name} must be two integers >= 1 (H,W), got {values!r}")
    return pair


def head_config(options):
    """The SegHeadConfig of the seg_* options (train.py's flags; DeepLab's defaults)."""
    from mobilenet_v3.modeling.heads.lraspp import SegHeadConfig
    return SegHeadConfig(head=options["seg_head"], filters=options["seg_filters"],
                         gate=options["seg_gate"], align_corners=options["seg_align_corners"],
                         pool_crop=_pair(options["seg_pool_crop"], "seg_pool_crop"),
                         pool_stride=_pair(options["seg_pool_stride"], "seg_pool_stride"),
                         global_pool=options["seg_global_pool"])


def make_task(config, options):
    from mobilenet_v3.segmentation.task import SegmentationTask
    return SegmentationTask(config, head_config(options))


def final_metrics(result) -> str:
    return f"mIoU {result['mIoU']:.4f}  pixel accuracy {result['pixel_accuracy']:.4f}"


def fit_and_pad(image, size: Tuple[int, int]):
    """uint8/float [h, w, 3] -> ([-1, 1] [H, W, 3] with the image resized to fit, aspect kept,
    padded with 0 at the bottom/right), the (rows, cols) it covers."""
    import tensorflow as tf
    from mobilenet_v3.data.preprocessing import to_unit_range
    h, w = int(image.shape[0]), int(image.shape[1])
    scale = min(size[0] / h, size[1] / w)
    rows, cols = max(1, min(size[0], round(h * scale))), max(1, min(size[1], round(w * scale)))
    resized = tf.image.resize(tf.cast(image, tf.float32), (rows, cols), method="bilinear")
    unit = to_unit_range(tf.clip_by_value(resized, 0.0, 255.0)).numpy()
    out = np.zeros((size[0], size[1], 3), np.float32)
    out[:rows, :cols] = unit
    return out, (rows, cols)


def crop_to_aspect(image, size: Tuple[int, int]) -> np.ndarray:
    """The largest centred crop of `image` with the aspect of `size`, resized to it, [-1, 1]:
    export calibration and checks see whole-canvas images, neither padded nor squashed."""
    import tensorflow as tf
    from mobilenet_v3.data.preprocessing import to_unit_range
    h, w = int(image.shape[0]), int(image.shape[1])
    rows, cols = min(h, round(w * size[0] / size[1])), min(w, round(h * size[1] / size[0]))
    top, left = (h - rows) // 2, (w - cols) // 2
    crop = tf.cast(image[top:top + rows, left:left + cols], tf.float32)
    resized = tf.image.resize(crop, size, method="bilinear")
    return to_unit_range(tf.clip_by_value(resized, 0.0, 255.0)).numpy()


def _images(source, size, split: str, count: int):
    import tensorflow as tf
    from mobilenet_v3.export.errors import ExportError
    try:
        if split == "eval":
            pairs = [(np.asarray(i), np.asarray(m))
                     for i, m in source.eval_examples().take(count)]
        elif source.train_element is not None:
            pairs = [tuple(np.asarray(t) for t in source.train_element(k))
                     for k in range(min(count, source.num_train))]
        else:
            pairs = [(np.asarray(ex[0]), np.asarray(ex[1]))
                     for ex in source.train_stream(0, None).take(count)]
    except tf.errors.OpError as e:
        raise ExportError(f"cannot read a {split} image of {source.name}: "
                          f"{e.message.splitlines()[0]}") from None
    if not pairs:
        raise ExportError(f"{source.name}: no {split} images")
    return np.stack([crop_to_aspect(i, size) for i, _ in pairs])


def export_model(model, seg, size, labels, calibration, check, config, log=print):
    """A segmenter in memory -> export/task_export.py at `size` (HxW)."""
    from mobilenet_v3.export import folding, task_export
    from mobilenet_v3.segmentation import export as conversion
    float_graph = conversion.inference_model(model, seg, task_export.FLOAT_FORM, size)
    reference = float_graph.predict(check, batch_size=1, verbose=0).argmax(-1)

    def score(tflite, fmt=None):
        from mobilenet_v3.analysis import tflite_inspect
        ours = tflite_inspect.run(tflite, check).argmax(-1)
        same = ours == reference
        foreground = reference != 0
        classes = np.union1d(np.unique(reference), np.unique(ours))
        ious = [np.sum((ours == c) & (reference == c)) / np.sum((ours == c) | (reference == c))
                for c in classes]
        return {"images": int(len(check)), "pixel_agreement": float(same.mean()),
                "class_iou_with_float": float(np.mean(ious)),
                "worst_image_agreement": float(same.reshape(len(check), -1).mean(1).min()),
                "non_background_agreement": float(same[foreground].mean())
                if foreground.any() else None}

    def int8_file(agreement, policy):
        from mobilenet_v3.export import convert
        graph = conversion.inference_model(model, seg, task_export.INT8_FORM, size)
        folding.fold_weights(graph)
        return convert.convert_int8_mixed(graph, calibration, agreement, policy)
    adapter = task_export.TaskAdapter(
        "segmentation", dict(seg.to_flat(), export_resolution=list(size)), model.get_weights(),
        float_file=lambda fmt: conversion.convert(float_graph, fmt),
        int8_file=int8_file, score=score, value_key="pixel_agreement",
        search_key="class_iou_with_float", card=lambda fmt: card(seg, size, labels))
    return task_export.export(adapter, labels, calibration, config, log)


def card(seg, size, labels) -> Dict:
    """The metadata's name and description of a segmenter file (export/tflite_metadata)."""
    return {"name": f"MobileNetV3-{seg.model.name.capitalize()} {seg.model.alpha:g} "
                    f"{seg.seg.head.upper()} "
                    f"{size[0]}x{size[1]} segmenter",
            "description": f"Semantic segmentation, {len(labels)} classes; per-pixel class "
                           f"logits at the input size (category mask: their argmax; "
                           f"confidence masks: their softmax)"}


def export(path, config, data=None, log=print) -> Dict[str, Dict]:
    from mobilenet_v3.export import task_export
    from mobilenet_v3.segmentation import data as data_lib
    trained = load(path)
    seg = trained.config
    size = tuple(config.resolution or seg.input_shape[:2])
    source = task_export.open_data(path, data, trained.data, data_lib.open_source,
                                   "--dataset=mask_folder --mask_folder=...")
    calibration = _images(source, size, "train", config.calibration_images) \
        if "int8" in config.formats else None
    check = _images(source, size, "eval", config.check_images)
    labels = trained.labels or [f"class_{i}" for i in range(seg.classes)]
    options = task_export.options_from(config, seg.seg.head, DEFAULT_MIN_PIXEL_AGREEMENT,
                                       DEFAULT_TARGET_CLASS_IOU, source=path)
    return export_model(trained.model, seg, size, labels, calibration, check, options, log)


def score_masks(predict, images, masks, size, classes: int) -> Dict:
    """mIoU / pixel accuracy of `predict` ([1, H, W, 3] -> logits) at full mask resolution."""
    import tensorflow as tf
    from mobilenet_v3.segmentation.task import iou_from_confusion, mean_iou
    matrix = np.zeros((classes, classes), np.int64)
    for image, mask in zip(images, masks):
        padded, (rows, cols) = fit_and_pad(image, size)
        logits = np.asarray(predict(padded[None]))[0][:rows, :cols]
        logits = tf.image.resize(logits, mask.shape[:2], method="bilinear").numpy()
        predicted = logits.argmax(-1).reshape(-1)
        true = np.asarray(mask).reshape(-1).astype(np.int64)
        valid = true != 255
        if (true[valid] >= classes).any():
            raise ValueError(f"a mask holds class id {int(true[valid].max())} >= the model's "
                             f"{classes} classes")
        matrix += np.bincount(true[valid] * classes + predicted[valid],
                              minlength=classes * classes).reshape(classes, classes)
    return {"images": len(images), "mIoU": mean_iou(matrix),
            "pixel_accuracy": float(np.trace(matrix) / max(matrix.sum(), 1)),
            "iou_per_class": [None if not np.isfinite(v) else float(v)
                              for v in iou_from_confusion(matrix)]}


def evaluate(paths, config) -> Dict:
    from mobilenet_v3.segmentation import data as data_lib
    if not config.mask_folder:
        raise ValueError("segmentation evaluation needs --mask_folder (images/ + masks/, "
                         "255 = ignore)")
    images, masks, _, _ = data_lib.read_mask_folder(config.mask_folder)
    if config.max_examples:
        images, masks = images[:config.max_examples], masks[:config.max_examples]
    import tensorflow as tf
    decoded = [data_lib.decode_image(tf.io.read_file(f)).numpy() for f in images]
    labels = [data_lib._decode_mask(tf.io.read_file(f)).numpy() for f in masks]
    results = []
    for path in paths:
        if path.endswith(".tflite"):
            from mobilenet_v3.analysis import tflite_inspect
            with open(path, "rb") as f:
                content = f.read()
            it = tflite_inspect.interpreter(content, num_threads=config.num_threads)
            inp, out = it.get_input_details()[0], it.get_output_details()[0]
            size, classes = tuple(int(v) for v in inp["shape"][1:3]), int(out["shape"][-1])

            def predict(x, content=content):
                return tflite_inspect.run(content, x, config.num_threads)
            kind = "tflite"
        else:
            trained = load(path)
            seg = trained.config
            size = tuple(config.eval_size or seg.input_shape[:2])
            from mobilenet_v3.segmentation import export as conversion
            graph = conversion.inference_model(trained.model, seg, "fused", size)
            classes = seg.classes

            def predict(x, graph=graph):
                return graph(x, training=False).numpy()
            kind = "keras"
        results.append(dict(score_masks(predict, decoded, labels, size, classes),
                            model=path, kind=kind, input_size=list(size)))
    return {"task": "segmentation", "dataset": config.mask_folder,
            "protocol": "aspect kept (fit + pad), logits resized to the full mask, 255 "
                        "ignored", "results": results}


def is_file(tflite: bytes) -> bool:
    from mobilenet_v3.analysis import tflite_inspect
    return tflite_inspect.output_ranks(tflite) == [4]


SPEC = register(TaskSpec("segmentation", HEAD_TYPES, HEAD_FORMATS, export, evaluate,
                         is_file, data_config=data_config,
                         training=TrainingSpec(make_task=make_task, final_metrics=final_metrics,
                                               model_options=model_options)))
