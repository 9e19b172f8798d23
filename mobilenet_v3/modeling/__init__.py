"""Keras networks: config, layers, backbone with recorded endpoints, heads, builders.

naming.py is the one module that knows layer names. Loading weight files is not done here:
`MobileNetV3Large/Small` and `load_weights` are in mobilenet_v3/applications.py, above this
package and `mobilenet_v3.weights`.
"""

from mobilenet_v3.modeling.builders import build_model
from mobilenet_v3.modeling.config import (BackboneConfig, ClassifierConfig, GraphConfig,
                                          ModelConfig, RegularizationConfig)

__all__ = ["BackboneConfig", "ClassifierConfig", "GraphConfig", "ModelConfig",
           "RegularizationConfig", "build_model"]
