"""Benchmark .tflite files on an attached Android phone, single-threaded on the large cores.

    python -m android_bench.run --models=a.tflite,b.tflite --benchmark_binary=benchmark_model \
        --output_dir=phone_results [--serial=SERIAL] [--num_runs=50] [--delegate=xnnpack]

Models may also be given as repeated --models flags or as arguments (a name with a comma: as
an argument, or as a --models value that names an existing file). Each run writes
results.json, results.csv and results.md (paper Table 3/4 layout) and raw/ to its own folder
--output_dir/<YYYYmmdd-HHMMSS>/, also when it fails part-way; --output_dir/latest points at
the newest. Exit codes: 0 done; 1 bad input or a device or tool problem (message on stderr);
130 interrupted (results so far kept, phone cleaned).
"""

import os
import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("models", None, ".tflite files to benchmark, comma-separated or "
                          "repeated; paths may also be given as arguments.")
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


def model_paths(values, args):
    """--models values split on commas (unless a value names an existing file), then args."""
    paths = []
    for value in values or []:
        paths += [value] if os.path.isfile(value) else [v for v in value.split(",") if v]
    return paths + list(args)


def parse_cores(values):
    """--cores as CPU numbers; a ValueError that names the flag otherwise."""
    if not values:
        return None
    try:
        return [int(c) for c in values]
    except ValueError:
        raise ValueError(f"--cores={','.join(values)}: expected CPU numbers such as 4,5,6,7 "
                         "(or leave it out to pin to the large cores)") from None


def main(argv):
    from android_bench import bench
    from android_bench.device import DeviceError
    try:
        config = bench.BenchConfig(
            models=model_paths(FLAGS.models, argv[1:]), output_dir=FLAGS.output_dir,
            benchmark_binary=FLAGS.benchmark_binary, allow_download=FLAGS.allow_download,
            serial=FLAGS.serial, adb_path=FLAGS.adb, num_threads=FLAGS.num_threads,
            warmup_runs=FLAGS.warmup_runs, num_runs=FLAGS.num_runs, delegate=FLAGS.delegate,
            cores=parse_cores(FLAGS.cores), cooldown_seconds=FLAGS.cooldown_seconds,
            repeats=FLAGS.repeats, cleanup=FLAGS.cleanup, op_profiling=FLAGS.op_profiling)
        outcome = bench.run(config)
    except bench.Interrupted as e:
        print(f"android_bench: {e}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("android_bench: interrupted before any model was measured", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, DeviceError, bench.BenchmarkFailed) as e:
        print(f"android_bench: {e}", file=sys.stderr)
        return 1
    table = bench.summarize(outcome["results"])
    print("\n" + bench.markdown_table(outcome["device"], table))
    return 0


if __name__ == "__main__":
    app.run(main)
