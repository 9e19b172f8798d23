"""int8 on real networks: accuracy, XNNPACK partitions and latency per h-swish form,
calibration method and size, and QAT, against keras.applications' int8 (same run).

    python -m mobilenet_v3.weights.convert ../shared/models/v3-small_224_1.0_uint8.tflite \
        --output=/tmp/official_small --classes=1001
    python train.py --model=large --resolution=96 --dataset=image_folder \
        --image_folder=../shared/datasets/cifar10/train ... --model_dir=/tmp/large_cifar96
    python -m benchmark.int8_accuracy --model=/tmp/official_small/model.keras \
        --large_run=/tmp/large_cifar96 [--qat_steps=30] [--repeats=5 --runs=50]

Small: Google's official weights imported into our Small; the 750 photos of
../shared/datasets/imagenet_samples split per class into 2 calibration + 3 scoring photos
(mobilenet_v3.bench.imagenet_photos). Large: a train.py run trained on real photos (there are no
official Large weights here); calibration images come from its training split, scoring images
from its held-out split. No top-1 or agreement is measured on a calibration image. Latency:
one thread pinned to one core, every file timed interleaved in one process (min over rounds;
this machine is noisy, +-5% is parity).
"""

import dataclasses
import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "/tmp/official_small/model.keras", "The imported official Small "
                    "('' : no Small rows).")
flags.DEFINE_string("large_run", "", "A train.py run folder of a Large trained on real photos "
                    "('' : no Large rows).")
flags.DEFINE_integer("large_score_images", 0, "Held-out images scored for the Large run "
                     "(0: all of them).")
flags.DEFINE_integer("large_calibration_images", 300, "Training images that calibrate it.")
flags.DEFINE_list("calibration_sizes", ["30", "100", "300"],
                  "Calibration set sizes tried with the default form (folded, exact).")
flags.DEFINE_integer("qat_steps", 30, "QAT fine-tuning steps (0: no qat_int8 rows).")
flags.DEFINE_integer("qat_batch_size", 16, "QAT batch.")
flags.DEFINE_list("qat_learning_rates", ["1e-6"], "QAT constant rates (RMSProp), one qat_int8 "
                  "row each (1e-4 wrecks the imported Small within 30 steps: its first RMSProp "
                  "steps move every weight by ~3x the rate).")
flags.DEFINE_integer("warmup", 20, "Warm-up invokes per file.")
flags.DEFINE_integer("runs", 50, "Timed invokes per file per round.")
flags.DEFINE_integer("repeats", 5, "Interleaved rounds.")
flags.DEFINE_integer("core", 0, "CPU core to pin to (-1: no pinning).")
flags.DEFINE_string("output", "benchmark/int8_accuracy.json", "Where the rows go (JSON).")

FORMS = ("folded", "unfused", "fused")


@dataclasses.dataclass
class Network:
    """A trained network with its calibration and scoring images ([-1, 1]) and QAT data."""
    name: str
    source: str
    trained: object
    cal: object
    score: object
    labels: object
    qat_data: object                  # DataConfig the QAT fine-tuning trains on
    classes: int


def _small(work: str) -> Network:
    from mobilenet_v3.bench import imagenet_photos as photos
    from mobilenet_v3.data import pipeline
    cal, _, score, labels = photos.split()
    view, class_list = photos.labelled_view(os.path.join(work, "photos"),
                                            per_class=photos.CALIBRATION_PER_CLASS)
    data = pipeline.DataConfig(source="image_folder", image_folder=view, class_list=class_list,
                               held_out_fraction=0.5, image_size=224)
    return Network("small", "Google's official Small, ImageNet photos",
                   photos.official_small(FLAGS.model), cal, score, labels, data, 1001)


def _large(run: str) -> Network:
    from mobilenet_v3 import export
    from mobilenet_v3.data import pipeline, sampling
    from mobilenet_v3.training.run_dir import RunDir
    trained = export.load_trained(run)
    data = RunDir(run).data_config()
    source = pipeline.open_source(data)
    score, labels = sampling.sample_images(source, data.image_size, "eval",
                                           FLAGS.large_score_images or source.num_eval)
    cal = sampling.sample_images(source, data.image_size, "train",
                                 FLAGS.large_calibration_images)[0]
    return Network("large", f"Large trained by {run} ({data.image_folder or data.source})",
                   trained, cal, score, labels, data, trained.config.head.classes)


def _rows(net: Network, work: str, rows, files):
    """Accuracy rows of one network; fills `files` with the timed ones."""
    import numpy as np
    import tensorflow as tf
    from mobilenet_v3.analysis import tflite_inspect
    from mobilenet_v3.bench import imagenet_photos as photos
    from mobilenet_v3.bench.calibration import calibrate_batch_norm
    from mobilenet_v3.bench.peers import keras_mobilenet_v3
    from mobilenet_v3.export import convert, folding
    from mobilenet_v3.export.compression import finetune

    config = net.trained.config
    float_model = folding.rebuild(net.trained.model, config.for_export("fused", False, None))
    float_out = photos.keras_outputs(float_model, net.score)
    float_top1 = float(np.mean(float_out.argmax(-1) == net.labels))
    print(f"{net.name}: float32 Keras top-1 on {len(net.score)} scoring images: "
          f"{float_top1:.4f}")

    def measure(key, tflite, reference_out=None, timed=False, **info):
        out = tflite_inspect.run(tflite, net.score)
        row = {"key": key, "network": net.name, **info,
               "partitions": tflite_inspect.xnnpack_partitions(tflite),
               "size_mb": round(len(tflite) / 1e6, 2),
               "top1": round(float(np.mean(out.argmax(-1) == net.labels)), 4),
               "agreement_with_float": round(float(np.mean(
                   out.argmax(-1) == float_out.argmax(-1))), 4),
               "saturated_biases": len(tflite_inspect.saturated_biases(tflite))}
        if reference_out is not None:
            row["agreement_with_qat_keras"] = round(float(np.mean(
                out.argmax(-1) == reference_out.argmax(-1))), 4)
        rows.append(row)
        if timed:
            files[key] = tflite
        print(json.dumps(row))

    measure(f"{net.name} float32 fused", convert.convert(float_model), timed=True,
            format="float32", form="fused", calibration="-", images=0)
    for form in FORMS:
        model = folding.rebuild(net.trained.model, config.for_export(form, False, None))
        for method in ("exact", "converter"):
            sizes = [int(n) for n in FLAGS.calibration_sizes] \
                if (form, method) == ("folded", "exact") else [len(net.cal)]
            for n in sizes:
                tflite = convert.convert(model, "int8", representative_images=lambda: net.cal[:n],
                                         io_dtype=tf.int8, calibration=method)
                measure(f"{net.name} int8 {form} {method} {n}", tflite,
                        timed=method == "exact" and n == len(net.cal), format="int8",
                        form=form, calibration=method, images=n)
    for rate in FLAGS.qat_learning_rates if FLAGS.qat_steps else ():
        qat_model = finetune.qat_finetune(
            net.trained.model, config.for_export("folded", False, None, batch_size=None),
            net.qat_data, steps=FLAGS.qat_steps, batch_size=FLAGS.qat_batch_size,
            learning_rate=float(rate), seed=0, work_dir=tempfile.mkdtemp(dir=work),
            calibration_images=net.cal)
        qat_out = photos.keras_outputs(qat_model, net.score)
        measure(f"{net.name} qat_int8 folded lr{rate}",
                convert.convert(qat_model, "int8", io_dtype=tf.int8), qat_out, timed=True,
                format="qat_int8", form="folded",
                calibration=f"QAT {FLAGS.qat_steps} steps, lr {rate}", images=len(net.cal),
                qat_keras_top1=round(float(np.mean(qat_out.argmax(-1) == net.labels)), 4))

    peer = keras_mobilenet_v3(net.name, config.input_shape, classes=net.classes,
                              classifier_activation=None)
    calibrate_batch_norm(peer, net.cal[:16])
    files[f"{net.name} keras.applications int8"] = convert.convert(
        peer, "int8", representative_images=lambda: net.cal, io_dtype=tf.int8)
    return float_top1


def _table(rows):
    print("| network | format | h-swish | calibration | images | XNNPACK partitions | top-1 | "
          "agreement with float | with QAT Keras (its top-1) | min ms | median ms | "
          "/ keras.applications int8 (min) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        qat = f"{r['agreement_with_qat_keras']} ({r['qat_keras_top1']})" \
            if "qat_keras_top1" in r else "-"
        print(f"| {r['network']}{' (keras.applications)' if 'keras' in r['key'] else ''} | "
              f"{r.get('format', '-')} | {r.get('form', '-')} | {r.get('calibration', '-')} | "
              f"{r.get('images', '-')} | {r['partitions']} | {r.get('top1', '-')} | "
              f"{r.get('agreement_with_float', '-')} | {qat} | {r.get('min_ms', '-')} | "
              f"{r.get('median_ms', '-')} | {r.get('vs_keras_int8', '-')} |")


def main(argv):
    del argv
    from absl import logging
    logging.set_verbosity(logging.ERROR)
    from mobilenet_v3.analysis import tflite_inspect
    from mobilenet_v3 import files as files_lib
    from mobilenet_v3.bench import timing

    for path, what in ((FLAGS.model, "--model"), (FLAGS.large_run, "--large_run")):
        if path and not os.path.exists(path):
            print(f"int8_accuracy.py: {what}={path} not found (see this script's docstring)",
                  file=sys.stderr)
            return 1
    if not (FLAGS.model or FLAGS.large_run):
        print("int8_accuracy.py: give --model and/or --large_run", file=sys.stderr)
        return 1
    rows, files, networks = [], {}, {}
    with tempfile.TemporaryDirectory() as work:
        for make, arg in ((_small, work), (_large, FLAGS.large_run)):
            if (make is _small and FLAGS.model) or (make is _large and FLAGS.large_run):
                net = make(arg)
                networks[net.name] = {"source": net.source, "scoring_images": len(net.score),
                                      "calibration_images": len(net.cal),
                                      "float_top1": _rows(net, work, rows, files)}
    timing.pin_to_core(None if FLAGS.core < 0 else FLAGS.core)
    timings = timing.time_interleaved(files, FLAGS.warmup, FLAGS.runs, FLAGS.repeats, 1)
    by_key = {r["key"]: r for r in rows}
    for key, t in timings.items():
        if key not in by_key:
            by_key[key] = {"key": key, "network": key.split()[0], "format": "int8",
                           "partitions": tflite_inspect.xnnpack_partitions(files[key])}
            rows.append(by_key[key])
        peer = timings[f"{key.split()[0]} keras.applications int8"]
        by_key[key].update(min_ms=round(t.min_ms, 3), median_ms=round(t.median_ms, 3),
                           vs_keras_int8=round(t.min_ms / peer.min_ms, 3))
    print()
    for name, info in networks.items():
        print(f"{name}: {info['source']}: float32 Keras top-1 {info['float_top1']:.4f} on "
              f"{info['scoring_images']} scoring images (calibration: "
              f"{info['calibration_images']} others)")
    _table(rows)
    files_lib.atomic_write_json(FLAGS.output, {"networks": networks, "rows": rows})
    return 0


if __name__ == "__main__":
    app.run(main)
