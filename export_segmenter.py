"""Export a trained LR-ASPP / R-ASPP segmenter to TFLite and check it against Keras.

    python export_segmenter.py --model=/tmp/lraspp_demo --output_dir=/tmp/lraspp_tflite \
        [--formats=float32,int8] [--resolution=HxW] [--calibration_images=100] \
        [--check_images=20]

--model is a train.py --task=segmentation run folder (its final/ model) or a final/ folder.
Writes lraspp_<format>.tflite (image [1, H, W, 3] in [-1, 1] -> logits [1, H, W, classes]),
labels.txt and report.json (ops, XNNPACK partitions, float tensors inside int8, per-pixel
argmax agreement with the Keras model and both models' mIoU on held-out images). The file
runs in benchmark/latency.py and android_bench like any .tflite. Exit 1 with a message on
bad input.
"""

import json
import os
import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "train.py --model_dir (uses final/) or a final/ folder.")
flags.DEFINE_string("output_dir", None, "Where the .tflite files and report.json go.")
flags.DEFINE_list("formats", ["float32", "int8"], "float32 and/or int8.")
flags.DEFINE_string("resolution", None, "Export size HxW (default: the trained size); the "
                    "agreement check runs at this size too.")
flags.DEFINE_integer("calibration_images", 100, "int8: training images for calibration.")
flags.DEFINE_integer("check_images", 20, "Held-out images compared with the Keras model.")


def _find(path):
    final = os.path.join(path, "final")
    folder = final if os.path.isdir(final) else path
    files = [os.path.join(folder, f) for f in ("model.keras", "model_config.json")]
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise ValueError(f"{path!r} is not a trained segmenter (missing {missing[0]!r}); pass "
                         "the --model_dir of `train.py --task=segmentation`")
    return folder, (os.path.dirname(folder) if folder == final else None)


def _size(text, config):
    if not text:
        return tuple(config.input_shape[:2])
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--resolution must be HxW, got {text!r}") from None
    if min(h, w) < 32:
        raise ValueError(f"--resolution must be at least 32x32, got {text!r}")
    return h, w


def _images(run_dir, size, count_train, count_eval):
    """(calibration images, held-out images, held-out masks) at `size` from the run's data."""
    import numpy as np
    import tensorflow as tf
    from mobilenet_v3.segmentation import data as data_lib
    record = {}
    if run_dir and os.path.isfile(os.path.join(run_dir, "train_config.json")):
        with open(os.path.join(run_dir, "train_config.json")) as f:
            record = json.load(f).get("data", {})
    fields = {k: v for k, v in record.items()
              if k in data_lib.SegmentationDataConfig.__dataclass_fields__}
    source = data_lib.open_source(data_lib.SegmentationDataConfig(**fields))

    def prepare(image, mask):
        image = tf.image.resize(tf.cast(image, tf.float32), size, method="bilinear")
        mask = tf.image.resize(tf.cast(mask, tf.int32)[..., None], size,
                               method="nearest")[..., 0]
        return (data_lib.to_unit_range(tf.clip_by_value(image, 0, 255)).numpy(), mask.numpy())
    if source.train_element is not None:
        train = [prepare(*source.train_element(i))[0]
                 for i in range(min(count_train, source.num_train))]
    else:
        train = [prepare(*ex)[0] for ex in source.train_stream(0, None).take(count_train)]
    held = [prepare(*ex) for ex in source.eval_examples().take(count_eval)]
    return (np.stack(train), np.stack([h[0] for h in held]), np.stack([h[1] for h in held]))


def main(argv):
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        print(f"export_segmenter.py: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 1
    try:
        if not FLAGS.model or not FLAGS.output_dir:
            raise ValueError("--model and --output_dir are required")
        bad = sorted(set(FLAGS.formats) - {"float32", "int8"})
        if bad:
            raise ValueError(f"unknown format(s) {bad}; choose float32, int8")
        folder, run_dir = _find(FLAGS.model)
        with open(os.path.join(folder, "model_config.json")) as f:
            flat = json.load(f)
        from mobilenet_v3.modeling.heads.lraspp import SegmenterConfig
        config = SegmenterConfig.from_flat(flat)
        size = _size(FLAGS.resolution, config)
        return export(folder, run_dir, config, size)
    except (ValueError, OSError) as e:
        print(f"export_segmenter.py: {e}", file=sys.stderr)
        return 1


def export(folder, run_dir, config, size):
    import tf_keras
    import mobilenet_v3.modeling  # noqa: F401  (registers the custom layers)
    from mobilenet_v3 import files
    from mobilenet_v3.segmentation import export as exporter
    trained = tf_keras.models.load_model(os.path.join(folder, "model.keras"))
    calibration, held_out, masks = _images(run_dir, size, FLAGS.calibration_images,
                                           FLAGS.check_images)
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    report = {"model": folder, "head": config.seg.head, "resolution": list(size),
              "classes": config.classes, "files": {}}
    for fmt in FLAGS.formats:
        form = "fused" if fmt == "float32" else "unfused"
        graph = exporter.inference_model(trained, config, form, size)
        tflite = exporter.convert(graph, fmt, lambda: iter(calibration))
        path = os.path.join(FLAGS.output_dir, f"{config.seg.head}_{fmt}.tflite")
        files.atomic_write(path, tflite)
        entry = exporter.describe(tflite, fmt)
        entry["agreement"] = a = exporter.pixel_agreement(tflite, graph, held_out, masks)
        report["files"][path] = entry
        print(f"{path}: {len(tflite) / 1e6:.2f} MB, {entry['xnnpack_partitions']} XNNPACK "
              f"partition(s); argmax agrees with Keras on {a['argmax_agreement']:.2%} of "
              f"pixels (worst image {a['worst_image_agreement']:.2%}); mIoU {a['mIoU_tflite']:.4f}"
              f" (Keras {a['mIoU_keras']:.4f}) on {a['images']} held-out images", flush=True)
    labels = os.path.join(folder, "labels.txt")
    if os.path.isfile(labels):
        with open(labels) as src, open(os.path.join(FLAGS.output_dir, "labels.txt"), "w") as dst:
            dst.write(src.read())
    with open(os.path.join(FLAGS.output_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=2, default=str)
    return 0


if __name__ == "__main__":
    app.run(main)
