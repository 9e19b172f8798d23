"""Transfer learning for detection on real photos: SSDLite-MobileNetV3-Small (reduced tail, 320)
fine-tuned on coco_mini/train2017 (80 COCO photos, 80 classes) from the official ImageNet
Small's backbone (`--init_weights`), next to the same run from scratch; both scored on
coco_mini/val2017 (78 photos, pycocotools mAP of the EMA weights, train.py's final eval).
Not a test: each run takes ~15 minutes on 2 cores.

Same flags, steps and seed for both runs; only --init_weights differs. A finished run (its
final/eval.json) is reused, so a rerun after a crash continues with the missing one and a
measured figure is never replaced by a failed run.

    python benchmark/detection_transfer.py [--steps=800] [--work_dir=/tmp/detection_transfer]
"""

import json
import os
import subprocess
import sys

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared")
COCO = os.path.join(SHARED, "datasets", "coco_mini")
FLAGS = flags.FLAGS
flags.DEFINE_string("init_weights", os.path.join(SHARED, "models",
                                                 "v3-small_224_1.0_uint8.tflite"),
                    "The pretrained classifier whose backbone starts the 'transfer' run.")
flags.DEFINE_integer("steps", 800, "Training steps of each run.")
flags.DEFINE_integer("batch", 16, "Global batch size.")
flags.DEFINE_integer("resolution", 320, "Detector input size (the official 320).")
flags.DEFINE_float("learning_rate", 1.0, "--base_learning_rate (at batch 4096) of both runs.")
flags.DEFINE_list("runs", ["transfer", "scratch"], "Which runs, in order.")
flags.DEFINE_string("work_dir", "/tmp/detection_transfer", "The runs' folders.")


def train_folder(work: str) -> str:
    """<work>/coco_train: annotations.json and images/ of coco_mini's train2017 (symlinks)."""
    folder = os.path.join(work, "coco_train")
    os.makedirs(folder, exist_ok=True)
    for link, target in (("annotations.json", os.path.join(COCO, "annotations",
                                                           "instances_train2017.json")),
                         ("images", os.path.join(COCO, "train2017"))):
        path = os.path.join(folder, link)
        if not os.path.lexists(path):
            os.symlink(os.path.abspath(target), path)
    return folder


def command(run: str, folder: str, model_dir: str):
    args = [sys.executable, os.path.join(ROOT, "train.py"), "--task=detection", "--model=small",
            "--reduced_tail", f"--resolution={FLAGS.resolution}", "--dataset=coco_json",
            f"--detection_folder={folder}",
            "--detection_val_json=" + os.path.join(COCO, "annotations", "instances_val2017.json"),
            "--detection_val_images=" + os.path.join(COCO, "val2017"),
            f"--batch_size={FLAGS.batch}", f"--train_steps={FLAGS.steps}",
            f"--base_learning_rate={FLAGS.learning_rate}", "--warmup_epochs=10",
            "--weight_decay=4e-5", "--ema_momentum=0.99", "--log_every_steps=100",
            f"--checkpoint_every_steps={max(FLAGS.steps // 4, 1)}", "--seed=0",
            f"--model_dir={model_dir}"]
    return args + ([f"--init_weights={FLAGS.init_weights}"] if run == "transfer" else [])


def main(argv):
    del argv
    for path in (COCO, FLAGS.init_weights):
        if not os.path.exists(path):
            print(f"detection_transfer: {path} not found", file=sys.stderr)
            return 1
    folder = train_folder(FLAGS.work_dir)
    results = {}
    for run in FLAGS.runs:
        model_dir = os.path.join(FLAGS.work_dir, run)
        done = os.path.join(model_dir, "final", "eval.json")
        args = command(run, folder, model_dir)
        print("$ " + " ".join(os.path.relpath(a, ROOT) if a.startswith(ROOT) else a
                              for a in args[1:]), flush=True)
        if not os.path.isfile(done):
            proc = subprocess.run(args, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
            if proc.returncode != 0:
                print(f"detection_transfer: the {run} run failed (exit {proc.returncode}); "
                      "rerun to continue it", file=sys.stderr)
                return 1
        with open(done) as f:
            results[run] = json.load(f)
    print(f"\n{'run':10s} {'mAP':>7s} {'mAP@.5':>7s}  (coco_mini val2017, "
          f"{FLAGS.steps} steps x {FLAGS.batch} @{FLAGS.resolution})")
    for run, r in results.items():
        print(f"{run:10s} {100 * r['mAP']:7.2f} {100 * r['mAP50']:7.2f}")
    return 0


if __name__ == "__main__":
    app.run(main)
