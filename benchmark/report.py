"""A paper-style table (Tables 3/4) and plot for this machine: MAdds, params, file sizes,
float and int8 latency for our MobileNetV3s, keras.applications' exported the same way, and
MobileNetV2 as the paper's baseline.

    python benchmark/report.py --output_dir=benchmark/report \
        [--networks=ours:large:1.0,ours:large:0.75,ours:small:1.0,ours:small:0.75,keras:large:1.0,keras:small:1.0,v2:v2:1.0]
        [--resolution=224] [--repeats=5] [--runs=50]

Writes report.md, report.csv, report.json and latency.png (float and int8 latency against
MAdds, and against the paper's top-1 where the paper gives one). Networks have random
weights with BN statistics from a few training-mode passes (latency does not depend on the
weights; int8 ranges need realistic activations); their top-1 is the paper's figure, labelled
"paper top-1". One row is a real network: Google's MobileNetV3-Small weights imported into
ours (--official_small=/tmp/official_small/model.keras; none by default), whose float and
int8 top-1 are *measured* on the 450 scoring photos of ../shared/datasets/imagenet_samples
(int8 calibrated on the other 300; mobilenet_v3/bench/imagenet_photos.py).
"""

import csv
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "benchmark/report", "Where the table and plot go.")
flags.DEFINE_list("networks", ["ours:large:1.0", "ours:large:0.75", "ours:small:1.0",
                               "ours:small:0.75", "keras:large:1.0", "keras:small:1.0",
                               "v2:v2:1.0"],
                  "source:name:alpha with source ours | keras (keras.applications) | v2.")
flags.DEFINE_integer("resolution", 224, "Input resolution.")
flags.DEFINE_integer("warmup", 20, "Warm-up invokes per file.")
flags.DEFINE_integer("runs", 50, "Timed invokes per file per round.")
flags.DEFINE_integer("repeats", 5, "Interleaved rounds.")
flags.DEFINE_integer("core", 0, "CPU core to pin to (-1: no pinning).")
flags.DEFINE_string("official_small", "",
                    "Google's Small imported by mobilenet_v3.weights.convert (1001 classes), "
                    "e.g. /tmp/official_small/model.keras: a measured-top-1 row. Empty: none.")

# Paper Table 3 (float) and the 8-bit rows: ImageNet top-1 at 224.
PAPER_TOP1 = {("large", 1.0): (75.2, 73.8), ("large", 0.75): (73.3, None),
              ("small", 1.0): (67.4, 64.9), ("small", 0.75): (65.4, None),
              ("v2", 1.0): (72.0, 70.9)}
SOURCES = {"ours": "ours", "keras": "keras.applications", "v2": "keras.applications V2",
           "official": "ours, Google's weights"}


def parse_network(spec: str):
    parts = spec.split(":")
    if len(parts) != 3 or parts[0] not in SOURCES or \
            parts[1] not in (("v2",) if parts[0] == "v2" else ("large", "small")):
        raise ValueError(f"bad network {spec!r}: use ours|keras:large|small:ALPHA or "
                         "v2:v2:ALPHA")
    return parts[0], parts[1], float(parts[2])


def model_config(name, alpha, resolution, hard_swish_form):
    from mobilenet_v3 import ModelConfig
    return ModelConfig.from_flat(name=name, alpha=alpha, input_shape=(resolution, resolution, 3),
                                 include_preprocessing=False, batch_size=1,
                                 hard_swish_form=hard_swish_form)


def build(source, name, alpha, resolution, hard_swish_form="fused"):
    import tf_keras

    from mobilenet_v3 import build_model
    shape = (resolution, resolution, 3)
    if source == "ours":
        return build_model(model_config(name, alpha, resolution, hard_swish_form))
    if source == "keras":
        from mobilenet_v3.bench.peers import keras_mobilenet_v3
        return keras_mobilenet_v3(name, shape, alpha)
    return tf_keras.applications.MobileNetV2(input_shape=shape, alpha=alpha, weights=None)


def label(source, name, alpha):
    net = "V2" if source == "v2" else f"V3-{name.capitalize()}"
    return f"{net} {alpha:g} ({SOURCES[source]})"


def official_row(path, resolution):
    """(float model, int8-form model, calibration images, top-1 dict) of the imported Small."""
    import numpy as np

    from mobilenet_v3.bench import imagenet_photos as photos
    from mobilenet_v3.export import convert as conversion
    from mobilenet_v3.export import folding
    from mobilenet_v3.analysis import tflite_inspect
    trained = photos.official_small(path)
    cal, _, score, labels = photos.split(size=resolution)
    float_model = folding.rebuild(trained.model, trained.config.for_export("fused", False, None))
    int8_model = folding.rebuild(trained.model, trained.config.for_export("folded", False, None))
    float_tflite = conversion.convert(float_model)
    int8_tflite = conversion.convert(int8_model, "int8", representative_images=lambda: cal)
    top1 = {fmt: round(100 * float(np.mean(tflite_inspect.run(t, score).argmax(-1) == labels)),
                       1) for fmt, t in (("float32", float_tflite), ("int8", int8_tflite))}
    return float_model, float_tflite, int8_tflite, top1, len(score)


def main(argv):
    del argv
    import numpy as np
    from absl import logging
    logging.set_verbosity(logging.WARNING)

    from mobilenet_v3.bench import timing as tflite_timing
    from mobilenet_v3.bench.calibration import calibrate_batch_norm
    from mobilenet_v3.export import convert as conversion
    from mobilenet_v3.analysis import cost as profiler
    from mobilenet_v3.analysis import tflite_inspect
    from mobilenet_v3.export import folding

    try:
        networks = [parse_network(s) for s in FLAGS.networks]
    except ValueError as e:
        print(f"report.py: {e}", file=sys.stderr)
        return 1
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    tflite_timing.pin_to_core(None if FLAGS.core < 0 else FLAGS.core)
    res = FLAGS.resolution
    rng = np.random.RandomState(0)
    images = rng.uniform(-1, 1, (8, res, res, 3)).astype(np.float32)
    representative = list(rng.uniform(-1, 1, (16, res, res, 3)).astype(np.float32))
    rows, files = [], {}
    if FLAGS.official_small and os.path.exists(FLAGS.official_small):
        model, files["official:small:1:float32"], files["official:small:1:int8"], top1, n = \
            official_row(FLAGS.official_small, res)
        totals = profiler.totals(profiler.profile(model))
        rows.append({"network": label("official", "small", 1.0), "source": SOURCES["official"],
                     "key": "official:small:1", "resolution": res,
                     "madds_m": round(totals.madds / 1e6, 1),
                     "params_m": round(totals.weight_params / 1e6, 2),
                     "float_mb": round(len(files["official:small:1:float32"]) / 1e6, 2),
                     "int8_mb": round(len(files["official:small:1:int8"]) / 1e6, 2),
                     "int8_partitions": tflite_inspect.xnnpack_partitions(
                         files["official:small:1:int8"]),
                     "paper_top1": None, "paper_top1_int8": None,
                     "measured_top1": top1["float32"], "measured_top1_int8": top1["int8"],
                     "measured_on": f"{n} ImageNet photos (../shared imagenet_samples)"})
    elif FLAGS.official_small:
        print(f"report.py: {FLAGS.official_small} not found: no measured-top-1 row",
              file=sys.stderr)
    for source, name, alpha in networks:
        key = f"{source}:{name}:{alpha:g}"
        model = build(source, name, alpha, res)
        calibrate_batch_norm(model, images)
        totals = profiler.totals(profiler.profile(model))
        # Ours: int8 in the form the exporter uses for int8 (folded: one XNNPACK partition).
        int8_model = model
        if source == "ours":
            int8_model = folding.rebuild(model, model_config(name, alpha, res, "folded"))
        files[key + ":float32"] = conversion.convert(model)
        files[key + ":int8"] = conversion.convert(int8_model, "int8",
                                                  representative_images=lambda: representative)
        top1 = PAPER_TOP1.get((name, alpha)) if res == 224 else None
        rows.append({"network": label(source, name, alpha), "source": SOURCES[source],
                     "key": key, "resolution": res, "madds_m": round(totals.madds / 1e6, 1),
                     "params_m": round(totals.weight_params / 1e6, 2),
                     "float_mb": round(len(files[key + ":float32"]) / 1e6, 2),
                     "int8_mb": round(len(files[key + ":int8"]) / 1e6, 2),
                     "int8_partitions": tflite_inspect.xnnpack_partitions(files[key + ":int8"]),
                     "paper_top1": top1[0] if top1 else None,
                     "paper_top1_int8": top1[1] if top1 else None,
                     "measured_top1": None, "measured_top1_int8": None, "measured_on": None})
    timings = tflite_timing.time_interleaved(files, FLAGS.warmup, FLAGS.runs, FLAGS.repeats, 1)
    for row in rows:
        for fmt in ("float32", "int8"):
            t = timings[f"{row['key']}:{fmt}"]
            row[f"{fmt}_min_ms"] = round(t.min_ms, 3)
            row[f"{fmt}_median_ms"] = round(t.median_ms, 3)

    def cell(v, fmt="{}"):
        return "" if v is None else fmt.format(v)
    measured_on = next((r["measured_on"] for r in rows if r["measured_on"]), None)
    md = [f"{res}px, batch 1, one thread pinned to core {FLAGS.core}, LiteRT + XNNPACK on this "
          f"machine; {FLAGS.repeats} interleaved rounds x {FLAGS.runs} invokes (min ms, median "
          "in brackets). Top-1 (float / int8): 'paper' = the paper's ImageNet figures, borrowed "
          "(those rows have random weights); 'measured' = measured here"
          + (f" on {measured_on}, int8 calibrated on 300 other photos." if measured_on else "."),
          "", "| network | top-1 | MAdds | params | float MB | int8 MB | float ms | int8 ms | "
          "int8 XNNPACK partitions |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["measured_top1"] is not None:
            top1 = f"measured {r['measured_top1']} / {r['measured_top1_int8']}"
        else:
            top1 = ("paper " + cell(r["paper_top1"]) if r["paper_top1"] else "") + (
                f" / {r['paper_top1_int8']}" if r["paper_top1_int8"] else "")
        md.append(f"| {r['network']} | {top1} | {r['madds_m']}M | {r['params_m']}M | "
                  f"{r['float_mb']} | {r['int8_mb']} | {r['float32_min_ms']:.2f} "
                  f"({r['float32_median_ms']:.2f}) | {r['int8_min_ms']:.2f} "
                  f"({r['int8_median_ms']:.2f}) | {r['int8_partitions']} |")
    with open(os.path.join(FLAGS.output_dir, "report.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    with open(os.path.join(FLAGS.output_dir, "report.json"), "w") as f:
        json.dump(rows, f, indent=2)
    with open(os.path.join(FLAGS.output_dir, "report.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, os.path.join(FLAGS.output_dir, "latency.png"), res)
    print("\n".join(md))
    return 0


def plot(rows, path, resolution):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    markers = {"ours": "o", "keras.applications": "s", "keras.applications V2": "^",
               "ours, Google's weights": "*"}
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    for ax, x_key, x_label in ((axes[0], "madds_m", "MAdds (M)"),
                               (axes[1], "top1", "ImageNet top-1 (%): paper; * measured")):
        for fmt, colour in (("float32", "tab:blue"), ("int8", "tab:red")):
            for r in rows:
                r = dict(r, top1=r["measured_top1"] if r["measured_top1"] is not None
                         else r["paper_top1"])
                if r[x_key] is None:
                    continue
                ax.scatter(r[x_key], r[f"{fmt}_min_ms"], marker=markers[r["source"]],
                           color=colour, label=f"{fmt}, {r['source']}")
                ax.annotate(r["network"].split(" (")[0], (r[x_key], r[f"{fmt}_min_ms"]),
                            fontsize=7, xytext=(3, 3), textcoords="offset points")
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        ax.legend(unique.values(), unique.keys(), fontsize=7)
        ax.set_xlabel(x_label)
        ax.set_ylabel("latency, min ms (1 thread, this CPU)")
        ax.grid(alpha=0.3)
    fig.suptitle(f"MobileNetV3 vs V2 at {resolution}px: float32 (blue) and int8 (red)")
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


if __name__ == "__main__":
    app.run(main)
