"""The 750 labelled ImageNet photos of ../shared, split for int8 work, and the official Small.

Per class (sorted file names): the first 2 photos calibrate, the other 3 score (450 images),
so accuracy claims never use a calibration image. Slim evaluation preprocessing, [-1, 1];
labels in the 1001-class convention (ImageNet index + 1) when `classes == 1001`.
"""

import os
from typing import Tuple

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(ROOT, "..", "shared")
PHOTOS = os.path.join(SHARED, "datasets", "imagenet_samples")
OFFICIAL_SMALL_TFLITE = os.path.join(SHARED, "models", "v3-small_224_1.0_uint8.tflite")
CALIBRATION_PER_CLASS = 2


def split(root: str = PHOTOS, size: int = 224, classes: int = 1001
          ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(calibration images, their labels, scoring images, their labels)."""
    import tensorflow as tf
    from mobilenet_v3.data import imagenet_classes, preprocessing
    index = {w: i for i, w in enumerate(imagenet_classes.wnids())}
    offset = 1 if classes == 1001 else 0
    parts = {"cal": ([], []), "score": ([], [])}
    for wnid in sorted(os.listdir(root)):
        folder = os.path.join(root, wnid)
        if not os.path.isdir(folder):
            continue
        names = sorted(n for n in os.listdir(folder) if n.lower().endswith(".jpg"))
        for k, name in enumerate(names):
            image = tf.io.decode_jpeg(tf.io.read_file(os.path.join(folder, name)), channels=3)
            images, labels = parts["cal" if k < CALIBRATION_PER_CLASS else "score"]
            images.append(preprocessing.eval_preprocess(image, size).numpy())
            labels.append(index[wnid] + offset)
    return (np.stack(parts["cal"][0]), np.array(parts["cal"][1]),
            np.stack(parts["score"][0]), np.array(parts["score"][1]))


def official_small(path: str):
    """TrainedModel of the imported official Small (`python -m mobilenet_v3.weights.convert
    ../shared/models/v3-small_224_1.0_uint8.tflite --output=DIR --classes=1001`)."""
    from mobilenet_v3 import export
    return export.load_trained(path)


def keras_outputs(model, images: np.ndarray, batch: int = 50) -> np.ndarray:
    return np.concatenate([np.asarray(model(images[i:i + batch], training=False))
                           for i in range(0, len(images), batch)])


def labelled_view(target: str, root: str = PHOTOS, per_class: int = 0) -> Tuple[str, str]:
    """(image folder, class list) giving the photos TF-Slim's 1001 labels (background = 0,
    then the 1000 wnids) through `--dataset=image_folder --class_list=`: the folder holds
    symlinks to the first `per_class` photos of each class (0: all; 2: the calibration part
    of `split`)."""
    from mobilenet_v3 import files
    from mobilenet_v3.data import imagenet_classes
    wnids = imagenet_classes.wnids()
    for wnid in wnids:
        source = os.path.join(root, wnid)
        if not os.path.isdir(source):
            continue
        os.makedirs(os.path.join(target, wnid), exist_ok=True)
        names = sorted(n for n in os.listdir(source) if n.lower().endswith(".jpg"))
        for name in names[:per_class] if per_class else names:
            link = os.path.join(target, wnid, name)
            if not os.path.lexists(link):
                os.symlink(os.path.abspath(os.path.join(source, name)), link)
    class_list = target.rstrip("/") + "_classes.txt"
    files.atomic_write_text(class_list, "\n".join(["background"] + list(wnids)) + "\n")
    return target, class_list
