"""Exported files in MediaPipe Tasks against our own LiteRT evaluation of the same files.

    python -m benchmark.mediapipe_tasks --classifier=DIR/mobilenet_v3_small_1_224_int8.tflite \
        --detector=DIR/ssdlite_int8.tflite --segmenter=DIR/lraspp_int8.tflite

Each flag is repeatable and optional. Classifier: 150 photos of ../shared/datasets/
imagenet_samples as evaluate.py preprocesses them, the same uint8 pixels to both (top-1
agreement), plus top-1 against the labels, MediaPipe also on the untouched photos (its own
resize). Detector: COCO mAP on coco_mini val2017 (MediaPipe on the untouched photos vs
evaluate.py). Segmenter: pixel agreement of category masks on 10 val2017 photos.
MediaPipe runs in its own cached environment (mobilenet_v3/apps/mediapipe_env.py).
"""

import glob
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "datasets")
flags.DEFINE_multi_string("classifier", [], "ImageNet classifier .tflite (1001 classes).")
flags.DEFINE_multi_string("detector", [], "COCO detector .tflite (91 slots).")
flags.DEFINE_multi_string("segmenter", [], "Segmenter .tflite.")
flags.DEFINE_integer("photos", 150, "Classifier photos.")
flags.DEFINE_string("output_json", None, "Also write the results here.")


def main(argv):
    del argv
    from mobilenet_v3.apps import mediapipe_check, mediapipe_env
    from mobilenet_v3.data import imagenet_classes
    results = {}
    try:
        for path in FLAGS.classifier:
            photos = mediapipe_check.photo_files(os.path.join(SHARED, "imagenet_samples"),
                                                 FLAGS.photos)
            index = {w: i + 1 for i, w in enumerate(imagenet_classes.wnids())}
            labels = [index[os.path.basename(os.path.dirname(p))] for p in photos]
            results[path] = mediapipe_check.classifier(path, photos, labels)
        coco = os.path.join(SHARED, "coco_mini")
        for path in FLAGS.detector:
            results[path] = mediapipe_check.detector(
                path, os.path.join(coco, "annotations", "instances_val2017.json"),
                os.path.join(coco, "val2017"))
        for path in FLAGS.segmenter:
            photos = sorted(glob.glob(os.path.join(coco, "val2017", "*.jpg")))[10:20]
            results[path] = mediapipe_check.segmenter(path, photos)
    except (mediapipe_env.MediaPipeUnavailable, mediapipe_env.MediaPipeError, OSError) as e:
        print(f"mediapipe_tasks: {e}", file=sys.stderr)
        return 1
    for path, r in results.items():
        print(os.path.basename(path), json.dumps(r))
    if FLAGS.output_json:
        from mobilenet_v3 import files
        files.atomic_write_json(FLAGS.output_json, results)
    return 0


if __name__ == "__main__":
    app.run(main)
