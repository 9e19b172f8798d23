"""MobileNetV3 (Howard et al., 2019) for tf_keras: models, training, TFLite export, benchmarks.

Subpackages: specs (tables), modeling, data, training, export, analysis, bench.
"""

from mobilenet_v3.applications import (MobileNetV3Large, MobileNetV3Small, decode_predictions,
                                       load_weights, preprocess_input)
from mobilenet_v3.modeling import (BackboneConfig, ClassifierConfig, GraphConfig, ModelConfig,
                                   RegularizationConfig, build_model)
from mobilenet_v3.specs import LARGE, SMALL, make_divisible

__all__ = ["BackboneConfig", "ClassifierConfig", "GraphConfig", "ModelConfig",
           "MobileNetV3Large", "MobileNetV3Small", "RegularizationConfig", "build_model",
           "decode_predictions", "load_weights", "preprocess_input", "LARGE", "SMALL",
           "make_divisible"]
