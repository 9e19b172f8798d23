"""LR-ASPP vs R-ASPP on the same MobileNetV3 backbone, and RF2 vs the full last stage: host
latency of float32 and int8 TFLite files at a phone-like resolution.

    python benchmark/lraspp_latency.py [--resolution=512x1024] [--model=large] [--runs=5]

Builds, with random weights (latency does not depend on their values) and 19 classes:
LR-ASPP(128) on the RF2 backbone (the paper's), LR-ASPP(128) on the full last stage, and
R-ASPP(256) on the full last stage (Table 7's baseline), all at output stride 16; exports
float32 and int8 (BN statistics calibrated on random images, PTQ on them, the int8 pool as a depthwise conv so XNNPACK takes it)
and times all files interleaved in one process, one thread pinned to one core
(mobilenet_v3.bench.timing; minimum of rounds).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

flags.DEFINE_string("resolution", "512x1024", "Input HxW.")
flags.DEFINE_enum("model", "large", ["large", "small"], "Backbone.")
flags.DEFINE_integer("classes", 19, "Classes.")
flags.DEFINE_integer("runs", 5, "Invokes per model per round.")
flags.DEFINE_integer("repeats", 3, "Interleaved rounds.")
flags.DEFINE_string("output_dir", "/tmp/lraspp_bench", "Where the .tflite files go.")
FLAGS = flags.FLAGS

VARIANTS = (("lraspp_rf2", "lraspp", True), ("lraspp_full", "lraspp", False),
            ("raspp_full", "raspp", False))


def main(_):
    import numpy as np
    from mobilenet_v3.analysis import tflite_inspect
    from mobilenet_v3.analysis import cost as cost_lib
    from mobilenet_v3.bench import timing
    from mobilenet_v3.bench.calibration import calibrate_batch_norm
    from mobilenet_v3.modeling.heads.lraspp import SegmenterConfig, build_segmenter
    from mobilenet_v3.segmentation import export as exporter
    h, w = (int(v) for v in FLAGS.resolution.lower().split("x"))
    images = np.random.RandomState(0).uniform(-1, 1, (4, h, w, 3)).astype(np.float32)
    models, madds = {}, {}
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    for key, head, rf2 in VARIANTS:
        config = SegmenterConfig.create(head=head, classes=FLAGS.classes, name=FLAGS.model,
                                        rf2=rf2, input_shape=(h, w, 3),
                                        include_preprocessing=False)
        madds[key] = cost_lib.totals(cost_lib.profile(build_segmenter(config))).madds
        for fmt in ("float32", "int8"):
            form = "fused" if fmt == "float32" else "unfused"
            graph = exporter.inference_model(None, config, form)
            # BN statistics from real passes: with the initial ones, int8 PTQ of random
            # weights gets degenerate scales that XNNPACK refuses (20 partitions measured;
            # a trained model exports in 1)
            calibrate_batch_norm(graph, images[:2])
            models[f"{key}_{fmt}"] = exporter.convert(graph, fmt, lambda: iter(images))
            print(f"exported {key}_{fmt}", flush=True)
    for key, data in models.items():
        with open(os.path.join(FLAGS.output_dir, key + ".tflite"), "wb") as f:
            f.write(data)
    timing.pin_to_core(0)
    result = timing.time_interleaved(models, warmup=2, runs=FLAGS.runs,
                                     repeats=FLAGS.repeats, threads=1)
    print(f"| {FLAGS.model} @{h}x{w}, OS16 | MAdds | format | min ms | median ms | "
          "vs LR-ASPP RF2 (min) | XNNPACK partitions |")
    print("|---|---|---|---|---|---|---|")
    for fmt in ("float32", "int8"):
        base = result[f"lraspp_rf2_{fmt}"].min_ms
        for key, _, _ in VARIANTS:
            t = result[f"{key}_{fmt}"]
            print(f"| {key} | {madds[key] / 1e9:.2f}B | {fmt} | {t.min_ms:.1f} | "
                  f"{t.median_ms:.1f} | {t.min_ms / base:.2f}x | "
                  f"{tflite_inspect.xnnpack_partitions(models[f'{key}_{fmt}'])} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(app.run(main))
