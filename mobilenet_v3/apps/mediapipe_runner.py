"""Runs a .tflite in MediaPipe Tasks, inside MediaPipe's own environment (mediapipe_env.py).

Executed as a script by that environment's Python: it imports only mediapipe and numpy (never
this package, TensorFlow's numpy/protobuf pins differ). Reads a request JSON, writes a result
JSON:
  {"task": "classification" | "detection" | "segmentation", "model": path,
   "images": [paths] (photos, MediaPipe resizes them) or "arrays": .npy path (N, H, W, 3 uint8),
   "max_results": int, "score_threshold": float | null, "masks": .npy path to write}
classification -> per image [{index, name, score}] best first; detection -> per image
[{box: [x, y, w, h] pixels, index, name, score}]; segmentation -> category masks in "masks"
(N, H, W uint8) and the labels MediaPipe read; write_metadata (MediaPipe 0.10's own writer,
for comparison) -> the JSON of the file it wrote to "output".
"""

import json
import sys


def _images(request):
    import mediapipe as mp
    import numpy as np
    if request.get("arrays"):
        for array in np.load(request["arrays"]):
            yield mp.Image(image_format=mp.ImageFormat.SRGB,
                           data=np.ascontiguousarray(array, np.uint8))
    for path in request.get("images", []):
        yield mp.Image.create_from_file(path)


def _categories(categories):
    # ObjectDetector leaves index None when the file has labels: the caller maps the name
    return [{"index": None if c.index is None else int(c.index), "name": c.category_name,
             "score": float(c.score)} for c in categories]


def classify(request, vision, base):
    options = vision.ImageClassifierOptions(base_options=base,
                                            max_results=request.get("max_results", 5))
    with vision.ImageClassifier.create_from_options(options) as task:
        return [_categories(task.classify(image).classifications[0].categories)
                for image in _images(request)]


def detect(request, vision, base):
    kwargs = {"max_results": request.get("max_results", -1)}
    if request.get("score_threshold") is not None:
        kwargs["score_threshold"] = request["score_threshold"]
    options = vision.ObjectDetectorOptions(base_options=base, **kwargs)
    out = []
    with vision.ObjectDetector.create_from_options(options) as task:
        for image in _images(request):
            found = []
            for d in task.detect(image).detections:
                b = d.bounding_box
                for c in _categories(d.categories[:1]):
                    found.append(dict(c, box=[b.origin_x, b.origin_y, b.width, b.height]))
            out.append({"size": [image.height, image.width], "detections": found})
    return out


def segment(request, vision, base):
    import numpy as np
    options = vision.ImageSegmenterOptions(base_options=base, output_category_mask=True,
                                           output_confidence_masks=False)
    masks = []
    with vision.ImageSegmenter.create_from_options(options) as task:
        labels = list(task.labels)
        for image in _images(request):
            masks.append(task.segment(image).category_mask.numpy_view().copy())
    np.save(request["masks"], np.stack(masks).astype(np.uint8))
    return {"labels": labels, "images": len(masks)}


def write_metadata(request, vision, base):
    """MediaPipe's own metadata writer (0.10.x: 1.2.x lacks its native module) on a file
    without metadata: {"kind", "labels", "mean", "std", "output"} -> its JSON."""
    from mediapipe.tasks.python.metadata.metadata_writers import (
        image_classifier, image_segmenter, metadata_writer, object_detector)
    with open(request["model"], "rb") as f:
        model = f.read()
    labels = metadata_writer.Labels().add(request["labels"])
    mean, std = [request["mean"]], [request["std"]]
    if request["kind"] == "classification":
        writer = image_classifier.MetadataWriter.create(model, mean, std, labels)
    elif request["kind"] == "detection":
        writer = object_detector.MetadataWriter.create_for_models_with_nms(model, mean, std,
                                                                           labels)
    else:
        writer = image_segmenter.MetadataWriter.create(
            model, mean, std, labels, image_segmenter.Activation.SOFTMAX)
    written, text = writer.populate()
    with open(request["output"], "wb") as f:
        f.write(written)
    return json.loads(text)


def main(request_path, result_path):
    with open(request_path) as f:
        request = json.load(f)
    import mediapipe
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions
    base = BaseOptions(model_asset_path=request["model"]) if request["task"] != \
        "write_metadata" else None
    run = {"classification": classify, "detection": detect, "segmentation": segment,
           "write_metadata": write_metadata}
    try:
        result = {"ok": True, "mediapipe": mediapipe.__version__,
                  "results": run[request["task"]](request, vision, base)}
    except Exception as e:  # noqa: BLE001 - reported to the caller, who raises it
        result = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    with open(result_path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(*sys.argv[1:3])
