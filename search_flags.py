"""The latency-oracle and Ray flags shared by the search entry scripts (netadapt.py, nas.py)
and their mapping to the library's oracles and Ray setup.

absl flags live only in entry scripts; this module is part of that layer, not the library.
"""

import os

from absl import flags

FLAGS = flags.FLAGS


def define():
    flags.DEFINE_enum("oracle", "host", ["host", "phone", "table", "madds"], "host: LiteRT on "
                      "this machine, one pinned thread; phone: android_bench over adb; table: "
                      "per-block lookup table on --table_device; madds: multiply-adds (no "
                      "device).")
    flags.DEFINE_enum("table_device", "host", ["host", "phone"], "Where the lookup table's "
                      "pieces are timed.")
    flags.DEFINE_integer("host_core", None, "Host oracle: the core to pin to (default: the "
                         "last).")
    flags.DEFINE_integer("host_runs", 50, "Host oracle: invokes per round.")
    flags.DEFINE_integer("host_repeats", 3, "Host oracle: rounds (the minimum is kept).")
    flags.DEFINE_string("serial", None, "Phone: device serial (needed when several are "
                        "attached).")
    flags.DEFINE_string("benchmark_binary", None, "Phone: local path of the Android "
                        "benchmark_model.")
    flags.DEFINE_string("adb", "adb", "Phone: adb executable.")
    flags.DEFINE_integer("phone_runs", 50, "Phone: timed runs per model.")
    flags.DEFINE_float("phone_cooldown_seconds", 1.0, "Phone: pause between models.")
    flags.DEFINE_string("ray_address", None, "A Ray cluster's address (default: a private "
                        "local Ray on 127.0.0.1 with --workers CPUs).")
    flags.DEFINE_integer("workers", 2, "Local Ray: trainings at once.")
    flags.DEFINE_integer("threads_per_worker", 1, "CPU threads per training.")
    flags.DEFINE_bool("ray_dashboard", False, "Local Ray: start its dashboard.")


def oracle(output_dir: str):
    """The oracle the flags ask for, cached in <output_dir>/latency_cache.json."""
    from mobilenet_v3.search import oracles
    cache = oracles.Cache(os.path.join(output_dir, "latency_cache.json"))
    host = oracles.HostSettings(core=FLAGS.host_core, runs=FLAGS.host_runs,
                                repeats=FLAGS.host_repeats)
    phone = oracles.PhoneSettings(
        output_dir=os.path.join(output_dir, "phone_runs"),
        benchmark_binary=FLAGS.benchmark_binary, serial=FLAGS.serial, adb_path=FLAGS.adb,
        num_runs=FLAGS.phone_runs, cooldown_seconds=FLAGS.phone_cooldown_seconds)
    device = FLAGS.table_device if FLAGS.oracle == "table" else FLAGS.oracle
    if FLAGS.oracle == "madds":
        return oracles.MAddsOracle(cache)
    if device == "phone" and not FLAGS.benchmark_binary:
        raise ValueError(f"--oracle={FLAGS.oracle} on the phone needs --benchmark_binary "
                         "(the Android benchmark_model)")
    base = oracles.PhoneOracle(phone, cache, log=print) if device == "phone" else \
        oracles.HostOracle(cache, host)
    return oracles.TableOracle(base, cache) if FLAGS.oracle == "table" else base


def ray_config():
    from mobilenet_v3.search import workers
    return workers.RayConfig(address=FLAGS.ray_address, workers=FLAGS.workers,
                             threads=FLAGS.threads_per_worker, dashboard=FLAGS.ray_dashboard)


def run(script: str, argv, search):
    """Runs `search(oracle, ray_config, log) -> history` as an entry script does: a message
    on stderr and exit 1 for bad input or a search that cannot go on, 130 when interrupted
    (what was measured is kept), Ray stopped in every case. Returns (exit code, history)."""
    import sys
    from absl import logging
    if len(argv) > 1:
        print(f"{script}: unexpected arguments {argv[1:]} (flags are --name=value)",
              file=sys.stderr)
        return 1, None
    logging.set_verbosity(logging.ERROR)    # the converter's deprecation warning per file
    from android_bench.bench import BenchmarkFailed
    from android_bench.device import DeviceError
    from mobilenet_v3.search import workers
    try:
        return 0, search(lambda: oracle(FLAGS.output_dir), ray_config(),
                         lambda text: print(text, flush=True))
    except KeyboardInterrupt:
        print(f"{script}: interrupted; what was measured is kept: rerun the same command to "
              "resume", file=sys.stderr)
        return 130, None
    except (ValueError, OSError, DeviceError, BenchmarkFailed) as e:
        reason = getattr(e, "strerror", None) and f"{e.filename}: {e.strerror}" or str(e)
        print(f"{script}: {reason}", file=sys.stderr)
        return 1, None
    finally:
        workers.stop()
