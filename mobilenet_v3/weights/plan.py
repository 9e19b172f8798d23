"""The weighted layers of a MobileNetV3 in execution order, and their binding to a Keras model.

The only module that looks inside our models: it uses layer types and order, never layer names.
"""

import dataclasses
from typing import List, Optional, Tuple

import tf_keras

from mobilenet_v3.modeling.config import ModelConfig
from mobilenet_v3.weights.errors import WeightsError

ROOT = "MobilenetV3"
BN_ROLES = ("conv", "depthwise")       # followed by BatchNorm, no bias
BIAS_ROLES = ("se_squeeze", "se_excite", "head", "logits")   # bias, no BatchNorm
TOP_ROLES = ("head", "logits")


@dataclasses.dataclass(frozen=True)
class Slot:
    """One conv of the network: what it does, its TF-Slim scope and its Keras kernel shape."""

    role: str
    scope: str
    shape: Tuple[int, ...]

    @property
    def has_bn(self) -> bool:
        return self.role in BN_ROLES

    @property
    def kind(self) -> str:
        return "depthwise" if self.role == "depthwise" else "conv"


def block_scope(index: int) -> str:
    """Slim's scope of the bottleneck in table row `index` (1-based)."""
    return f"{ROOT}/expanded_conv" + (f"_{index - 1}" if index > 1 else "")


def plan(config: ModelConfig) -> List[Slot]:
    """The convs `build_model(config)` creates, in execution order (no model is built)."""
    arch = config.scaled_arch
    in_ch = config.input_shape[2]
    slots = [Slot("conv", f"{ROOT}/Conv", (3, 3, in_ch, arch.stem_channels))]
    for b in arch.blocks:
        scope = block_scope(b.index)
        if b.has_expansion:
            slots.append(Slot("conv", f"{scope}/expand", (1, 1, b.in_channels, b.exp)))
        slots.append(Slot("depthwise", f"{scope}/depthwise", (b.kernel, b.kernel, b.exp, 1)))
        if b.se_channels:
            slots.append(Slot("se_squeeze", f"{scope}/squeeze_excite/Conv",
                              (1, 1, b.exp, b.se_channels)))
            slots.append(Slot("se_excite", f"{scope}/squeeze_excite/Conv_1",
                              (1, 1, b.se_channels, b.exp)))
        slots.append(Slot("conv", f"{scope}/project", (1, 1, b.exp, b.out)))
    last_in = arch.blocks[-1].out
    slots.append(Slot("conv", f"{ROOT}/Conv_1", (1, 1, last_in, arch.last_conv_channels)))
    if config.include_top:
        slots.append(Slot("head", f"{ROOT}/Conv_2",
                          (1, 1, arch.last_conv_channels, arch.head_channels)))
        slots.append(Slot("logits", f"{ROOT}/Logits/Conv2d_1c_1x1",
                          (1, 1, arch.head_channels, config.classes)))
    return slots


@dataclasses.dataclass
class Bound:
    """A slot with the Keras layers that hold its weights."""

    slot: Slot
    conv: tf_keras.layers.Layer
    bn: Optional[tf_keras.layers.Layer]


def _is_conv(layer) -> bool:
    return isinstance(layer, (tf_keras.layers.Conv2D, tf_keras.layers.DepthwiseConv2D))


def bind(model: tf_keras.Model, config: ModelConfig) -> List[Bound]:
    """Pairs every slot of `plan(config)` with the model's conv (and the BN right after it).

    Raises WeightsError when the model is not the network `config` describes.
    """
    return bind_layers(model.layers, config, model.name)


def bind_layers(layers, config: ModelConfig, owner: str = "model") -> List[Bound]:
    """`bind` on a list of layers in execution order: a detector's or segmenter's backbone
    (the layers its head does not add), bound to the plan of its backbone config."""
    layers = list(layers)
    convs = [(i, layer) for i, layer in enumerate(layers) if _is_conv(layer)]
    slots = plan(config)
    if len(convs) != len(slots):
        raise WeightsError(f"{owner!r} has {len(convs)} conv layers but the "
                           f"MobileNetV3 described by {config} has {len(slots)}")
    bound = []
    for slot, (i, conv) in zip(slots, convs):
        kernel = conv.depthwise_kernel if slot.kind == "depthwise" else conv.kernel
        if tuple(kernel.shape) != slot.shape:
            raise WeightsError(f"model layer {conv.name!r} has kernel shape "
                               f"{tuple(kernel.shape)}, the config says {slot.shape}")
        bn = None
        if slot.has_bn:
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if not isinstance(nxt, tf_keras.layers.BatchNormalization):
                raise WeightsError(f"model layer {conv.name!r} is not followed by BatchNorm")
            bn = nxt
        bound.append(Bound(slot, conv, bn))
    return bound


def model_kernel_shapes(model: tf_keras.Model) -> List[Tuple[Tuple[int, ...], str]]:
    """(kernel shape, kind) of the model's convs in order, for detecting its config."""
    out = []
    for layer in model.layers:
        if isinstance(layer, tf_keras.layers.DepthwiseConv2D):
            out.append((tuple(layer.depthwise_kernel.shape), "depthwise"))
        elif isinstance(layer, tf_keras.layers.Conv2D):
            out.append((tuple(layer.kernel.shape), "conv"))
    return out
