"""Export a trained SSDLite detector to TFLite with the TFLite_Detection_PostProcess op.

    python export_detector.py --model=/tmp/ssdlite_demo --output_dir=/tmp/ssdlite_tflite \
        [--formats=float32,int8] [--calibration_images=200] [--check_images=50]

--model is a train.py run folder (its final/ model) or a final/ folder. Writes
ssdlite_<format>.tflite, labels.txt (line k = class k of the `classes` output) and
report.json (ops, XNNPACK partitions, float tensors inside int8, agreement of the file's
detections with the Keras model's on held-out images). Exit 1 with a message on bad input.
"""

import json
import os
import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "train.py --model_dir (uses final/) or a final/ folder.")
flags.DEFINE_string("output_dir", None, "Where the .tflite files and report.json go.")
flags.DEFINE_list("formats", ["float32", "int8"], "float32 and/or int8.")
flags.DEFINE_integer("calibration_images", 200, "int8: training images for calibration.")
flags.DEFINE_integer("check_images", 50, "Held-out images compared with the Keras model.")
flags.DEFINE_float("min_score", 0.3, "Agreement: Keras detections above this score.")


def _find(path):
    final = os.path.join(path, "final")
    folder = final if os.path.isdir(final) else path
    files = [os.path.join(folder, f) for f in ("model.keras", "model_config.json")]
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise ValueError(f"{path!r} is not a trained detector (missing {missing[0]!r}); pass "
                         "the --model_dir of `train.py --task=detection`")
    run_dir = os.path.dirname(folder) if folder == final else None
    return folder, run_dir


def main(argv):
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        print(f"export_detector.py: unexpected arguments {argv[1:]}", file=sys.stderr)
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
        from mobilenet_v3.modeling.heads.ssdlite import DetectorConfig
        config = DetectorConfig.from_flat(flat)
        return export(folder, run_dir, config)
    except (ValueError, OSError) as e:
        print(f"export_detector.py: {e}", file=sys.stderr)
        return 1


def _images(run_dir, config, count_train, count_eval):
    """(calibration images, held-out images) in [-1, 1] from the run's data."""
    import numpy as np
    from mobilenet_v3.detection import data as data_lib
    record = {}
    if run_dir and os.path.isfile(os.path.join(run_dir, "train_config.json")):
        with open(os.path.join(run_dir, "train_config.json")) as f:
            record = json.load(f).get("data", {})
    fields = {k: v for k, v in record.items()
              if k in data_lib.DetectionDataConfig.__dataclass_fields__}
    fields["image_size"] = config.input_shape[0]
    source = data_lib.open_source(data_lib.DetectionDataConfig(**fields))
    size = config.input_shape[0]
    if source.train_element is not None:
        train = [data_lib.eval_preprocess(source.train_element(i)[0], size).numpy()
                 for i in range(min(count_train, source.num_train))]
    else:
        train = [data_lib.eval_preprocess(data_lib._as_image(ex[0]), size).numpy()
                 for ex in source.train_stream(0, None).take(count_train)]
    held = [data_lib.eval_preprocess(ex[0], size).numpy()
            for ex in source.eval_examples().take(count_eval)]
    return np.stack(train), np.stack(held)


def export(folder, run_dir, config):
    import tf_keras
    from mobilenet_v3 import files
    from mobilenet_v3.export import detection as exporter
    model = tf_keras.models.load_model(os.path.join(folder, "model.keras"))
    calibration, held_out = _images(run_dir, config, FLAGS.calibration_images,
                                    FLAGS.check_images)
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    report = {"model": folder, "classes_with_background": config.classes, "files": {}}
    for fmt in FLAGS.formats:
        form = "fused" if fmt == "float32" else "unfused"
        graph = exporter.inference_model(model, config, form)
        tflite = exporter.convert(graph, config, fmt, lambda: iter(calibration))
        path = os.path.join(FLAGS.output_dir, f"ssdlite_{fmt}.tflite")
        files.atomic_write(path, tflite)
        entry = exporter.describe(tflite, fmt)
        entry["agreement"] = exporter.agreement(
            exporter.run(tflite, held_out), exporter.keras_detections(graph, config, held_out),
            FLAGS.min_score)
        report["files"][path] = entry
        a = entry["agreement"]
        print(f"{path}: {len(tflite) / 1e6:.2f} MB, {entry['xnnpack_partitions']} XNNPACK "
              f"partition(s); finds {a['found']}/{a['reference_detections']} Keras detections "
              f"(score >= {a['min_score']}), max box diff {a['max_box_diff']:.4f}, max score "
              f"diff {a['max_score_diff']:.4f}", flush=True)
    labels = os.path.join(folder, "labels.txt")
    if os.path.isfile(labels):
        names = [n for n in open(labels).read().split("\n") if n][1:]   # drop background
        with open(os.path.join(FLAGS.output_dir, "labels.txt"), "w") as f:
            f.write("\n".join(names) + "\n")
    with open(os.path.join(FLAGS.output_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=2, default=str)
    return 0


if __name__ == "__main__":
    app.run(main)
