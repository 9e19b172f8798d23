"""Top-1 / top-5 of a Keras model or a .tflite file on ImageNet validation or a <wnid>/*.jpg folder.

TF-Slim's evaluation preprocessing (central crop 87.5%, bilinear resize, [-1, 1]); 1001-class models
(background = 0) have every label shifted by one; uint8/int8 TFLite inputs are quantized from [-1, 1].
"""

import dataclasses
import json
import os
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from mobilenet_v3.analysis import tflite_inspect
from mobilenet_v3.data import image_folder, imagenet, imagenet_classes, preprocessing
from mobilenet_v3.training.loop import format_duration


class EvaluationError(ValueError):
    """Bad input to the evaluator (missing model or data, unknown class folder)."""


@dataclasses.dataclass
class Scorer:
    """Something that maps a batch of [-1, 1] images to class scores."""

    name: str
    image_size: int
    classes: int
    predict: object    # callable: np.ndarray [n, h, w, 3] in [-1, 1] -> [n, classes]


def _keras_scorer(path: str) -> Scorer:
    from mobilenet_v3 import export   # loads model.keras with model_config.json beside it
    model_file = os.path.join(path, "model.keras") if os.path.isdir(path) else path
    if os.path.isdir(path) and not os.path.exists(model_file):
        model_file = os.path.join(path, "final", "model.keras")
    try:
        trained = export.load_trained(model_file)
    except export.ExportError as e:
        raise EvaluationError(str(e)) from None
    config, model = trained.config, trained.model
    if not config.include_top:
        raise EvaluationError(f"{path!r} has no classifier (include_top=False)")
    scale = config.include_preprocessing

    def predict(images):
        x = (images + 1.0) * 127.5 if scale else images
        return np.asarray(model(x, training=False))
    return Scorer(path, int(config.input_shape[0]), int(config.classes), predict)


def _tflite_scorer(path: str, num_threads: int) -> Scorer:
    with open(path, "rb") as f:
        content = f.read()
    try:
        it = tflite_inspect.interpreter(content)
    except (ValueError, RuntimeError) as e:
        raise EvaluationError(f"{path!r} is not a readable TFLite file: {e}") from None
    size = int(it.get_input_details()[0]["shape"][1])
    classes = int(it.get_output_details()[0]["shape"][-1])
    return Scorer(path, size, classes,
                  lambda images: tflite_inspect.run(content, images, num_threads=num_threads))


def load_scorer(path: str, num_threads: int = 1) -> Scorer:
    """A .tflite file, a .keras file (model_config.json beside it) or a folder holding one."""
    if not os.path.exists(path):
        raise EvaluationError(f"model not found: {path!r}")
    if path.lower().endswith(".tflite"):
        return _tflite_scorer(path, num_threads)
    return _keras_scorer(path)


def folder_examples(root: str, class_map: Optional[Sequence[str]] = None) -> tf.data.Dataset:
    """(uint8 image, label 0..999) from <root>/<wnid>/*.jpg; label = wnid's index in the map."""
    folder = image_folder.scan(root, min_classes=1)
    order = list(class_map) if class_map else imagenet_classes.wnids()
    index = {wnid: i for i, wnid in enumerate(order)}
    unknown = [name for name in folder.class_names if name not in index]
    if unknown:
        raise EvaluationError(f"{root!r}: class folder(s) {unknown[:3]} are not ImageNet wnids "
                              f"(expected <root>/<wnid>/*.jpg, e.g. n01440764)")
    labels = tuple(index[folder.class_names[label]] for label in folder.labels)
    return image_folder.dataset(dataclasses.replace(folder, labels=labels)), len(folder.files)


def label_offset(classes: int, class_map: Optional[Sequence[str]] = None) -> int:
    """0, or 1 for a background logit 0: ImageNet's 1000/1001, or a class map's N / N + 1."""
    expected = len(class_map) if class_map else 1000
    if classes not in (expected, expected + 1):
        what = f"the class map's {expected} classes" if class_map else "ImageNet (1000 or 1001)"
        raise EvaluationError(f"the model has {classes} classes; {what} needs {expected} or "
                              f"{expected + 1} (with a background logit 0)")
    return classes - expected


def imagenet_examples(data_dir: Optional[str], manual_dir: Optional[str]):
    b = imagenet.builder(data_dir, manual_dir)
    return imagenet.examples(b, "validation", 1000), imagenet.num_examples(b, "validation")


def _progress(done: int, total: int, correct: int, start: float, name: str) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    rate = done / max(time.time() - start, 1e-9)
    sys.stderr.write(f"\r{os.path.basename(name)[:32]:<32} [{'#' * filled}{'.' * (width - filled)}] "
                     f"{done}/{total} top-1 {correct / max(done, 1):.4f} {rate:.1f} img/s"
                     + (f" ETA {format_duration((total - done) / rate)}"
                        if 0 < done < total else ""))
    sys.stderr.flush()


def score(scorer: Scorer, examples: tf.data.Dataset, total: int, batch_size: int = 50,
          max_examples: int = 0, progress: bool = True,
          class_map: Optional[Sequence[str]] = None) -> Dict:
    """Top-1 / top-5 of one model over (uint8 image, label) examples; labels index
    `class_map` (default: the 1000 ImageNet classes)."""
    try:
        offset = label_offset(scorer.classes, class_map)
    except EvaluationError as e:
        raise EvaluationError(f"{scorer.name!r}: {e}") from None
    ds = examples.take(max_examples) if max_examples else examples
    total = min(total, max_examples) if max_examples else total
    ds = ds.map(lambda img, y: (preprocessing.eval_preprocess(img, scorer.image_size), y),
                num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
    top1 = top5 = seen = 0
    start = time.time()
    for images, labels in ds:
        scores = np.asarray(scorer.predict(images.numpy()))
        target = labels.numpy() + offset
        best5 = np.argsort(-scores, axis=1)[:, :5]
        top1 += int(np.sum(best5[:, 0] == target))
        top5 += int(np.sum(np.any(best5 == target[:, None], axis=1)))
        seen += len(target)
        if progress:
            _progress(seen, total, top1, start, scorer.name)
    if progress:
        sys.stderr.write("\n")
    if not seen:
        raise EvaluationError("no readable images to evaluate")
    return {"model": scorer.name, "classes": scorer.classes, "examples": seen,
            "top1": top1 / seen, "top5": top5 / seen}


def evaluate(models: List[str], image_folder_root: Optional[str] = None,
             data_dir: Optional[str] = None, manual_dir: Optional[str] = None,
             class_map: Optional[Sequence[str]] = None, batch_size: int = 50,
             max_examples: int = 0, num_threads: int = 1, progress: bool = True) -> Dict:
    """Scores every model on the same data; returns {'dataset': ..., 'results': [...]}."""
    if not models:
        raise EvaluationError("no model to evaluate")
    scorers = [load_scorer(m, num_threads) for m in models]
    if image_folder_root:
        examples, total = folder_examples(image_folder_root, class_map)
        dataset = image_folder_root
    else:
        examples, total = imagenet_examples(data_dir, manual_dir)
        dataset = "imagenet2012/validation"
    results = [score(s, examples, total, batch_size, max_examples, progress,
                     class_map if image_folder_root else None) for s in scorers]
    return {"dataset": dataset, "preprocessing": "central crop 0.875, bilinear, [-1, 1]",
            "results": results}


def write_json(report: Dict, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
