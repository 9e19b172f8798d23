"""The importer's entry points: read any supported file, detect its variant, load it into a model.

Formats: official .tflite (float/uint8), official .tgz archives / TF-Slim checkpoints, keras.applications .h5.
"""

import os
from typing import Dict, Optional, Tuple

import tf_keras

from mobilenet_v3.modeling.builders import build_model
from mobilenet_v3.modeling.config import DEFAULT_INPUT_SHAPE, ModelConfig
from mobilenet_v3.weights import archive, assign, catalog, keras_h5, slim_checkpoint, tflite_file
from mobilenet_v3.weights import detect as detect_lib
from mobilenet_v3.weights import plan as plan_lib
from mobilenet_v3.weights.errors import (CorruptWeightsError, NotMobileNetV3Error, WeightsError,
                                         WeightsNotFoundError)
from mobilenet_v3.weights.source import SourceWeights

IMAGENET = "imagenet"


def _read_folder(path: str) -> SourceWeights:
    prefix, tflite = archive.find_checkpoint(path), archive.find_tflite(path)
    if prefix:
        return slim_checkpoint.read_prefix(prefix, origin=path)
    if tflite:
        return tflite_file.read(tflite, origin=path)
    raise WeightsNotFoundError(f"{path!r} is a folder without a TF checkpoint (.index) or a "
                               ".tflite file")


def read_weights(path: str) -> SourceWeights:
    """The conv weights of a .tflite, .tgz, TF-Slim checkpoint (prefix or folder) or .h5 file."""
    path = os.fspath(path)
    lower = path.lower()
    if os.path.isdir(path):
        return _read_folder(path)
    if os.path.exists(path + ".index"):
        return slim_checkpoint.read_prefix(path)
    if not os.path.exists(path):
        raise WeightsNotFoundError(f"weights file not found: {path!r}")
    if archive.is_archive(path):
        with archive.extracted(path) as (prefix, tflite):
            if prefix:
                return slim_checkpoint.read_prefix(prefix, origin=path)
            if tflite:
                return tflite_file.read(tflite, origin=path)
        raise CorruptWeightsError(f"{path!r} holds neither a TF-Slim checkpoint nor a .tflite")
    if lower.endswith(".tflite"):
        return tflite_file.read(path)
    if lower.endswith(keras_h5.H5_SUFFIXES):
        return keras_h5.read(path)
    raise WeightsError(f"{path!r}: unknown weights format (expected .tflite, .tgz, a TF-Slim "
                       "checkpoint prefix or folder, or a keras.applications .h5)")


def handles(weights) -> bool:
    """True for what this package loads ("imagenet" and the official/keras.applications files),
    False for our own Keras weight files and TF checkpoints."""
    if not isinstance(weights, (str, os.PathLike)):
        return False
    path = os.fspath(weights)
    if path == IMAGENET or path.lower().endswith((".tflite",) + archive.ARCHIVE_SUFFIXES):
        return True
    if os.path.isdir(path) or keras_h5.is_keras_applications_file(path):
        return True
    return os.path.exists(path + ".index") and slim_checkpoint.is_slim_checkpoint(path)


def detect_config(weights: SourceWeights, input_shape=DEFAULT_INPUT_SHAPE,
                  **fixed) -> ModelConfig:
    """The ModelConfig of the file's network (include_top and classes included)."""
    config = detect_lib.detect(weights.shapes(), input_shape, **fixed)
    if config is None:
        pinned = f" with {fixed}" if fixed else ""
        raise NotMobileNetV3Error(f"{weights.origin!r}: its {len(weights.entries)} conv layers "
                                  f"match no MobileNetV3 variant{pinned}")
    return config


def config_of(model: tf_keras.Model) -> ModelConfig:
    """The ModelConfig of a model built by `build_model` (found from its kernel shapes)."""
    shapes = plan_lib.model_kernel_shapes(model)
    config = detect_lib.detect(shapes, tuple(model.input_shape[1:]))
    if config is None:
        raise WeightsError(f"model {model.name!r} is not a MobileNetV3 built by this package")
    return config


def load_pretrained(model: tf_keras.Model, source: str,
                    config: Optional[ModelConfig] = None) -> Dict:
    """Loads `source` (a path or "imagenet") into `model`, built from `config`.

    Raises a WeightsError subclass naming the first layer that disagrees when the file is
    another variant. Returns a summary dict (format, background dropped, BN folded).
    """
    config = config if config is not None else config_of(model)
    path = catalog.find_imagenet_weights(config) if source == IMAGENET else source
    return assign.assign(model, config, read_weights(path))


def weights_for(config: ModelConfig, source: str) -> Tuple[tf_keras.Model, Dict]:
    """A new model for `config` carrying the weights of `source` (a path or "imagenet")."""
    path = catalog.find_imagenet_weights(config) if source == IMAGENET else source
    weights = read_weights(path)
    model = build_model(config)
    return model, assign.assign(model, config, weights)


def convertible_config(weights: SourceWeights, classes: Optional[int] = None,
                       input_shape=DEFAULT_INPUT_SHAPE, **fixed) -> ModelConfig:
    """The config to build for a file: detected, with the user's classes (1000 or 1001)."""
    config = detect_config(weights, input_shape, **fixed)
    if classes is not None and config.include_top:
        config = config.replace(classes=int(classes))
    return config
