"""keras.applications' calling convention: build a MobileNetV3 and load its `weights=`.

Above both `mobilenet_v3.modeling` (which builds randomly initialised networks and knows
nothing of weight files) and `mobilenet_v3.weights` (which imports official weights into those
networks). The importer is loaded on first use only, so `import mobilenet_v3` stays light (no
TFLite interpreter).
"""

import os
from typing import Optional

import tf_keras

from mobilenet_v3.modeling.builders import build_model
from mobilenet_v3.modeling.config import DEFAULT_INPUT_SHAPE, ModelConfig


def load_weights(model: tf_keras.Model, weights: Optional[str],
                 config: Optional[ModelConfig] = None) -> None:
    """Loads weights into `model`: a Keras .h5 / .weights.h5 or TF checkpoint prefix, or
    (through `mobilenet_v3.weights`) "imagenet" from the local caches (never downloaded), an
    official .tflite / .tgz / TF-Slim checkpoint, or a keras.applications .h5 file."""
    if weights is None:
        return
    from mobilenet_v3 import weights as pretrained  # on first use: see the docstring
    if pretrained.handles(weights):
        pretrained.load_pretrained(model, weights, config)
        return
    if not (os.path.exists(weights) or os.path.exists(weights + ".index")):
        raise FileNotFoundError(f"weights file not found: {weights!r}")
    model.load_weights(weights)


def _build(name, input_shape, alpha, minimalistic, include_top, weights, classes, pooling,
           dropout_rate, classifier_activation, include_preprocessing, input_tensor=None):
    if input_shape is None and input_tensor is not None:
        input_shape = tuple(tf_keras.backend.int_shape(input_tensor)[1:])
    if input_shape is None:      # keras.applications: a backbone takes any resolution
        input_shape = DEFAULT_INPUT_SHAPE if include_top else (None, None, 3)
    config = ModelConfig.from_flat(
        name=name, alpha=alpha, input_shape=tuple(input_shape),
        minimalistic=minimalistic, include_top=include_top, classes=classes, pooling=pooling,
        dropout_rate=dropout_rate, classifier_activation=classifier_activation,
        include_preprocessing=include_preprocessing)
    if weights == "imagenet":  # fail before spending time on building
        from mobilenet_v3 import weights as pretrained  # on first use: see the docstring
        pretrained.find_imagenet_weights(config)
    model = build_model(config)
    load_weights(model, weights, config)
    if input_tensor is None:
        return model
    # keras.applications: the network applied to the caller's tensor, a model from its inputs
    sources = tf_keras.utils.get_source_inputs(input_tensor)
    return tf_keras.Model(sources, model(input_tensor), name=model.name)


def MobileNetV3Large(input_shape=None, alpha=1.0, minimalistic=False, include_top=True,
                     weights=None, input_tensor=None, classes=1000, pooling=None,
                     dropout_rate=0.2, classifier_activation="softmax",
                     include_preprocessing=True):
    """MobileNetV3-Large (paper Table 1), keras.applications calling convention.

    `input_shape` defaults to (224, 224, 3) with the classifier (the paper's resolution, a fixed
    graph for TFLite) and to (None, None, 3) without it, as keras.applications: a backbone for
    any resolution. `weights` is None, "imagenet" or a weights path.
    """
    return _build("large", input_shape, alpha, minimalistic, include_top, weights, classes,
                  pooling, dropout_rate, classifier_activation, include_preprocessing,
                  input_tensor)


def MobileNetV3Small(input_shape=None, alpha=1.0, minimalistic=False, include_top=True,
                     weights=None, input_tensor=None, classes=1000, pooling=None,
                     dropout_rate=0.2, classifier_activation="softmax",
                     include_preprocessing=True):
    """MobileNetV3-Small (paper Table 2), keras.applications calling convention."""
    return _build("small", input_shape, alpha, minimalistic, include_top, weights, classes,
                  pooling, dropout_rate, classifier_activation, include_preprocessing,
                  input_tensor)


def preprocess_input(x, data_format=None):
    """keras.applications.mobilenet_v3.preprocess_input: the identity. The models rescale
    [0, 255] pixels themselves (include_preprocessing=True, the default); a model built with
    include_preprocessing=False takes [-1, 1] (pixels / 127.5 - 1) instead."""
    del data_format
    return x


def decode_predictions(preds, top: int = 5):
    """keras.applications' decode_predictions without its download: per image the `top`
    (wnid, name, score) of a 1000-class output, or of a 1001-class one (index 0: background,
    skipped: Google's TF-Slim/TFLite files)."""
    import numpy as np
    from mobilenet_v3.data import imagenet_classes
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] not in (1000, 1001):
        raise ValueError("decode_predictions expects a batch of ImageNet predictions, shape "
                         f"(samples, 1000) or (samples, 1001); got {preds.shape}")
    offset = preds.shape[1] - 1000
    wnids, names = imagenet_classes.wnids(), imagenet_classes.names()
    results = []
    for row in preds[:, offset:]:
        best = np.argsort(-row, kind="stable")[:top]
        results.append([(wnids[i], names[i], float(row[i])) for i in best])
    return results
