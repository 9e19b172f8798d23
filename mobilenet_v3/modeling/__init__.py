"""Keras networks: config, layers, backbone with recorded endpoints, heads, builders.

naming.py is the one module that knows layer names.
"""

from mobilenet_v3.modeling.builders import (MobileNetV3Large, MobileNetV3Small, build_model,
                                            load_weights)
from mobilenet_v3.modeling.config import (BackboneConfig, ClassifierConfig, GraphConfig,
                                          ModelConfig, RegularizationConfig)

__all__ = ["BackboneConfig", "ClassifierConfig", "GraphConfig", "MobileNetV3Large",
           "MobileNetV3Small", "ModelConfig", "RegularizationConfig", "build_model",
           "load_weights"]
