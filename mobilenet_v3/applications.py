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
           dropout_rate, classifier_activation, include_preprocessing):
    config = ModelConfig.from_flat(
        name=name, alpha=alpha,
        input_shape=DEFAULT_INPUT_SHAPE if input_shape is None else tuple(input_shape),
        minimalistic=minimalistic, include_top=include_top, classes=classes, pooling=pooling,
        dropout_rate=dropout_rate, classifier_activation=classifier_activation,
        include_preprocessing=include_preprocessing)
    if weights == "imagenet":  # fail before spending time on building
        from mobilenet_v3 import weights as pretrained  # on first use: see the docstring
        pretrained.find_imagenet_weights(config)
    model = build_model(config)
    load_weights(model, weights, config)
    return model


def MobileNetV3Large(input_shape=None, alpha=1.0, minimalistic=False, include_top=True,
                     weights=None, classes=1000, pooling=None, dropout_rate=0.2,
                     classifier_activation="softmax", include_preprocessing=True):
    """MobileNetV3-Large (paper Table 1), keras.applications calling convention.

    `input_shape` defaults to (224, 224, 3); `weights` is None, "imagenet" or a weights path.
    """
    return _build("large", input_shape, alpha, minimalistic, include_top, weights, classes,
                  pooling, dropout_rate, classifier_activation, include_preprocessing)


def MobileNetV3Small(input_shape=None, alpha=1.0, minimalistic=False, include_top=True,
                     weights=None, classes=1000, pooling=None, dropout_rate=0.2,
                     classifier_activation="softmax", include_preprocessing=True):
    """MobileNetV3-Small (paper Table 2), keras.applications calling convention."""
    return _build("small", input_shape, alpha, minimalistic, include_top, weights, classes,
                  pooling, dropout_rate, classifier_activation, include_preprocessing)
