"""SSDLite (with its TFLite_Detection_PostProcess op) vs its backbone alone, host latency.

    python benchmark/ssdlite_latency.py [--resolution=320] [--classes=91] [--runs=30]

Builds Large-reduced-tail and Small-reduced-tail SSDLite (random weights, 91 class slots)
and the same backbones without head (features up to C5), exports float32 and int8 (PTQ on
random images: latency does not depend on the weights' values), and times all files
interleaved in one process, one thread pinned to one core (mobilenet_v3.bench.timing).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

flags.DEFINE_integer("resolution", 320, "Input resolution.")
flags.DEFINE_integer("classes", 91, "Class slots with background.")
flags.DEFINE_integer("runs", 30, "Invokes per model per round.")
flags.DEFINE_integer("repeats", 3, "Interleaved rounds.")
flags.DEFINE_string("output_dir", "/tmp/ssdlite_bench", "Where the .tflite files go.")
FLAGS = flags.FLAGS


def main(_):
    import numpy as np
    from mobilenet_v3 import ModelConfig, build_model
    from mobilenet_v3.analysis import tflite_inspect
    from mobilenet_v3.bench import timing
    from mobilenet_v3.export import convert as classifier_export, detection as exporter
    from mobilenet_v3.modeling.heads.ssdlite import DetectorConfig, build_ssdlite
    r = FLAGS.resolution
    images = np.random.RandomState(0).uniform(-1, 1, (16, r, r, 3)).astype(np.float32)
    models = {}
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    for name in ("small", "large"):
        for fmt in ("float32", "int8"):
            form = "fused" if fmt == "float32" else "unfused"
            det = DetectorConfig.create(classes=FLAGS.classes, name=name, reduced_tail=True,
                                        input_shape=(r, r, 3), include_preprocessing=False,
                                        batch_size=1, hard_swish_form=form)
            models[f"ssdlite_{name}_rt_{fmt}"] = exporter.convert(
                build_ssdlite(det), det, fmt, lambda: iter(images))
            backbone = build_model(ModelConfig.from_flat(
                name=name, include_top=False, input_shape=(r, r, 3),
                include_preprocessing=False, batch_size=1, hard_swish_form=form))
            models[f"backbone_{name}_{fmt}"] = classifier_export.convert(
                backbone, fmt, (lambda: iter(images)) if fmt == "int8" else None)
    for key, data in models.items():
        with open(os.path.join(FLAGS.output_dir, key + ".tflite"), "wb") as f:
            f.write(data)
    timing.pin_to_core(0)
    result = timing.time_interleaved(models, warmup=5, runs=FLAGS.runs,
                                     repeats=FLAGS.repeats, threads=1)
    print(f"| model @{r} | format | min ms | median ms | vs backbone (min) | "
          "XNNPACK partitions |")
    print("|---|---|---|---|---|---|")
    for name in ("small", "large"):
        for fmt in ("float32", "int8"):
            base = result[f"backbone_{name}_{fmt}"].min_ms
            for key in (f"backbone_{name}_{fmt}", f"ssdlite_{name}_rt_{fmt}"):
                t = result[key]
                print(f"| {key.rsplit('_', 1)[0]} | {fmt} | {t.min_ms:.2f} | "
                      f"{t.median_ms:.2f} | {t.min_ms / base:.2f}x | "
                      f"{tflite_inspect.xnnpack_partitions(models[key])} |")
    return 0


if __name__ == "__main__":
    sys.exit(app.run(main))
