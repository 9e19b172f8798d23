"""int8 on a real detector: Google's SSDLite-MobileNetV3-Small COCO weights in our detector,
Keras / float32 / pure int8 / the exporter's mixed int8, scored by COCO mAP in one table.

    python -m benchmark.int8_detection_official [--calibration_images=80] \
        [--check_images=40] [--output_dir=/tmp/int8_detection_official] [--output_json=...]

Weights: ../shared/models/ssdlite_mobilenet_v3_small_coco (mobilenet_v3.weights.
official_ssdlite, from the Core ML conversion of the official checkpoint). Calibration: the
train2017 photos of ../shared/datasets/coco_mini; the exporter's agreement checks and the mAP:
its val2017 photos (never the same images). mAP is evaluate.py's detection evaluation
(pycocotools, official annotations and category ids, crowd ignored) on every val2017 photo;
the folder written here holds a model folder and the files, so that

    python evaluate.py --model=OUT/model --model=OUT/mixed/ssdlite_int8.tflite ... \
        --annotations=../shared/datasets/coco_mini/annotations/instances_val2017.json \
        --images=../shared/datasets/coco_mini/val2017

gives the same numbers. Latency: one thread pinned to one core, interleaved, min over rounds.
"""

import glob
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared")
COCO = os.path.join(SHARED, "datasets", "coco_mini")
flags.DEFINE_integer("calibration_images", 80, "COCO train2017 photos that calibrate int8.")
flags.DEFINE_integer("check_images", 40, "COCO val2017 photos of the exporter's checks.")
flags.DEFINE_integer("rounds", 5, "Latency rounds (0: no latency).")
flags.DEFINE_string("output_dir", "/tmp/int8_detection_official", "Where the files go.")
flags.DEFINE_string("output_json", None, "Also write the results here.")


def photos(split, count, size):
    import numpy as np
    import tensorflow as tf
    from mobilenet_v3.detection.data import eval_preprocess
    files = sorted(glob.glob(os.path.join(COCO, split, "*.jpg")))
    return np.stack([eval_preprocess(tf.io.decode_jpeg(tf.io.read_file(f), 3), size).numpy()
                     for f in files[:count]])


def save_model_folder(model, config, folder):
    """model.keras + model_config.json + labels.txt: what evaluate.py and export take."""
    from mobilenet_v3 import files
    os.makedirs(folder, exist_ok=True)
    model.save(os.path.join(folder, "model.keras"))
    files.atomic_write_json(os.path.join(folder, "model_config.json"), config.to_flat())
    names = open(os.path.join(SHARED, "models", "ssdlite_mobilenet_v3_small_coco",
                              "coco_labels.txt")).read().split("\n")
    files.atomic_write_text(os.path.join(folder, "labels.txt"),
                            "\n".join(["background"] + [n for n in names if n][:90]) + "\n")


def main(argv):
    del argv
    from mobilenet_v3 import files as file_lib
    from mobilenet_v3.export import task_export
    from mobilenet_v3.tasks import detection
    from mobilenet_v3.tasks.eval_config import EvalConfig
    from mobilenet_v3.weights import official_ssdlite
    mlmodel = os.path.join(SHARED, "models", "ssdlite_mobilenet_v3_small_coco",
                           "ssd_mobilenet.mlmodel")
    if not os.path.isfile(mlmodel):
        print(f"int8_detection_official: {mlmodel} not found", file=sys.stderr)
        return 1
    model, config = official_ssdlite.load_official_small(mlmodel)
    size = config.input_shape[0]
    out = FLAGS.output_dir
    save_model_folder(model, config, os.path.join(out, "model"))
    calibration = photos("train2017", FLAGS.calibration_images, size)
    check = photos("val2017", FLAGS.check_images, size)
    labels = open(os.path.join(out, "model", "labels.txt")).read().split("\n")[1:91]
    rows, paths = {}, {}
    for name, max_blocks, guard in (("pure int8", 0, 0.0),
                                    ("mixed int8", 8, detection.DEFAULT_MIN_RECALL)):
        options = task_export.TaskExportConfig(
            output_dir=os.path.join(out, name.split()[0]), basename="ssdlite",
            max_float_blocks=max_blocks, min_agreement=guard,
            target_agreement=detection.DEFAULT_TARGET_RECALL, overwrite=True)
        try:
            reports = detection.export_model(model, config, labels, calibration, check,
                                             options, log=print)
        except task_export.Int8AgreementError:      # its report is kept: show it
            reports = {fmt: json.load(open(os.path.join(options.output_dir, f)))
                       for fmt, f in (("float32", "ssdlite_float32.json"),
                                      ("int8", "ssdlite_int8.rejected.json"))}
        if "float32" not in rows:
            rows["float32"] = reports["float32"]
            paths["float32"] = os.path.join(options.output_dir, "ssdlite_float32.tflite")
        rows[name] = reports["int8"]
        paths[name] = os.path.join(options.output_dir, reports["int8"]["file"])
    evaluation = EvalConfig(
        annotations=os.path.join(COCO, "annotations", "instances_val2017.json"),
        images=os.path.join(COCO, "val2017"))
    scores = {}
    for nms in ("per_class", "fast"):
        evaluation.nms = nms
        scores[f"Keras ({nms} NMS)"] = detection.evaluate(
            [os.path.join(out, "model")], evaluation)["results"][0]
    for name, path in paths.items():
        scores[name] = detection.evaluate([path], evaluation)["results"][0]
    latency = {}
    if FLAGS.rounds:
        from mobilenet_v3.bench import timing
        timing.pin_to_core(sorted(os.sched_getaffinity(0))[-1])
        timed = timing.time_interleaved({k: open(p, "rb").read() for k, p in paths.items()},
                                        warmup=10, runs=30, repeats=FLAGS.rounds)
        latency = {k: float(min(t.samples_ms)) for k, t in timed.items()}
    print("\n| model | mAP | mAP@.5 | finds float detections (recall) | float blocks | "
          "XNNPACK partitions | size MB | min ms (1 thread) |")
    print("|---|---|---|---|---|---|---|---|")
    result = {}
    for name, s in scores.items():
        r = rows.get(name)
        recall = f"{r['agreement']['recall']:.3f}" if r else "-"
        blocks = (", ".join(r["mixed"]["float_blocks"]) or "none") if r and "mixed" in r \
            else "-"
        parts = r["xnnpack_partitions"] if r else "-"
        mb = f"{r['size_bytes'] / 1e6:.2f}" if r else "-"
        ms = f"{latency[name]:.2f}" if name in latency else "-"
        print(f"| {name} | {s['mAP'] * 100:.1f} | {s['mAP50'] * 100:.1f} | {recall} | "
              f"{blocks} | {parts} | {mb} | {ms} |")
        result[name] = {"coco": s, "export": {k: r[k] for k in (
            "agreement", "xnnpack_partitions", "size_bytes", "mixed", "guard") if r and k in r},
            "min_ms": latency.get(name)}
    print(f"\n{len(calibration)} calibration images (train2017), {len(check)} check images "
          f"and {scores['float32']['images']} scored images (val2017)")
    if FLAGS.output_json:
        file_lib.atomic_write_json(FLAGS.output_json, result)
    return 0


if __name__ == "__main__":
    app.run(main)
