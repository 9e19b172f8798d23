"""A file in MediaPipe Tasks against the same file in our LiteRT runs, per task.

What tells a user that an exported file works in an app as it did in export_tflite.py's
checks: MediaPipe reads the metadata (normalisation, labels, output meaning) and runs the file
its own way; we compare its answers with our evaluation of the same file.
- classification: the photos preprocessed as evaluate.py does (central crop, resize), handed to
  both as the same uint8 pixels; top-1 agreement. Also MediaPipe on the untouched photos (its
  own resize, as an app does) against the labels.
- detection: MediaPipe on the untouched COCO photos, scored with evaluate.py's COCO protocol,
  against evaluate.py's own score of the file.
- segmentation: images at the file's input size as uint8 pixels; MediaPipe's category mask
  against the argmax of our run, per pixel.
"""

import glob
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from mobilenet_v3.apps import mediapipe_env


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _pixels(images: np.ndarray) -> np.ndarray:
    """[-1, 1] images as the uint8 pixels an app hands over."""
    return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def _from_pixels(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float32) / 127.5 - 1.0


def photo_files(root: str, count: int = 0) -> List[str]:
    """Photos of an image folder (<root>/<class>/*), spread over the classes."""
    files = sorted(glob.glob(os.path.join(root, "*", "*")))
    if count and count < len(files):
        files = [files[i] for i in np.linspace(0, len(files) - 1, count).astype(int)]
    return files


def classifier(path: str, photos: Sequence[str], labels: Optional[Sequence[int]] = None
               ) -> Dict:
    """MediaPipe's top-1 vs ours on the same pixels; with `labels` (class index per photo),
    both top-1 accuracies and MediaPipe's on the untouched photos."""
    import tensorflow as tf
    from mobilenet_v3.analysis import tflite_inspect
    from mobilenet_v3.data.preprocessing import decode_image, eval_preprocess
    content = _read(path)
    size = int(tflite_inspect.interpreter(content).get_input_details()[0]["shape"][1])
    pixels = _pixels(np.stack([eval_preprocess(decode_image(tf.io.read_file(p)), size).numpy()
                               for p in photos]))
    ours = tflite_inspect.run(content, _from_pixels(pixels)).argmax(-1)
    same_pixels = mediapipe_env.run("classification", path, arrays=pixels, max_results=1)
    theirs = np.array([r[0]["index"] for r in same_pixels["results"]])
    names = mediapipe_metadata_labels(path)
    result = {"photos": len(photos), "mediapipe": same_pixels["mediapipe"],
              "top1_agreement": float(np.mean(theirs == ours)),
              # MediaPipe's category names are the file's labels at its class indices
              "names_are_the_labels": bool(names) and all(
                  r[0]["name"] == names[r[0]["index"]] for r in same_pixels["results"]),
              "example_names": [r[0]["name"] for r in same_pixels["results"][:3]]}
    if labels is not None:
        raw = mediapipe_env.run("classification", path, images=photos, max_results=1)
        own = np.array([r[0]["index"] for r in raw["results"]])
        labels = np.asarray(labels)
        result.update(top1_ours=float(np.mean(ours == labels)),
                      top1_mediapipe=float(np.mean(theirs == labels)),
                      top1_mediapipe_own_resize=float(np.mean(own == labels)))
    return result


def detector(path: str, annotations: str, images: str, max_images: int = 0) -> Dict:
    """COCO mAP of MediaPipe's detections and of evaluate.py's run of the same file."""
    from mobilenet_v3.detection import coco_eval
    from mobilenet_v3.tasks import detection
    from mobilenet_v3.tasks.eval_config import EvalConfig
    coco = coco_eval._coco(annotations)
    ids = sorted(coco.getImgIds())[:max_images or None]
    files = [os.path.join(images, info["file_name"]) for info in coco.loadImgs(ids)]
    found = mediapipe_env.run("detection", path, images=files)
    names = mediapipe_metadata_labels(path)
    index = {}
    for i, name in enumerate(names):
        index.setdefault(name, i)
    answers = iter(found["results"])

    def predict(batch):
        out = []
        for _ in batch:
            result = next(answers)
            h, w = result["size"]
            dets = result["detections"]
            boxes = np.array([[d["box"][1] / h, d["box"][0] / w, (d["box"][1] + d["box"][3]) / h,
                               (d["box"][0] + d["box"][2]) / w] for d in dets]).reshape(-1, 4)
            classes = np.array([d["index"] if d["index"] is not None else
                                index.get(d["name"], -1) for d in dets])
            out.append({"boxes": boxes, "classes": classes, "count": len(dets),
                        "scores": np.array([d["score"] for d in dets])})
        return out
    content = _read(path)
    slots = detection._file_slots(path, content)
    # the photos evaluate() preprocesses are not used: MediaPipe had the originals
    theirs = coco_eval.evaluate(predict, annotations, images, 32, slots, image_ids=ids)
    ours = detection.evaluate([path], EvalConfig(annotations=annotations, images=images,
                                                 max_examples=max_images))["results"][0]
    return {"images": len(ids), "mediapipe": found["mediapipe"],
            "mAP_mediapipe": theirs["mAP"], "mAP50_mediapipe": theirs["mAP50"],
            "mAP_ours": ours["mAP"], "mAP50_ours": ours["mAP50"],
            "detections_mediapipe": theirs["detections"], "detections_ours": ours["detections"]}


def segmenter(path: str, photos: Sequence[str]) -> Dict:
    """MediaPipe's category masks vs the argmax of our run, on the same pixels."""
    import tensorflow as tf
    from mobilenet_v3.analysis import tflite_inspect
    from mobilenet_v3.data.preprocessing import decode_image
    content = _read(path)
    h, w = (int(v) for v in tflite_inspect.interpreter(content).get_input_details()[0]
            ["shape"][1:3])
    pixels = np.stack([tf.cast(tf.image.resize(decode_image(tf.io.read_file(p)), (h, w)),
                               tf.float32).numpy() for p in photos])
    pixels = np.clip(np.round(pixels), 0, 255).astype(np.uint8)
    ours = tflite_inspect.run(content, _from_pixels(pixels)).argmax(-1)
    found = mediapipe_env.run("segmentation", path, arrays=pixels)
    theirs = found["masks"].reshape(ours.shape)
    same = theirs == ours
    return {"images": len(photos), "mediapipe": found["mediapipe"],
            "pixel_agreement": float(same.mean()),
            "worst_image_agreement": float(same.reshape(len(photos), -1).mean(1).min()),
            "labels": found["results"]["labels"]}


def mediapipe_metadata_labels(path: str) -> List[str]:
    """The label names packed in the file (what MediaPipe shows)."""
    from mobilenet_v3.export.tflite_metadata import LABELS_FILE
    from mobilenet_v3.export.tflite_metadata.writer import associated_files
    files = associated_files(_read(path))
    return files[LABELS_FILE].decode().splitlines() if LABELS_FILE in files else []
