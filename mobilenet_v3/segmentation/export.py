"""Segmenter -> TFLite (float32 / int8) and its verification against the Keras model.

The exported graph: image [1, H, W, 3] in [-1, 1] -> per-pixel class logits [1, H, W, C].
Weights do not depend on the resolution (the LR-ASPP pool has none), so a model trained on
crops exports at any size, e.g. 512x1024 for a phone.
"""

from typing import Callable, Dict, Iterable, Optional, Tuple

import numpy as np
import tf_keras

from mobilenet_v3.analysis import tflite_inspect
from mobilenet_v3.export import convert as converter
from mobilenet_v3.export.formats import HEAD_FORMATS
from mobilenet_v3.modeling.heads.lraspp import SegmenterConfig, build_segmenter

FORMATS = HEAD_FORMATS


def inference_model(trained: Optional[tf_keras.Model], config: SegmenterConfig,
                    hard_swish_form: str, size: Optional[Tuple[int, int]] = None
                    ) -> tf_keras.Model:
    """The trained weights in a batch-1 graph at `size` (default: the trained size)."""
    h, w = size or config.input_shape[:2]
    graph = config.replace(batch_size=1, hard_swish_form=hard_swish_form,
                           include_preprocessing=False, weight_decay=0.0,
                           input_shape=(h, w, 3))
    model = build_segmenter(graph, pool_as_depthwise=hard_swish_form != "fused")
    if trained is not None:
        copy_weights(trained, model)
    return model


def copy_weights(source: tf_keras.Model, target: tf_keras.Model) -> None:
    """Layer by layer by name: the inference graph may hold a frozen constant pool the
    trained graph has as a weightless AveragePooling2D."""
    for layer in target.layers:
        weights = source.get_layer(layer.name).get_weights() if layer.weights else []
        if weights:
            layer.set_weights(weights)
        elif layer.trainable_weights:
            raise ValueError(f"no trained weights for layer {layer.name!r}")


def convert(model: tf_keras.Model, fmt: str,
            representative_images: Optional[Callable[[], Iterable[np.ndarray]]] = None) -> bytes:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if fmt == "int8" and representative_images is None:
        raise ValueError("int8 needs calibration images")
    return converter.convert(model, fmt, representative_images if fmt == "int8" else None)


def pixel_agreement(tflite: bytes, model: tf_keras.Model, images: np.ndarray,
                    masks: Optional[np.ndarray] = None) -> Dict:
    """Fraction of pixels whose argmax class is the same in the file and the Keras model,
    the largest logit difference, and (with masks) both models' mIoU."""
    from mobilenet_v3.segmentation.task import confusion_matrix, mean_iou
    ours = tflite_inspect.run(tflite, images)
    reference = model.predict(images, batch_size=1, verbose=0)
    same = np.argmax(ours, -1) == np.argmax(reference, -1)
    result = {"images": int(len(images)), "argmax_agreement": float(same.mean()),
              "worst_image_agreement": float(same.reshape(len(images), -1).mean(1).min()),
              "max_logit_diff": float(np.abs(ours - reference).max())}
    if masks is not None:
        k = reference.shape[-1]
        result["mIoU_tflite"] = mean_iou(confusion_matrix(ours, masks, k).numpy())
        result["mIoU_keras"] = mean_iou(confusion_matrix(reference, masks, k).numpy())
    return result
