"""Transfer learning on real photos: the official MobileNetV3-Small fine-tuned on CIFAR-10
JPEGs for a fixed budget, next to the same budget from scratch. Not a test: it takes minutes.

Runs train.py (the commands are printed, and are what benchmark/RESULTS.md records) on an
image folder; --per_class takes that many images of every class through symlinks (all of
them with 0). Each run holds out --held_out_fraction of every class and reports held-out
top-1 of the EMA weights.

    python benchmark/transfer_cifar10.py --init_weights=../shared/models/v3-small_224_1.0_uint8.tflite
        [--data=../shared/datasets/cifar10/train] [--per_class=2000] [--epochs=1]
        [--resolution=128] [--batch=64] [--runs=finetune,frozen,scratch]
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = flags.FLAGS
flags.DEFINE_string("data", os.path.join(ROOT, "..", "shared", "datasets", "cifar10", "train"),
                    "Image folder <root>/<class>/*.jpg.")
flags.DEFINE_string("init_weights", os.path.join(ROOT, "..", "shared", "models",
                                                 "v3-small_224_1.0_uint8.tflite"),
                    "Pretrained MobileNetV3-Small 1.0 (any format train.py takes).")
flags.DEFINE_integer("per_class", 2000, "Images per class (0: all).")
flags.DEFINE_float("epochs", 1.0, "Epoch budget of every run.")
flags.DEFINE_integer("resolution", 128, "Training/eval resolution (CIFAR is 32x32).")
flags.DEFINE_integer("batch", 64, "Global batch size.")
flags.DEFINE_float("finetune_learning_rate", 0.1, "Rate at batch 4096, pretrained runs.")
flags.DEFINE_float("scratch_learning_rate", 0.4, "Rate at batch 4096, from scratch.")
flags.DEFINE_float("freeze_epochs", 0.5, "--freeze_backbone_epochs of the 'frozen' run.")
flags.DEFINE_list("runs", ["finetune", "frozen", "scratch"], "Which runs, in order.")
flags.DEFINE_string("work_dir", None, "Subset folder and model_dirs (default: a temp folder).")


def subset(data: str, per_class: int, target: str) -> str:
    """`target`/<class>/ with the first `per_class` images of every class, as symlinks."""
    if per_class <= 0:
        return data
    for name in sorted(os.listdir(data)):
        source = os.path.join(data, name)
        if not os.path.isdir(source):
            continue
        os.makedirs(os.path.join(target, name), exist_ok=True)
        for image in sorted(os.listdir(source))[:per_class]:
            link = os.path.join(target, name, image)
            if not os.path.lexists(link):
                os.symlink(os.path.abspath(os.path.join(source, image)), link)
    return target


def command(run: str, folder: str, model_dir: str):
    args = [sys.executable, os.path.join(ROOT, "train.py"), "--model=small", "--alpha=1.0",
            f"--resolution={FLAGS.resolution}", "--dataset=image_folder",
            f"--image_folder={folder}", "--held_out_fraction=0.1", f"--batch_size={FLAGS.batch}",
            f"--epochs={FLAGS.epochs:g}", "--warmup_epochs=0.1", "--decay_epochs=1",
            "--decay_rate=0.85", "--ema_momentum=0.999", "--min_crop_area=0.25",
            "--log_every_steps=50", "--checkpoint_every_steps=100000",
            f"--model_dir={model_dir}"]
    if run == "scratch":
        return args + [f"--base_learning_rate={FLAGS.scratch_learning_rate:g}"]
    args += [f"--base_learning_rate={FLAGS.finetune_learning_rate:g}",
             f"--init_weights={FLAGS.init_weights}"]
    if run == "frozen":
        args.append(f"--freeze_backbone_epochs={FLAGS.freeze_epochs:g}")
    return args


def main(argv):
    del argv
    if not os.path.isdir(FLAGS.data):
        print(f"no image folder at {FLAGS.data}; pass --data=<root>/<class>/*.jpg")
        return 1
    work = FLAGS.work_dir or tempfile.mkdtemp(prefix="transfer-cifar10-")
    folder = subset(FLAGS.data, FLAGS.per_class, os.path.join(work, "data"))
    rows = []
    for run in FLAGS.runs:
        model_dir = os.path.join(work, run)
        args = command(run, folder, model_dir)
        print("$ " + " ".join(a if a != sys.executable else "python" for a in args), flush=True)
        start = time.perf_counter()
        proc = subprocess.run(args, cwd=ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        minutes = (time.perf_counter() - start) / 60
        if proc.returncode:
            return proc.returncode
        with open(os.path.join(model_dir, "final", "eval.json")) as f:
            result = json.load(f)
        rows.append((run, result["top1"], result["top5"], result["examples"], minutes))
    print(f"\nMobileNetV3-Small 1.0 @{FLAGS.resolution}, CIFAR-10 "
          f"({FLAGS.per_class or 'all'} images per class), {FLAGS.epochs:g} epoch(s), "
          f"batch {FLAGS.batch}:")
    for run, top1, top5, examples, minutes in rows:
        print(f"  {run:9s} held-out top-1 {top1:.4f}  top-5 {top5:.4f}  on {examples} images  "
              f"({minutes:.1f} min wall, indicative)")
    return 0


if __name__ == "__main__":
    app.run(main)
