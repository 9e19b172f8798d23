"""MobileNetV3-Large and -Small builders (tf_keras functional models).

`build_model(ModelConfig)` is what the rest of the project calls; `MobileNetV3Large` and
`MobileNetV3Small` (mobilenet_v3/applications.py, above this module and `mobilenet_v3.weights`)
wrap it with keras.applications' calling convention and its `weights=` argument.
"""

import tf_keras
from tf_keras import layers

from mobilenet_v3.modeling import naming
from mobilenet_v3.modeling.backbone import build_backbone
from mobilenet_v3.modeling.classifier import classifier_head
from mobilenet_v3.modeling.config import ModelConfig


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
