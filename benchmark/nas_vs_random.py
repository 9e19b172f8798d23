"""Does the controller beat random search with the same trial budget? And does w = -0.15 pull
the late samples below w = -0.07's latency (the paper's reason for Small's exponent)?

Runs nas.py once per (algorithm, seed) and once more per extra --compare_w with the controller,
each in <out>/<algorithm>_w<w>_s<seed> (a rerun resumes them: finished searches are read
back), then prints per seed the best-5 mean reward and the late samples' median latency, the
mean and spread over seeds, and writes <out>/summary.json. Everything after `--` goes to every
nas.py run (data, resolution, target, budget, oracle).

    python benchmark/nas_vs_random.py --out=runs/nas_cmp --seeds=0,1,2 --compare_w=-0.07 -- \
        --dataset=image_folder --image_folder=../shared/datasets/cifar10/train \
        --resolution=32 --target_ms=0.05 --rounds=10 --samples_per_round=4 --proxy_steps=300
"""

import json
import os
import subprocess
import sys

import numpy as np
from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

FLAGS = flags.FLAGS
flags.DEFINE_string("out", None, "Folder of the searches and summary.json.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (each algorithm runs once per seed).")
flags.DEFINE_float("w", -0.15, "The reward exponent of the controller-vs-random comparison.")
flags.DEFINE_list("compare_w", ["-0.07"], "Other exponents run with the controller (same "
                  "seeds) to compare the late samples' latency; empty to skip.")
flags.DEFINE_integer("keep", 5, "Best-k for the mean reward.")


def run(name, extra, nas_args):
    out = os.path.join(FLAGS.out, name)
    command = [sys.executable, os.path.join(ROOT, "nas.py"), f"--output_dir={out}",
               *nas_args, *extra]
    print(f"== {name}", flush=True)
    done = subprocess.run(command, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"nas_vs_random.py: {name} failed (exit {done.returncode}); rerun "
                         "to resume it")
    with open(os.path.join(out, "history.json")) as f:
        return json.load(f)


def main(argv):
    nas_args = argv[1:]
    if not FLAGS.out:
        raise app.UsageError("--out is required")
    from mobilenet_v3.search import nas
    rows = []
    plan = [("controller", FLAGS.w), ("random", FLAGS.w)] + [
        ("controller", float(w)) for w in FLAGS.compare_w if w]
    for algorithm, w in plan:
        for seed in FLAGS.seeds:
            name = f"{algorithm}_w{w}_s{seed}"
            history = run(name, [f"--algorithm={algorithm}", f"--w={w}", f"--seed={seed}"],
                          nas_args)
            s = nas.summary(history, FLAGS.keep)
            rows.append(dict(s, algorithm=algorithm, w=w, seed=int(seed), name=name))
    print(f"\n| algorithm | w | seed | best-{FLAGS.keep} mean reward | best reward | "
          "late median latency | samples |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['algorithm']} | {r['w']} | {r['seed']} | {r['best_mean_reward']:.4f} | "
              f"{r['best_reward']:.4f} | {r['late_median_latency']:.4f} | {r['samples']} |")
    summary = {}
    for algorithm, w in dict.fromkeys(plan):
        group = [r for r in rows if r["algorithm"] == algorithm and r["w"] == w]
        rewards = [r["best_mean_reward"] for r in group]
        latency = [r["late_median_latency"] for r in group]
        summary[f"{algorithm} w={w}"] = {
            "best_mean_reward": float(np.mean(rewards)), "spread": float(np.std(rewards)),
            "late_median_latency": float(np.mean(latency))}
        print(f"{algorithm} w={w}: best-{FLAGS.keep} mean reward {np.mean(rewards):.4f} "
              f"+- {np.std(rewards):.4f} over {len(group)} seeds; late median latency "
              f"{np.mean(latency):.4f}")
    from mobilenet_v3 import files
    files.atomic_write_json(os.path.join(FLAGS.out, "summary.json"),
                            {"rows": rows, "summary": summary})


if __name__ == "__main__":
    app.run(main)
