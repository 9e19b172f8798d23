"""MobileNetV3-Large and -Small builders (tf_keras functional models).

`build_model(ModelConfig(...))` is what the rest of the project calls; `MobileNetV3Large` and
`MobileNetV3Small` wrap it with keras.applications' calling convention.

Layer names follow the paper's table rows so that the profiler and the feature extractor can
find them: `stem` (row 0), `bneck{i}_*` (bottleneck rows), `lastconv` (the 1x1 conv before
pooling), `pool`, `head` (1x1 conv without BN), `logits` (classifier), `predictions`.
"""

import dataclasses
import os
from typing import Optional, Tuple

import tf_keras
from tf_keras import layers

from mobilenet_v3 import specs
from mobilenet_v3.layers import HARD_SWISH_FORMS, activation, conv_bn_act, inverted_residual

MIN_RESOLUTION = 32
DEFAULT_INPUT_SHAPE = (224, 224, 3)


@dataclasses.dataclass
class ModelConfig:
    """Everything that defines one MobileNetV3 network (plain data; flags map onto it)."""

    name: str = "large"                 # 'large' or 'small'
    alpha: float = 1.0                  # width multiplier
    input_shape: Tuple[Optional[int], Optional[int], int] = DEFAULT_INPUT_SHAPE
    minimalistic: bool = False          # 3x3 kernels, ReLU, no SE (TF-Slim)
    include_top: bool = True
    classes: int = 1000                 # 1001 for the authors' checkpoints (background class)
    pooling: Optional[str] = None       # None, 'avg' or 'max' when include_top=False
    dropout_rate: float = 0.2
    classifier_activation: Optional[str] = "softmax"   # None for logits
    include_preprocessing: bool = True  # [0, 255] pixels -> [-1, 1] inside the model
    bn_momentum: float = 0.99           # paper 6.1.1
    bn_epsilon: float = 1e-3
    weight_decay: float = 0.0           # slim-style L2 (scale * sum(w^2) / 2), not on depthwise
    batch_size: Optional[int] = None    # fixed batch (1 for TFLite export), None = dynamic
    hard_swish_form: str = "fused"      # 'unfused' keeps int8 TFLite graphs in XNNPACK

    def validate(self) -> None:
        """Raises ValueError naming the first bad field."""
        specs.get_arch(self.name)
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) \
                or not self.alpha > 0:
            raise ValueError(f"alpha must be a number > 0, got {self.alpha!r}")
        shape = tuple(self.input_shape) if self.input_shape is not None else None
        if shape is None or len(shape) != 3:
            raise ValueError(f"input_shape must be (height, width, channels), got {shape!r}")
        for dim in shape[:2]:
            if dim is not None and (not isinstance(dim, int) or dim < MIN_RESOLUTION):
                raise ValueError(
                    f"input_shape: resolution must be >= {MIN_RESOLUTION} (or None), got {shape!r}")
        if not isinstance(shape[2], int) or shape[2] < 1:
            raise ValueError(f"input_shape: channels must be >= 1, got {shape!r}")
        if isinstance(self.classes, bool) or not isinstance(self.classes, int) or self.classes < 1:
            raise ValueError(f"classes must be an integer >= 1, got {self.classes!r}")
        if self.pooling not in (None, "avg", "max"):
            raise ValueError(f"pooling must be None, 'avg' or 'max', got {self.pooling!r}")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1), got {self.dropout_rate!r}")
        if not 0.0 < self.bn_momentum < 1.0:
            raise ValueError(f"bn_momentum must be in (0, 1), got {self.bn_momentum!r}")
        if self.hard_swish_form not in HARD_SWISH_FORMS:
            raise ValueError(f"hard_swish_form must be one of {HARD_SWISH_FORMS}, got "
                             f"{self.hard_swish_form!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be None or >= 1, got {self.batch_size!r}")

    @property
    def arch(self) -> specs.ArchSpec:
        spec = specs.get_arch(self.name)
        return specs.minimalistic(spec) if self.minimalistic else spec

    @property
    def scaled_arch(self) -> specs.ScaledArch:
        return specs.scale_arch(self.arch, self.alpha)


def build_model(config: ModelConfig) -> tf_keras.Model:
    """Builds the network described by `config` (randomly initialised)."""
    config.validate()
    arch = config.scaled_arch

    def batch_norm(name):
        return layers.BatchNormalization(
            momentum=config.bn_momentum, epsilon=config.bn_epsilon, name=name)

    regularizer = (tf_keras.regularizers.L2(config.weight_decay / 2)
                   if config.weight_decay else None)

    inputs = tf_keras.Input(shape=tuple(config.input_shape), batch_size=config.batch_size,
                            name="image")
    x = inputs
    if config.include_preprocessing:
        x = layers.Rescaling(scale=1.0 / 127.5, offset=-1.0, name="preprocess")(x)
    form = config.hard_swish_form
    x = conv_bn_act(x, arch.stem_channels, 3, 2, arch.spec.stem_nl, "stem", batch_norm,
                    regularizer, form)
    for block in arch.blocks:
        x = inverted_residual(x, block, f"bneck{block.index}", batch_norm, regularizer, form)
    x = conv_bn_act(x, arch.last_conv_channels, 1, 1, arch.spec.last_conv_nl, "lastconv",
                    batch_norm, regularizer, form)

    if config.include_top:
        x = layers.GlobalAveragePooling2D(keepdims=True, name="pool")(x)
        x = layers.Conv2D(arch.head_channels, 1, use_bias=True, kernel_regularizer=regularizer,
                          name="head")(x)
        x = activation(x, arch.spec.head_nl, "head_act", form)
        if config.dropout_rate > 0:
            x = layers.Dropout(config.dropout_rate, name="dropout")(x)
        x = layers.Conv2D(config.classes, 1, use_bias=True, kernel_regularizer=regularizer,
                          name="logits")(x)
        x = layers.Reshape((config.classes,), name="logits_flat")(x)
        x = layers.Activation(config.classifier_activation, name="predictions")(x)
    elif config.pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="pool")(x)
    elif config.pooling == "max":
        x = layers.GlobalMaxPooling2D(name="pool")(x)

    return tf_keras.Model(inputs, x, name=f"mobilenet_v3_{arch.spec.name}")


def load_weights(model: tf_keras.Model, weights: Optional[str],
                 config: Optional[ModelConfig] = None) -> None:
    """Loads a weights file (Keras .h5 / .weights.h5 or a TF checkpoint prefix) into `model`.

    "imagenet" (local caches only, never downloaded), the official .tflite / .tgz / TF-Slim
    checkpoints and keras.applications .h5 files go through `mobilenet_v3.weights`.
    """
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
    config = ModelConfig(
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
