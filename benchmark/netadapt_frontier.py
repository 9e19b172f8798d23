"""Does NetAdapt beat the width multiplier? Held-out top-1 against measured latency, per family.

Each --run is FAMILY:LABEL=RUN_FOLDER (a train.py run, all trained with the same recipe). The
networks are timed together on this machine (float32 LiteRT, one pinned thread, in turns,
minimum of --repeats rounds), their MAdds counted, their top-1 read from the run's
final/eval.json. Prints a table, writes --out (json) and a plot of top-1 against latency with
one line per family. The paper's claim (section 4.2, Table 4 context): NetAdapt's points lie
above the multiplier's curve. Nothing else may run on this machine meanwhile.

    python benchmark/netadapt_frontier.py --out=runs/frontier \
        --run=multiplier:1.0=runs/a1.0 --run=multiplier:0.75=runs/a0.75 \
        --run=netadapt:0.8x=runs/na_0.8_retrained ...
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("run", None, "FAMILY:LABEL=RUN_FOLDER, repeated.")
flags.DEFINE_string("out", None, "Output prefix: <out>.json and <out>.png.")
flags.DEFINE_integer("runs", 100, "Invokes per round.")
flags.DEFINE_integer("repeats", 5, "Rounds (the minimum is kept).")


def parse(entry: str):
    family, sep, rest = entry.partition(":")
    label, sep2, folder = rest.partition("=")
    if not (sep and sep2 and family and label and folder):
        raise ValueError(f"--run={entry!r} is not FAMILY:LABEL=RUN_FOLDER")
    return family, label, folder


def read_run(folder: str):
    final = os.path.join(folder, "final")
    with open(os.path.join(final, "model_config.json")) as f:
        record = json.load(f)
    with open(os.path.join(final, "eval.json")) as f:
        evaluation = json.load(f)
    return record, evaluation


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mobilenet_v3 import files
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for family in dict.fromkeys(r["family"] for r in rows):
        points = sorted((r for r in rows if r["family"] == family), key=lambda r: r["ms"])
        ax.plot([r["ms"] for r in points], [r["top1"] for r in points], "o-", label=family)
        for r in points:
            ax.annotate(r["label"], (r["ms"], r["top1"]), fontsize=7,
                        textcoords="offset points", xytext=(4, -8))
    ax.set_xlabel("host latency (ms, float32 LiteRT, 1 pinned thread), measured")
    ax.set_ylabel("held-out top-1, measured")
    ax.set_title("Width multiplier vs NetAdapt, same recipe from scratch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    with open(tmp, "rb") as f:
        files.atomic_write(path, f.read())
    os.remove(tmp)


def main(argv):
    del argv
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    from mobilenet_v3 import files
    from mobilenet_v3.modeling.config import ModelConfig
    from mobilenet_v3.search import arch, oracles
    rows, networks = [], []
    for entry in FLAGS.run:
        family, label, folder = parse(entry)
        record, evaluation = read_run(folder)
        config = ModelConfig.from_record(record)
        resolution = config.input_shape[0]
        networks.append(oracles.Network(arch.spec_of(config), resolution, config.classes))
        rows.append({"family": family, "label": label, "run": folder,
                     "top1": evaluation["top1"], "resolution": resolution})
    host = oracles.HostOracle(settings=oracles.HostSettings(runs=FLAGS.runs,
                                                            repeats=FLAGS.repeats))
    for row, ms, madds in zip(rows, host.measure_uncached(networks),
                              oracles.MAddsOracle().measure(networks)):
        row.update(ms=ms, madds_m=madds)
    print("| family | network | host latency (ms) | MAdds (M) | held-out top-1 |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['family']} | {r['label']} | {r['ms']:.4f} | {r['madds_m']:.2f} | "
              f"{r['top1']:.4f} |")
    files.atomic_write_json(FLAGS.out + ".json", {"rows": rows})
    plot(rows, FLAGS.out + ".png")
    print(f"wrote {FLAGS.out}.json and {FLAGS.out}.png")


if __name__ == "__main__":
    flags.mark_flags_as_required(["run", "out"])
    app.run(main)
