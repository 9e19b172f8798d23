"""Feature endpoints C1..C5 for detection and segmentation heads.

C_k is the last layer of the backbone at output stride 2**k; at a stride-2 bottleneck that is
the expansion output (C4 = the 13th / 9th bottleneck's expansion, C5 = the layer before pooling).
"""

from typing import Sequence

import tf_keras

from mobilenet_v3.modeling import naming
from mobilenet_v3.modeling.backbone import ENDPOINTS, build_backbone
from mobilenet_v3.modeling.builders import model_inputs
from mobilenet_v3.modeling.config import ModelConfig

endpoint_layer_names = naming.endpoint_layer_names


def _check(endpoints: Sequence[str]):
    unknown = set(endpoints) - set(ENDPOINTS)
    if unknown:
        raise ValueError(f"endpoints must be among {ENDPOINTS}, got {sorted(unknown)}")


def build_feature_model(config: ModelConfig,
                        endpoints: Sequence[str] = ENDPOINTS) -> tf_keras.Model:
    """A backbone whose outputs are {endpoint: feature map}, taps recorded while building."""
    _check(endpoints)
    config.validate()
    inputs, x = model_inputs(config)
    backbone = build_backbone(x, config)
    return tf_keras.Model(inputs, {e: backbone.endpoints[e] for e in endpoints},
                          name=f"mobilenet_v3_{config.arch.name}_features")


def feature_extractor(model: tf_keras.Model,
                      endpoints: Sequence[str] = ENDPOINTS) -> tf_keras.Model:
    """A model sharing `model`'s layers whose outputs are a dict {endpoint: feature map}."""
    _check(endpoints)
    names = endpoint_layer_names(model)
    outputs = {e: model.get_layer(names[e]).output for e in endpoints}
    return tf_keras.Model(model.inputs, outputs, name=f"{model.name}_features")
