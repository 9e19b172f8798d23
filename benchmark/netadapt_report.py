"""What a NetAdapt search did, measured: its steps, and the lookup table against full timing.

Reads a netadapt.py output folder and prints (1) every step: the kept edit, its latency and
the cut against delta, held-out top-1; (2) the seed and the result timed again together on
this machine (LiteRT, one pinned thread, interleaved, minimum of --repeats rounds); (3) for
the seed and every proposal of the search, the lookup table's prediction (per-piece latencies
summed, timed on this machine) against the full network's timing: the table's error. Writes
all of it to <search>/report.json. Nothing else may run on this machine meanwhile.

    python benchmark/netadapt_report.py --search=runs/small64_netadapt
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("search", None, "A netadapt.py --output_dir.")
flags.DEFINE_integer("runs", 50, "Invokes per round.")
flags.DEFINE_integer("repeats", 5, "Rounds (the minimum is kept).")
flags.DEFINE_integer("batch", 6, "Networks timed in turns at once (with the seed).")


def main(argv):
    del argv
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    from mobilenet_v3 import files
    from mobilenet_v3.search import arch, oracles
    with open(os.path.join(FLAGS.search, "history.json")) as f:
        history = json.load(f)
    settings, seed = history["settings"], history["seed"]
    unit = settings["unit"]
    resolution = settings["data"]["image_size"]
    classes = json.load(open(os.path.join(seed["model"], "model_config.json")))["classes"]

    def network(spec):
        return oracles.Network(arch.modeling_spec(spec), resolution, classes)
    delta = settings["delta_fraction"] * seed["latency"]
    print(f"oracle {settings['oracle']}; seed {seed['latency']:.4f} {unit}, top1 "
          f"{seed['top1']:.4f}; delta {delta:.4f} {unit}; target "
          f"{history['final']['target']:.4f} {unit}\n")
    print("| step | kept | latency | cut (>= delta?) | top-1 | proposals |")
    print("|---|---|---|---|---|---|")
    for s in history["steps"]:
        c = s["chosen"]
        print(f"| {s['step']} | {c['edit']} | {c['latency']:.4f} | {s['cut']:.4f} "
              f"({'yes' if s['cut'] >= delta - 1e-12 else 'NO'}) | {c['top1']:.4f} | "
              f"{len(s['proposals'])} |")
    final = history["final"]
    full = final["full_measurement"]
    print(f"\nresult: {final['latency']:.4f} {unit} by the search's oracle, target "
          f"{final['target']:.4f}; timed again with the seed: {full['final']:.4f} vs "
          f"{full['seed']:.4f} ({full['ratio']:.3f} x); top1 {final['top1']:.4f}")

    # the lookup table against full measurements, on every network the search timed
    specs = [seed["spec"]] + [p["spec"] for s in history["steps"] for p in s["proposals"]]
    names = ["seed"] + [f"step {s['step']} {p['edit']}" for s in history["steps"]
                        for p in s["proposals"]]
    host = oracles.HostOracle(settings=oracles.HostSettings(runs=FLAGS.runs,
                                                            repeats=FLAGS.repeats))
    table = oracles.TableOracle(oracles.HostOracle(settings=host.settings))
    nets = [network(s) for s in specs]
    full_ms = []
    for i in range(0, len(nets), FLAGS.batch):
        full_ms += host.measure_uncached(nets[i:i + FLAGS.batch])
        print(f"  timed {min(i + FLAGS.batch, len(nets))}/{len(nets)} networks", flush=True)
    predicted = table.measure(nets)
    errors = oracles.error_table(predicted, full_ms)
    print("\n| network | table (ms) | full (ms) | error |")
    print("|---|---|---|---|")
    for name, p, m, e in zip(names, predicted, full_ms, errors["relative_errors"]):
        print(f"| {name} | {p:.4f} | {m:.4f} | {e:+.1%} |")
    print(f"\nlookup table on this machine: mean |error| {errors['mean_abs_relative_error']:.1%},"
          f" max {errors['max_abs_relative_error']:.1%} over {len(nets)} networks")
    order_full = sorted(range(len(nets)), key=lambda i: full_ms[i])
    order_table = sorted(range(len(nets)), key=lambda i: predicted[i])
    files.atomic_write_json(os.path.join(FLAGS.search, "report.json"), {
        "networks": names, "table_ms": predicted, "full_ms": full_ms, "errors": errors,
        "same_order": order_full == order_table})


if __name__ == "__main__":
    flags.mark_flag_as_required("search")
    app.run(main)
