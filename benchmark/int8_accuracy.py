"""int8 on a real ImageNet network: accuracy, XNNPACK partitions and latency per h-swish form,
calibration method and calibration size, against keras.applications' int8 (same run).

    python -m mobilenet_v3.weights.convert ../shared/models/v3-small_224_1.0_uint8.tflite \
        --output=/tmp/official_small --classes=1001
    python -m benchmark.int8_accuracy --model=/tmp/official_small/model.keras \
        [--qat_steps=30] [--large] [--repeats=5 --runs=50] [--output=benchmark/int8_accuracy.json]

Google's official MobileNetV3-Small weights imported into our Small; the 750 photos of
../shared/datasets/imagenet_samples split per class into 2 calibration + 3 scoring photos
(benchmark/imagenet_photos.py): every top-1 and agreement here is over the 450 scoring photos,
which no calibration ever sees. Latency: one thread pinned to one core, all files timed
interleaved in one process (min over rounds; this machine is noisy, +-5% is parity).
"""

import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "/tmp/official_small/model.keras", "The imported official Small.")
flags.DEFINE_list("calibration_sizes", ["30", "100", "300"],
                  "Calibration set sizes tried with the default form (folded, exact).")
flags.DEFINE_integer("qat_steps", 30, "QAT fine-tuning steps (0: no qat_int8 row).")
flags.DEFINE_integer("qat_batch_size", 16, "QAT batch.")
flags.DEFINE_float("qat_learning_rate", 1e-6, "QAT constant rate (RMSProp; 1e-4 wrecks the "
                   "imported Small within 30 steps: its first RMSProp steps move every weight "
                   "by ~3x the rate).")
flags.DEFINE_bool("large", False, "Also Large: random weights, BN calibrated on the photos, "
                  "latency and partitions only (there are no official Large weights here).")
flags.DEFINE_integer("warmup", 20, "Warm-up invokes per file.")
flags.DEFINE_integer("runs", 50, "Timed invokes per file per round.")
flags.DEFINE_integer("repeats", 5, "Interleaved rounds.")
flags.DEFINE_integer("core", 0, "CPU core to pin to (-1: no pinning).")
flags.DEFINE_string("output", "benchmark/int8_accuracy.json", "Where the rows go (JSON).")


def main(argv):
    del argv
    import numpy as np
    import tensorflow as tf
    from absl import logging
    logging.set_verbosity(logging.ERROR)

    from mobilenet_v3.bench import imagenet_photos as photos
    from mobilenet_v3 import ModelConfig, build_model
    from mobilenet_v3.analysis import tflite_inspect
    from mobilenet_v3.bench import timing
    from mobilenet_v3.bench.calibration import calibrate_batch_norm
    from mobilenet_v3.bench.peers import keras_mobilenet_v3
    from mobilenet_v3.data import pipeline
    from mobilenet_v3.export import convert, folding
    from mobilenet_v3.export.compression import finetune

    if not os.path.exists(FLAGS.model):
        print(f"int8_accuracy.py: {FLAGS.model} not found; make it with the convert command in "
              "this script's docstring", file=sys.stderr)
        return 1
    cal, cal_labels, score, labels = photos.split()
    trained = photos.official_small(FLAGS.model)
    float_model = folding.rebuild(trained.model, trained.config.for_export("fused", False, None))
    float_out = photos.keras_outputs(float_model, score)
    float_top1 = float(np.mean(float_out.argmax(-1) == labels))
    print(f"float32 Keras top-1 on {len(score)} scoring photos: {float_top1:.4f}")

    rows, files = [], {}

    def measure(key, tflite, reference_out, **info):
        out = tflite_inspect.run(tflite, score)
        row = {"key": key, **info, "partitions": tflite_inspect.xnnpack_partitions(tflite),
               "size_mb": round(len(tflite) / 1e6, 2),
               "top1": round(float(np.mean(out.argmax(-1) == labels)), 4),
               "agreement_with_float": round(float(np.mean(
                   out.argmax(-1) == float_out.argmax(-1))), 4)}
        if reference_out is not float_out:
            row["agreement_with_qat_keras"] = round(float(np.mean(
                out.argmax(-1) == reference_out.argmax(-1))), 4)
        rows.append(row)
        files[key] = tflite
        print(json.dumps(row))

    files["small float32 fused"] = convert.convert(float_model)
    measure("small float32 fused", files["small float32 fused"], float_out, network="small",
            format="float32", form="fused", calibration="-", images=0)
    for form in ("folded", "unfused", "fused"):
        model = folding.rebuild(trained.model, trained.config.for_export(form, False, None))
        for method in ("exact", "converter"):
            sizes = [int(n) for n in FLAGS.calibration_sizes] \
                if (form, method) == ("folded", "exact") else [len(cal)]
            for n in sizes:
                tflite = convert.convert(model, "int8", representative_images=lambda: cal[:n],
                                         io_dtype=tf.int8, calibration=method)
                measure(f"small int8 {form} {method} {n}", tflite, float_out, network="small",
                        format="int8", form=form, calibration=method, images=n)
    if FLAGS.qat_steps:
        with tempfile.TemporaryDirectory() as work:
            view = photos.labelled_view(os.path.join(work, "photos"),
                                        per_class=photos.CALIBRATION_PER_CLASS)
            data = pipeline.DataConfig(source="image_folder", image_folder=view,
                                       held_out_fraction=0.5, image_size=224)
            qat_model = finetune.qat_finetune(
                trained.model, trained.config.for_export("folded", False, None, batch_size=None),
                data, steps=FLAGS.qat_steps, batch_size=FLAGS.qat_batch_size,
                learning_rate=FLAGS.qat_learning_rate, seed=0,
                work_dir=os.path.join(work, "run"),
                calibration_images=cal)
        qat_out = photos.keras_outputs(qat_model, score)
        print(f"QAT Keras top-1 {np.mean(qat_out.argmax(-1) == labels):.4f}, agreement with "
              f"float {np.mean(qat_out.argmax(-1) == float_out.argmax(-1)):.4f}")
        measure("small qat_int8 folded", convert.convert(qat_model, "int8", io_dtype=tf.int8),
                qat_out, network="small", format="qat_int8", form="folded",
                calibration=f"QAT {FLAGS.qat_steps} steps", images=len(cal),
                qat_keras_top1=round(float(np.mean(qat_out.argmax(-1) == labels)), 4))

    peer = keras_mobilenet_v3("small", (224, 224, 3), classes=1001, classifier_activation=None)
    calibrate_batch_norm(peer, cal[:16])
    files["small keras.applications int8"] = convert.convert(
        peer, "int8", representative_images=lambda: cal, io_dtype=tf.int8)
    if FLAGS.large:
        base = ModelConfig.from_flat(name="large", include_preprocessing=False,
                                     classifier_activation=None)
        large = build_model(base)
        calibrate_batch_norm(large, cal[:16])
        for form in ("folded", "unfused", "fused"):
            model = folding.rebuild(large, base.for_export(form, False, None))
            files[f"large int8 {form} exact"] = convert.convert(
                model, "int8", representative_images=lambda: cal[:100], io_dtype=tf.int8)
        peer = keras_mobilenet_v3("large", (224, 224, 3), classifier_activation=None)
        calibrate_batch_norm(peer, cal[:16])
        files["large keras.applications int8"] = convert.convert(
            peer, "int8", representative_images=lambda: cal[:100], io_dtype=tf.int8)

    timed = {k: v for k, v in files.items() if " converter " not in k and not (
        " folded exact " in k and not k.endswith(f" {len(cal)}"))}
    timing.pin_to_core(None if FLAGS.core < 0 else FLAGS.core)
    timings = timing.time_interleaved(timed, FLAGS.warmup, FLAGS.runs, FLAGS.repeats, 1)
    by_key = {r["key"]: r for r in rows}
    for key, t in timings.items():
        words = key.split()
        row = by_key.setdefault(key, {
            "key": key, "network": words[0], "format": "int8",
            "form": words[2] if words[1] == "int8" else "-",
            "calibration": "exact" if words[1] == "int8" else "-",
            "partitions": tflite_inspect.xnnpack_partitions(files[key])})
        peer_key = f"{key.split()[0]} keras.applications int8"
        row.update(min_ms=round(t.min_ms, 3), median_ms=round(t.median_ms, 3),
                   vs_keras_int8=round(t.min_ms / timings[peer_key].min_ms, 3))
        if key not in [r["key"] for r in rows]:
            rows.append(row)
    print(f"\nfloat32 Keras top-1 {float_top1:.4f} on {len(score)} scoring photos "
          f"(calibration: the other {len(cal)})")
    print("| network | format | h-swish | calibration | images | XNNPACK partitions | top-1 | "
          "agreement with float | min ms | median ms | / keras.applications int8 (min) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['network']}{' (keras.applications)' if 'keras' in r['key'] else ''} | "
              f"{r.get('format', '-')} | "
              f"{r.get('form', '-')} | {r.get('calibration', '-')} | {r.get('images', '-')} | "
              f"{r['partitions']} | {r.get('top1', '-')} | {r.get('agreement_with_float', '-')} "
              f"| {r.get('min_ms', '-')} | {r.get('median_ms', '-')} | "
              f"{r.get('vs_keras_int8', '-')} |")
    with open(FLAGS.output, "w") as f:
        json.dump({"float_top1": float_top1, "scoring_images": len(score),
                   "calibration_images": len(cal), "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    app.run(main)
