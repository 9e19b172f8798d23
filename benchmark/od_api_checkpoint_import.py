"""The OD API checkpoint importer on the official SSDLite-MobileNetV3-Small weights, scored like
the same weights loaded directly (issue 19's acceptance).

../shared has the official model.ckpt.index/.meta (every variable's name and shape) but not its
.data values; the values are in the Core ML conversion (float16). This script writes the
checkpoint a user's archive holds, in the OD API's layout (TF1 name-keyed SaveV2, with
global_step, an ExponentialMovingAverage shadow and Momentum slots as the OD API's training
leaves them), after checking its names and shapes against the official index; converts it and
the .mlmodel with `python -m mobilenet_v3.weights.convert`; and scores both folders with
evaluate.py on coco_mini/val2017 (pycocotools, official protocol) in one run.

    python benchmark/od_api_checkpoint_import.py [--work_dir=/tmp/od_api_import]
"""

import json
import os
import subprocess
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from absl import app, flags  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared")
SSD = os.path.join(SHARED, "models", "ssdlite_mobilenet_v3_small_coco")
COCO = os.path.join(SHARED, "datasets", "coco_mini")
FLAGS = flags.FLAGS
flags.DEFINE_string("work_dir", "/tmp/od_api_import", "Checkpoint, converted folders, report.")


def write_checkpoint(prefix: str) -> int:
    """model.ckpt with the official names/shapes and the .mlmodel's values; returns the count."""
    import numpy as np
    import tensorflow as tf
    from mobilenet_v3.weights import official_ssdlite as od
    shapes = od.checkpoint_shapes(os.path.join(SSD, "model.ckpt"))
    values = od.read_mlmodel(os.path.join(SSD, "ssd_mobilenet.mlmodel"))
    if {k: v.shape for k, v in values.items()} != shapes:
        raise SystemExit("the .mlmodel's tensors are not the official checkpoint's variables")
    tensors = {"global_step": np.array(400000, np.int64)}
    for name, value in values.items():       # what TF1 training with EMA + momentum leaves
        tensors[name] = value
        tensors[name + "/ExponentialMovingAverage"] = value
        tensors[name + "/Momentum"] = np.zeros_like(value)
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=list(tensors),
                      shape_and_slices=[""] * len(tensors),
                      tensors=[tf.constant(v) for v in tensors.values()])
    return len(values)


def run(args):
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args[:2])} failed:\n{proc.stderr[-2000:]}")
    return proc.stdout


def main(argv):
    del argv
    work = FLAGS.work_dir
    prefix = os.path.join(work, "ssd_mobilenet_v3_small_coco_2020_01_14", "model.ckpt")
    print(f"wrote {write_checkpoint(prefix)} variables (+ EMA, Momentum, global_step) to "
          f"{prefix}")
    folders = {"checkpoint": os.path.join(work, "from_checkpoint"),
               "mlmodel": os.path.join(work, "from_mlmodel")}
    for source, folder in ((os.path.dirname(prefix), folders["checkpoint"]),
                           (os.path.join(SSD, "ssd_mobilenet.mlmodel"), folders["mlmodel"])):
        print(run(["-m", "mobilenet_v3.weights.convert", source, f"--output={folder}",
                   "--overwrite"]).strip())
    report = os.path.join(work, "eval.json")
    run([os.path.join(ROOT, "evaluate.py"), *[f"--model={f}" for f in folders.values()],
         "--annotations=" + os.path.join(COCO, "annotations", "instances_val2017.json"),
         "--images=" + os.path.join(COCO, "val2017"), f"--output_json={report}"])
    with open(report) as f:
        results = json.load(f)["results"]
    print(f"\n{'loaded from':12s} {'mAP':>6s} {'mAP@.5':>7s}   (coco_mini val2017, "
          f"{results[0]['images']} images)")
    for name, r in zip(folders, results):
        print(f"{name:12s} {100 * r['mAP']:6.2f} {100 * r['mAP50']:7.2f}")
    return 0


if __name__ == "__main__":
    app.run(main)
