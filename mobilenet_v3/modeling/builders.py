"""MobileNetV3-Large and -Small builders (tf_keras functional models).

`build_model(ModelConfig)` is what the rest of the project calls; `MobileNetV3Large` and
`MobileNetV3Small` wrap it with keras.applications' calling convention.
"""

import os
from typing import Optional

import tf_keras
from tf_keras import layers

from mobilenet_v3.modeling import naming
from mobilenet_v3.modeling.backbone import build_backbone
from mobilenet_v3.modeling.classifier import classifier_head
from mobilenet_v3.modeling.config import DEFAULT_INPUT_SHAPE, ModelConfig


def model_inputs(config: ModelConfig):
    """(Keras input, [-1, 1] tensor): the image input and its optional in-graph rescale."""
    graph = config.graph
    inputs = tf_keras.Input(shape=tuple(graph.input_shape), batch_size=graph.batch_size,
                            name="image")
    x = inputs
    if graph.include_preprocessing:
        x = layers.Rescaling(scale=1.0 / 127.5, offset=-1.0, name=naming.PREPROCESS)(x)
    return inputs, x


def build_model(config: ModelConfig) -> tf_keras.Model:
    """Builds the network described by `config` (randomly initialised)."""
    config.validate()
    inputs, x = model_inputs(config)
    x = classifier_head(build_backbone(x, config).output, config)
    return tf_keras.Model(inputs, x, name=f"mobilenet_v3_{config.arch.name}")


def load_weights(model: tf_keras.Model, weights: Optional[str],
                 config: Optional[ModelConfig] = None) -> None:
    """Loads weights into `model`: a Keras .h5 / .weights.h5 or TF checkpoint prefix, or
    (through `mobilenet_v3.weights`) "imagenet" from the local caches (never downloaded), an
    official .tflite / .tgz / TF-Slim checkpoint, or a keras.applications .h5 file."""
    if weights is None:
        return
    from mobilenet_v3 import weights as pretrained  # imports this module: import lazily
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
        from mobilenet_v3 import weights as pretrained
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
