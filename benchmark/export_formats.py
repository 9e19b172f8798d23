"""Latency of every export format and h-swish form, ours vs keras.applications (same run).

Each network gets BN statistics from a few training-mode passes first (an untrained network's
activations shrink to ~1e-8, which gives int8 ranges no trained model has and can hit slow
denormal paths). Then: ours in both h-swish forms ('fused' = one HARD_SWISH op, 'unfused' =
(x/6) * ReLU6(x+3)) x float32/float16/dynamic/int8 (PTQ), keras.applications' float32 and
int8, all converted by `mobilenet_v3.export.convert.convert`, timed interleaved on one thread
pinned to one core.

    python benchmark/export_formats.py [--models=small,large] [--repeats=5] [--runs=50]
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["small", "large"], "Which networks.")
flags.DEFINE_list("formats", ["float32", "float16", "dynamic", "int8"], "Formats of ours.")
flags.DEFINE_integer("resolution", 224, "Input resolution.")
flags.DEFINE_integer("warmup", 20, "Warm-up invokes per model.")
flags.DEFINE_integer("runs", 50, "Timed invokes per model per round.")
flags.DEFINE_integer("repeats", 5, "Interleaved rounds.")
flags.DEFINE_integer("core", 0, "CPU core to pin to (-1: no pinning).")


def main(argv):
    del argv
    import numpy as np
    import tf_keras
    from absl import logging
    logging.set_verbosity(logging.WARNING)

    from mobilenet_v3.bench import timing as tflite_timing
    from mobilenet_v3.bench.calibration import calibrate_batch_norm
    from mobilenet_v3.bench.peers import keras_mobilenet_v3
    from mobilenet_v3 import ModelConfig, build_model
    from mobilenet_v3.export import convert as conversion
    from mobilenet_v3.analysis import tflite_inspect
    from mobilenet_v3.modeling import variants

    tflite_timing.pin_to_core(None if FLAGS.core < 0 else FLAGS.core)
    shape = (FLAGS.resolution, FLAGS.resolution, 3)
    rng = np.random.RandomState(0)
    images = rng.uniform(-1, 1, (8,) + shape).astype(np.float32)
    representative = list(rng.uniform(-1, 1, (16,) + shape).astype(np.float32))
    files = {}
    for name in FLAGS.models:
        tf_keras.utils.set_random_seed(0)
        base = ModelConfig.from_flat(name=name, input_shape=shape, include_preprocessing=False,
                                     batch_size=1)
        trained = build_model(base.replace(batch_size=None))
        calibrate_batch_norm(trained, images)
        for form in ("fused", "unfused"):
            model = variants.rebuild(trained, base.replace(hard_swish_form=form))
            for fmt in FLAGS.formats:
                files[f"ours {name} {fmt} {form}"] = conversion.convert(
                    model, fmt, representative_images=(lambda: representative)
                    if fmt == "int8" else None)
        peer = keras_mobilenet_v3(name, shape)
        calibrate_batch_norm(peer, images)
        for fmt in ("float32", "int8"):
            files[f"keras {name} {fmt} -"] = conversion.convert(
                peer, fmt, representative_images=(lambda: representative)
                if fmt == "int8" else None)
    timings = tflite_timing.time_interleaved(files, FLAGS.warmup, FLAGS.runs, FLAGS.repeats, 1)
    print(f"\n{FLAGS.resolution}px, 1 thread, core {FLAGS.core}, {FLAGS.repeats} rounds x "
          f"{FLAGS.runs} interleaved invokes")
    print("| network | model | format | h-swish | XNNPACK partitions | MB | min ms | median ms "
          "| / float32 fused (min) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key, tflite in files.items():
        who, name, fmt, form = key.split()
        float_key = f"{who} {name} float32 {'fused' if who == 'ours' else '-'}"
        t, ref = timings[key], timings[float_key]
        print(f"| {name} | {'ours' if who == 'ours' else 'keras.applications'} | {fmt} | "
              f"{form} | {tflite_inspect.xnnpack_partitions(tflite)} | {len(tflite) / 1e6:.2f} "
              f"| {t.min_ms:.3f} | {t.median_ms:.3f} | {t.min_ms / ref.min_ms:.2f} |")
    print()
    for name in FLAGS.models:
        for fmt in FLAGS.formats:
            fused, unfused = (timings[f"ours {name} {fmt} {f}"].min_ms for f in
                              ("fused", "unfused"))
            print(f"{name} {fmt}: unfused/fused min ratio {unfused / fused:.3f} -> faster: "
                  f"{'unfused' if unfused < fused else 'fused'}")
        if "int8" in FLAGS.formats:
            ours = timings[f"ours {name} int8 unfused"].min_ms
            keras = timings[f"keras {name} int8 -"].min_ms
            print(f"{name} int8: ours (unfused) / keras.applications min ratio "
                  f"{ours / keras:.3f}; int8/float32 ours "
                  f"{ours / timings[f'ours {name} float32 fused'].min_ms:.3f}, keras "
                  f"{keras / timings[f'keras {name} float32 -'].min_ms:.3f}")


if __name__ == "__main__":
    app.run(main)
