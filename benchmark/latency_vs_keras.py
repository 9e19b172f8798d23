"""Float TFLite latency of our MobileNetV3 against keras.applications', converted the same way.

Both are built with include_preprocessing=False, random weights, batch 1, converted by
`mobilenet_v3.export.convert.convert`, and timed interleaved on one thread pinned to one core.

    python benchmark/latency_vs_keras.py [--models=large,small] [--runs=100] [--repeats=5]
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["large", "small"], "Which networks (large, small).")
flags.DEFINE_float("alpha", 1.0, "Width multiplier.")
flags.DEFINE_integer("resolution", 224, "Input resolution.")
flags.DEFINE_integer("warmup", 20, "Warm-up invokes per model.")
flags.DEFINE_integer("runs", 100, "Timed invokes per model per repeat.")
flags.DEFINE_integer("repeats", 5, "Interleaved rounds.")
flags.DEFINE_integer("threads", 1, "Interpreter threads.")
flags.DEFINE_integer("core", 0, "CPU core to pin to (-1: no pinning).")
flags.DEFINE_float("noise", 0.02, "Run-to-run noise of the min figure: ratios within "
                   "1 +/- noise are reported as parity.")


def main(argv):
    del argv
    from mobilenet_v3.bench import peers
    from mobilenet_v3.bench import timing as tflite_timing
    from mobilenet_v3 import ModelConfig, build_model
    from mobilenet_v3.export import convert as conversion
    from mobilenet_v3.analysis import tflite_inspect

    unknown = set(FLAGS.models) - set(peers.NAMES)
    if unknown:
        raise app.UsageError(f"--models: unknown {sorted(unknown)}; choose from {peers.NAMES}")
    tflite_timing.pin_to_core(None if FLAGS.core < 0 else FLAGS.core)
    shape = (FLAGS.resolution, FLAGS.resolution, 3)
    files = {}
    for name in FLAGS.models:
        ours = build_model(ModelConfig.from_flat(name=name, alpha=FLAGS.alpha, input_shape=shape,
                                       include_preprocessing=False))
        peer = peers.keras_mobilenet_v3(name, shape, FLAGS.alpha)
        files[f"ours-{name}"] = conversion.convert(ours)
        files[f"keras-{name}"] = conversion.convert(peer)
    print(f"{'model':<14} {'size MB':>8} {'ops':>5} {'HARD_SWISH':>10} {'PAD':>4} "
          f"{'partitions':>10}")
    for key, tflite in files.items():
        ops = tflite_inspect.op_histogram(tflite)
        print(f"{key:<14} {len(tflite) / 1e6:8.2f} {sum(ops.values()):5d} "
              f"{ops.get('HARD_SWISH', 0):10d} {ops.get('PAD', 0):4d} "
              f"{tflite_inspect.xnnpack_partitions(tflite):10d}")
    timings = tflite_timing.time_interleaved(files, FLAGS.warmup, FLAGS.runs, FLAGS.repeats,
                                             FLAGS.threads)
    print(f"\nfloat32, {FLAGS.threads} thread(s), core {FLAGS.core}, alpha {FLAGS.alpha}, "
          f"{FLAGS.resolution}px, {FLAGS.repeats}x{FLAGS.runs} interleaved invokes")
    print(f"{'model':<14} {'min ms':>8} {'median ms':>10} {'p90 ms':>8}")
    for t in timings.values():
        print(f"{t.name:<14} {t.min_ms:8.3f} {t.median_ms:10.3f} {t.p90_ms:8.3f}")
    worst = 0.0
    for name in FLAGS.models:
        ours, peer = timings[f"ours-{name}"], timings[f"keras-{name}"]
        ratio_min, ratio_median = ours.min_ms / peer.min_ms, ours.median_ms / peer.median_ms
        worst = max(worst, ratio_min)
        print(f"ratio ours/keras.applications {name}: min {ratio_min:.3f}, "
              f"median {ratio_median:.3f}")
    if worst <= 1.0:
        print("FASTER OR EQUAL: every min ratio <= 1.0")
    elif worst <= 1.0 + FLAGS.noise:
        print(f"PARITY: worst min ratio {worst:.3f} is within the {FLAGS.noise:.0%} noise band")
    else:
        print(f"SLOWER: worst min ratio {worst:.3f}")


if __name__ == "__main__":
    app.run(main)
