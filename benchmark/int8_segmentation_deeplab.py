"""int8 on a real segmenter: DeepLab's MobileNetV3-Small LR-ASPP (5 classes) in our segmenter,
pure int8 vs the mixed int8 the exporter writes, against the float32 file.

    python -m benchmark.int8_segmentation_deeplab [--resolution=513x1025] \
        [--calibration_images=40] [--check_images=20] [--output_json=...]

Weights: ../shared/models/deeplab_mnv3_small_lraspp_5class (mobilenet_v3.weights.deeplab_graph).
Calibration: COCO train2017 photos of ../shared/datasets/coco_mini; agreement: its val2017
photos (never the same images), each fitted into the input with its aspect kept and padded.
Agreement = share of pixels whose argmax class the int8 file shares with the float32 file.
Latency: one thread, interleaved, min over rounds (mobilenet_v3.bench.timing).
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
flags.DEFINE_string("resolution", "513x1025", "Export size HxW (the graph's own: 513x1025).")
flags.DEFINE_integer("calibration_images", 40, "COCO train2017 photos that calibrate int8.")
flags.DEFINE_integer("check_images", 20, "COCO val2017 photos the files are compared on.")
flags.DEFINE_integer("rounds", 3, "Latency rounds (0: no latency).")
flags.DEFINE_string("output_json", None, "Also write the results here.")
flags.DEFINE_string("output_dir", "/tmp/int8_segmentation_deeplab", "Where the files go.")


def photos(split, count, size):
    """COCO photos centre-cropped to the export's aspect and resized to it, [-1, 1]."""
    import numpy as np
    import tensorflow as tf
    from mobilenet_v3.tasks.segmentation import crop_to_aspect
    files = sorted(glob.glob(os.path.join(SHARED, "datasets", "coco_mini", split, "*.jpg")))
    return np.stack([crop_to_aspect(tf.io.decode_jpeg(tf.io.read_file(f), 3).numpy(), size)
                     for f in files[:count]])


def main(argv):
    del argv
    from mobilenet_v3.export import task_export
    from mobilenet_v3.modeling.heads.lraspp import build_segmenter
    from mobilenet_v3.tasks import segmentation
    from mobilenet_v3.weights import deeplab_graph
    graph_file = os.path.join(SHARED, "models", "deeplab_mnv3_small_lraspp_5class",
                              "frozen_inference_graph.pb")
    if not os.path.isfile(graph_file):
        print(f"int8_segmentation_deeplab: {graph_file} not found", file=sys.stderr)
        return 1
    h, w = (int(v) for v in FLAGS.resolution.lower().split("x"))
    config = deeplab_graph.deeplab_small_config(h, w, include_preprocessing=False)
    model = build_segmenter(config)
    deeplab_graph.load_frozen_graph(model, graph_file)
    calibration = photos("train2017", FLAGS.calibration_images, (h, w))
    check = photos("val2017", FLAGS.check_images, (h, w))
    labels = [f"class_{i}" for i in range(config.classes)]
    rows, files = {}, {}
    out = FLAGS.output_dir
    for name, max_float, min_agreement in (("pure int8", 0, 0.0), ("mixed int8", 8, None)):
        options = task_export.TaskExportConfig(
            output_dir=os.path.join(out, name.split()[0]), basename="lraspp",
            max_float_blocks=max_float,
            min_agreement=segmentation.DEFAULT_MIN_PIXEL_AGREEMENT
            if min_agreement is None else min_agreement,
            target_agreement=segmentation.DEFAULT_TARGET_CLASS_IOU)
        options.overwrite = True
        try:
            reports = segmentation.export_model(model, config, (h, w), labels,
                                                calibration, check, options, log=print)
        except task_export.Int8AgreementError:      # its report is kept: show it
            reports = {fmt: json.load(open(os.path.join(options.output_dir, f)))
                       for fmt, f in (("float32", "lraspp_float32.json"),
                                      ("int8", "lraspp_int8.rejected.json"))}
        if "float32" not in rows:
            rows["float32"] = reports["float32"]
            files["float32"] = os.path.join(options.output_dir, "lraspp_float32.tflite")
        rows[name] = reports["int8"]
        files[name] = os.path.join(options.output_dir, reports["int8"]["file"])
    latency = {}
    if FLAGS.rounds:
        from mobilenet_v3.bench import timing
        models = {k: open(p, "rb").read() for k, p in files.items()}
        timing.pin_to_core(sorted(os.sched_getaffinity(0))[-1])
        timed = timing.time_interleaved(models, warmup=3, runs=10, repeats=FLAGS.rounds)
        latency = {k: float(min(t.samples_ms)) for k, t in timed.items()}
    print(f"\n| file @{h}x{w} | pixel agreement with float32 | non-background | worst image "
          "| float blocks | XNNPACK partitions | size MB | min ms (1 thread) |")
    print("|---|---|---|---|---|---|---|---|")
    result = {}
    for name, r in rows.items():
        a = r["agreement"]
        floats = ", ".join(r["mixed"]["float_blocks"]) or "none" if name != "float32" else "-"
        ms = latency.get(name)
        print(f"| {name} | {a['pixel_agreement']:.4f} | {a['non_background_agreement']:.4f} | "
              f"{a['worst_image_agreement']:.4f} | {floats} | {r['xnnpack_partitions']} | "
              f"{r['size_bytes'] / 1e6:.2f} | {'-' if ms is None else f'{ms:.1f}'} |")
        result[name] = {"agreement": a, "xnnpack_partitions": r["xnnpack_partitions"],
                        "size_bytes": r["size_bytes"], "min_ms": ms,
                        "mixed": r.get("mixed"), "calibration_images": len(calibration)}
    if FLAGS.output_json:
        from mobilenet_v3 import files as file_lib
        file_lib.atomic_write_json(FLAGS.output_json, result)
    return 0


if __name__ == "__main__":
    app.run(main)
