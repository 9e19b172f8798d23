"""Converts official / keras.applications weights into a folder export_tflite.py and evaluate.py take.

    python -m mobilenet_v3.weights.convert SRC --output=DIR [--classes=1000|1001] [--model=... --alpha=...]

SRC may also be a whole detector or segmenter: the OD API's SSDLite-MobileNetV3 (model.ckpt,
.mlmodel) or DeepLab's MobileNetV3 LR-ASPP (frozen_inference_graph.pb, model.ckpt): head_convert.
"""

import os
import shutil
import tempfile
import sys
from typing import Dict, List, Optional

from mobilenet_v3 import files
from mobilenet_v3.data import imagenet_classes
from mobilenet_v3.modeling.builders import build_model
from mobilenet_v3.modeling.config import ModelConfig
from mobilenet_v3.weights import assign, loader


def write_folder(model, config: ModelConfig, output: str, overwrite: bool = False,
                 labels: Optional[List[str]] = None) -> Dict:
    """model.keras, model_config.json (as train.py's final/) and labels.txt, written atomically
    (`labels`, or ImageNet's for a 1000/1001-class classifier)."""
    if os.path.exists(os.path.join(output, "model.keras")) and not overwrite:
        raise FileExistsError(f"{output!r} already holds model.keras (pass --overwrite)")
    os.makedirs(output, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=output)
    try:      # Keras writes the zip itself: save beside, then rename into place
        model.save(os.path.join(tmp, "model.keras"))
        os.replace(os.path.join(tmp, "model.keras"), os.path.join(output, "model.keras"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    flat = config.to_flat()
    files.atomic_write_json(os.path.join(output, "model_config.json"), flat)
    if labels is None and getattr(config, "include_top", False) and config.classes in (1000, 1001):
        labels = imagenet_classes.labels(config.classes)
    if labels:
        files.atomic_write_text(os.path.join(output, "labels.txt"), "\n".join(labels) + "\n")
    return flat


def convert(source: str, output: str, classes: Optional[int] = None,
            resolution: Optional[int] = None,
            overwrite: bool = False, **fixed) -> Dict:
    """Reads `source`, detects its variant (`fixed` pins name/alpha/minimalistic), writes `output`.
    A whole detector / segmenter file goes to head_convert (its own sizes unless `resolution`)."""
    from mobilenet_v3.weights import head_convert, head_files
    if head_files.kind_of(source) in (head_files.SSDLITE, head_files.DEEPLAB):
        model, config, labels, summary = head_convert.from_file(
            source, None if resolution is None else (resolution, resolution))
        write_folder(model, config, output, overwrite, labels=labels)
        return dict(summary, config=config.to_flat(), output=output)
    resolution = 224 if resolution is None else resolution
    weights = loader.read_weights(source)
    config = loader.convertible_config(weights, classes, (resolution, resolution, 3), **fixed)
    model = build_model(config)
    summary = assign.assign(model, config, weights)
    write_folder(model, config, output, overwrite)
    return {**summary, "config": config.to_flat(), "output": output}


def main(argv):
    from absl import flags
    flags_ = flags.FLAGS
    if len(argv) != 2:
        print("convert: expected exactly one SRC (a .tflite, .tgz, TF-Slim checkpoint or "
              f"keras.applications .h5), got {argv[1:]}", file=sys.stderr)
        return 1
    if not flags_.output:
        print("convert: --output is required", file=sys.stderr)
        return 1
    fixed = {k: v for k, v in (("name", flags_.model), ("alpha", flags_.alpha),
                               ("minimalistic", flags_.minimalistic)) if v is not None}
    try:
        result = convert(argv[1], flags_.output, None if flags_.classes is None else
                         int(flags_.classes), flags_.resolution, flags_.overwrite, **fixed)
    except (ValueError, FileNotFoundError, FileExistsError, OSError) as e:
        print(f"convert: {e}", file=sys.stderr)
        return 1
    c = result["config"]
    if "task" in result:
        print(f"{result['output']}: a {result['task']} model, MobileNetV3-{c['name']} "
              f"{c['alpha']:g}, {result['tensors']} tensors from {result['format']}")
        return 0
    print(f"{result['output']}: MobileNetV3-{c['name']} alpha {c['alpha']:g}"
          f"{' minimalistic' if c['minimalistic'] else ''}, "
          f"{c['classes'] if c['include_top'] else 'no'} classes, from {result['format']} "
          f"({'BN folded' if result['bn_folded'] else 'BN exact'})")
    return 0


def _define_flags():
    from absl import flags
    flags.DEFINE_string("output", None, "Folder for model.keras, model_config.json, labels.txt.")
    flags.DEFINE_enum("classes", None, ["1000", "1001"],
                      "1000 drops the background logit of 1001-class files (default: the file's).")
    flags.DEFINE_enum("model", None, ["large", "small"], "Only if detection cannot tell.")
    flags.DEFINE_float("alpha", None, "Only if detection cannot tell.")
    flags.DEFINE_bool("minimalistic", None, "Only if detection cannot tell.")
    flags.DEFINE_integer("resolution", None, "Input resolution of the saved model (default: "
                         "224 for classifiers, the file's own for detectors / segmenters).")
    flags.DEFINE_bool("overwrite", False, "Replace an existing model.keras in --output.")


if __name__ == "__main__":
    from absl import app
    _define_flags()
    app.run(main)
