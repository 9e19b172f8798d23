"""MobileNetV3 (Howard et al., 2019) for tf_keras: models, layers, profiler, TFLite helpers."""

from mobilenet_v3.model import (ModelConfig, MobileNetV3Large, MobileNetV3Small, build_model,
                                load_weights)
from mobilenet_v3.specs import LARGE, SMALL, make_divisible

__all__ = ["ModelConfig", "MobileNetV3Large", "MobileNetV3Small", "build_model", "load_weights",
           "LARGE", "SMALL", "make_divisible"]
