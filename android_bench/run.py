"""Benchmark .tflite files on an attached Android phone, single-threaded on the large cores.

    python -m android_bench.run --models=a.tflite,b.tflite --benchmark_binary=benchmark_model \
        --output_dir=phone_results [--serial=SERIAL] [--num_runs=50] [--delegate=xnnpack]

Writes results.json, results.csv and results.md (paper Table 3/4 layout) to --output_dir,
also when a run fails part-way. Exit codes: 0 done; 1 bad input or a device problem (message
on stderr).
"""

import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("models", None, ".tflite files to benchmark.")
flags.DEFINE_string("output_dir", "android_results", "Where results go.")
flags.DEFINE_string("benchmark_binary", None, "Local path of the Android benchmark_model.")
flags.DEFINE_bool("allow_download", False, "Download the official prebuilt tool if needed.")
flags.DEFINE_string("serial", None, "Device serial (needed when several are attached).")
flags.DEFINE_string("adb", "adb", "adb executable.")
flags.DEFINE_integer("num_threads", 1, "Threads (the paper: 1).")
flags.DEFINE_integer("warmup_runs", 20, "Warm-up runs per model.")
flags.DEFINE_integer("num_runs", 50, "Timed runs per model.")
flags.DEFINE_enum("delegate", "xnnpack", ["none", "xnnpack", "gpu", "nnapi"], "Delegate.")
flags.DEFINE_list("cores", None, "CPU cores to pin to (default: the large cores).")
flags.DEFINE_float("cooldown_seconds", 10.0, "Pause between models.")
flags.DEFINE_integer("repeats", 1, "Rounds over all models.")
flags.DEFINE_bool("cleanup", True, "Remove what was pushed when done.")
flags.DEFINE_bool("op_profiling", False, "Per-op-type times (--enable_op_profiling).")


def main(argv):
    if len(argv) > 1:
        print(f"android_bench: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 1
    from android_bench import bench
    from android_bench.device import DeviceError
    try:
        cores = [int(c) for c in FLAGS.cores] if FLAGS.cores else None
        config = bench.BenchConfig(
            models=FLAGS.models or [], output_dir=FLAGS.output_dir,
            benchmark_binary=FLAGS.benchmark_binary, allow_download=FLAGS.allow_download,
            serial=FLAGS.serial, adb_path=FLAGS.adb, num_threads=FLAGS.num_threads,
            warmup_runs=FLAGS.warmup_runs, num_runs=FLAGS.num_runs, delegate=FLAGS.delegate,
            cores=cores, cooldown_seconds=FLAGS.cooldown_seconds, repeats=FLAGS.repeats,
            cleanup=FLAGS.cleanup, op_profiling=FLAGS.op_profiling)
        outcome = bench.run(config)
    except (ValueError, FileNotFoundError, DeviceError, bench.BenchmarkFailed) as e:
        print(f"android_bench: {e}", file=sys.stderr)
        return 1
    table = bench.summarize(outcome["results"])
    print("\n" + bench.markdown_table(outcome["device"], table))
    return 0


if __name__ == "__main__":
    app.run(main)
