"""The MobileNetV3 backbone: stem, bottleneck rows and the last 1x1 conv, as Keras layers.

Endpoints C1..C5 are recorded while building (timm's feature_info, Model Garden's is_output),
so heads get their taps without walking layer names.
"""

import dataclasses
from typing import Dict

import tf_keras
from tf_keras import layers

from mobilenet_v3.modeling import naming
from mobilenet_v3.modeling.config import ModelConfig
from mobilenet_v3.modeling.layers import conv_bn_act, inverted_residual

ENDPOINTS = ("C1", "C2", "C3", "C4", "C5")


@dataclasses.dataclass
class Backbone:
    """The backbone's output tensor and its endpoints {C_k: tensor at output stride 2**k}."""

    output: object
    endpoints: Dict[str, object]


def batch_norm_factory(config: ModelConfig):
    reg = config.regularization

    def batch_norm(name):
        return layers.BatchNormalization(momentum=reg.bn_momentum, epsilon=reg.bn_epsilon,
                                         name=name)
    return batch_norm


def kernel_regularizer(config: ModelConfig):
    decay = config.regularization.weight_decay
    return tf_keras.regularizers.L2(decay / 2) if decay else None


def build_backbone(x, config: ModelConfig) -> Backbone:
    """Stem -> bottlenecks -> last conv on `x` ([-1, 1] images).

    C_k is the last tensor at output stride 2**k; at a stride-2 bottleneck that is its
    expansion output (the paper's SSDLite taps: C4 = the 13th / 9th bottleneck's expansion).
    """
    arch = config.scaled_arch
    batch_norm, regularizer = batch_norm_factory(config), kernel_regularizer(config)
    form = config.graph.hard_swish_form
    x = conv_bn_act(x, arch.stem_channels, 3, 2, arch.spec.stem_nl, naming.STEM, batch_norm,
                    regularizer, form)
    by_stride, stride = {}, 2
    for block in arch.blocks:
        previous = x
        x, expanded = inverted_residual(x, block, naming.bneck(block.index), batch_norm,
                                        regularizer, form)
        if block.stride == 2:
            by_stride[stride] = expanded if expanded is not None else previous
            stride *= 2
    x = conv_bn_act(x, arch.last_conv_channels, 1, 1, arch.spec.last_conv_nl,
                    naming.LAST_CONV, batch_norm, regularizer, form)
    by_stride[stride] = x
    # an atrous backbone (output_stride < 32) has no endpoints beyond its output stride
    return Backbone(x, {f"C{k}": by_stride[2 ** k] for k in range(1, 6) if 2 ** k in by_stride})
