"""Host latency of .tflite files with the LiteRT interpreter, timed interleaved.

    python benchmark/latency.py a.tflite b.tflite [--threads=1] [--core=0] [--warmup=20]
        [--runs=100] [--repeats=5] [--format=table|json|csv] [--baseline=a.tflite] [--op_profile]

One thread pinned to one core by default (the paper's setting on phones). Models take turns
(A, B, A, B, ...) so that machine noise hits them alike; min / median / p90 per model, XNNPACK
partitions, and ratios against --baseline (default: the first file). --op_profile adds a
per-op-type breakdown (benchmark/op_profile.py: each op timed on its own).
"""

import csv
import io
import json
import os
import sys


from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("threads", 1, "Interpreter threads.")
flags.DEFINE_integer("core", 0, "CPU core to pin to (-1: no pinning).")
flags.DEFINE_integer("warmup", 20, "Warm-up invokes per model.")
flags.DEFINE_integer("runs", 100, "Timed invokes per model per round.")
flags.DEFINE_integer("repeats", 5, "Interleaved rounds.")
flags.DEFINE_enum("format", "table", ["table", "json", "csv"], "Output format.")
flags.DEFINE_string("baseline", None, "File the ratios refer to (default: the first).")
flags.DEFINE_bool("op_profile", False, "Also time every op on its own and sum per op type.")


def measure(paths, threads=1, core=0, warmup=20, runs=100, repeats=5, baseline=None):
    """Rows of {file, size_mb, partitions, min/median/p90 ms, ratio_min} for each file."""
    from mobilenet_v3.bench import timing as tflite_timing
    from mobilenet_v3.analysis import tflite_inspect

    missing = [p for p in paths if not os.path.isfile(p)]
    if not paths or missing:
        raise FileNotFoundError(f"no such .tflite file(s): {missing or 'none given'}")
    if len(set(paths)) != len(paths):
        raise ValueError("each file may be given once")
    baseline = baseline or paths[0]
    if baseline not in paths:
        raise ValueError(f"--baseline {baseline!r} is not among the files")
    tflite_timing.pin_to_core(None if core < 0 else core)
    models = {}
    for p in paths:
        with open(p, "rb") as f:
            models[p] = f.read()
    try:
        timings = tflite_timing.time_interleaved(models, warmup, runs, repeats, threads)
    except ValueError as e:
        raise ValueError(f"cannot run one of the files: {e}") from None
    base = timings[baseline]
    return [{"file": p, "size_mb": round(len(models[p]) / 1e6, 3),
             "xnnpack_partitions": tflite_inspect.xnnpack_partitions(models[p]),
             "min_ms": round(t.min_ms, 4), "median_ms": round(t.median_ms, 4),
             "p90_ms": round(t.p90_ms, 4), "samples": len(t.samples_ms),
             "ratio_min": round(t.min_ms / base.min_ms, 4),
             "ratio_median": round(t.median_ms / base.median_ms, 4)}
            for p, t in timings.items()]


def render(rows, fmt):
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    lines = ["| file | MB | XNNPACK partitions | min ms | median ms | p90 ms | min ratio |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {os.path.basename(r['file'])} | {r['size_mb']:.2f} | "
                     f"{r['xnnpack_partitions']} | {r['min_ms']:.3f} | {r['median_ms']:.3f} | "
                     f"{r['p90_ms']:.3f} | {r['ratio_min']:.3f} |")
    return "\n".join(lines)


def render_op_types(op_types):
    total = op_types["_total"]["ms"]
    summed = sum(v["ms"] for k, v in op_types.items() if k != "_total")
    lines = ["| op type | ops | ms | share |", "|---|---|---|---|"]
    for name, v in op_types.items():
        if name != "_total":
            lines.append(f"| {name} | {v['count']} | {v['ms']:.3f} | {v['ms'] / summed:.1%} |")
    lines.append(f"| sum of ops / whole model | {op_types['_total']['count']} | "
                 f"{summed:.3f} / {total:.3f} | |")
    return "\n".join(lines)


def main(argv):
    paths = argv[1:]
    try:
        rows = measure(paths, FLAGS.threads, FLAGS.core, FLAGS.warmup, FLAGS.runs,
                       FLAGS.repeats, FLAGS.baseline)
    except (FileNotFoundError, ValueError) as e:
        print(f"latency.py: {e}", file=sys.stderr)
        return 1
    if FLAGS.op_profile:
        from mobilenet_v3.bench import op_profile
        for row in rows:
            with open(row["file"], "rb") as f:
                row["op_types"] = op_profile.op_type_times(f.read(), FLAGS.threads)
    print(render(rows, FLAGS.format))
    if FLAGS.op_profile and FLAGS.format == "table":
        for row in rows:
            print(f"\n{os.path.basename(row['file'])}: time per op type (each op alone, min ms)")
            print(render_op_types(row["op_types"]))
    return 0


if __name__ == "__main__":
    app.run(main)
