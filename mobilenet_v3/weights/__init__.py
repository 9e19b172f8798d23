"""Imports Google's official MobileNetV3 weights into this package's models.

Sources: official .tflite (float/uint8) and .tgz / TF-Slim checkpoints, keras.applications .h5, "imagenet".
"""

from mobilenet_v3.weights.catalog import ENV_VAR, find_imagenet_weights
from mobilenet_v3.weights.errors import (ArchitectureMismatchError, CorruptWeightsError,
                                         NotMobileNetV3Error, WeightsError, WeightsNotFoundError)
from mobilenet_v3.weights.loader import (IMAGENET, config_of, convertible_config, detect_config,
                                         handles, load_pretrained, read_weights, weights_for)

__all__ = ["ENV_VAR", "IMAGENET", "ArchitectureMismatchError", "CorruptWeightsError",
           "NotMobileNetV3Error", "WeightsError", "WeightsNotFoundError", "config_of",
           "convertible_config", "detect_config", "find_imagenet_weights", "handles",
           "load_pretrained", "read_weights", "weights_for"]
