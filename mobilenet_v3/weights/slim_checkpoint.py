"""Reads TF-Slim MobileNetV3 checkpoints by variable name, taking ExponentialMovingAverage shadows.

Names follow research/slim/nets/mobilenet (mobilenet_v3.py, conv_blocks.py): Conv, expanded_conv_N/...
"""

from typing import List, Optional

import numpy as np
import tensorflow as tf

from mobilenet_v3.weights.errors import CorruptWeightsError, NotMobileNetV3Error
from mobilenet_v3.weights.plan import ROOT, block_scope
from mobilenet_v3.weights.source import BatchNormStats, Entry, SourceWeights

SLIM_BN_EPSILON = 1e-3     # slim.batch_norm's default, used by mobilenet's training_scope
EMA_SUFFIX = "/ExponentialMovingAverage"
BN_NAMES = ("gamma", "beta", "moving_mean", "moving_variance")


class _Variables:
    """Name -> value, preferring the EMA shadow of a variable when the checkpoint has one."""

    def __init__(self, prefix: str, origin: str):
        try:
            self.reader = tf.train.load_checkpoint(prefix)
        except (tf.errors.OpError, ValueError) as e:
            raise CorruptWeightsError(f"{origin!r} is not a readable TF checkpoint: "
                                      f"{str(e).splitlines()[0]}") from None
        self.names = set(self.reader.get_variable_to_shape_map())
        self.origin = origin

    def has(self, name: str) -> bool:
        return name in self.names

    def get(self, name: str) -> np.ndarray:
        key = name + EMA_SUFFIX if name + EMA_SUFFIX in self.names else name
        try:
            return np.asarray(self.reader.get_tensor(key), np.float32)
        except tf.errors.OpError as e:
            raise CorruptWeightsError(f"{self.origin!r}: cannot read {key!r} "
                                      f"(truncated file?): {str(e).splitlines()[0]}") from None


def _conv_bn(v: _Variables, scope: str, depthwise: bool = False) -> Entry:
    weights = f"{scope}/depthwise_weights" if depthwise else f"{scope}/weights"
    stats = [v.get(f"{scope}/BatchNorm/{n}") for n in BN_NAMES]
    return Entry(kind="depthwise" if depthwise else "conv", kernel=v.get(weights), bias=None,
                 bn=BatchNormStats(*stats, epsilon=SLIM_BN_EPSILON), name=weights)


def _conv_bias(v: _Variables, scope: str) -> Entry:
    return Entry(kind="conv", kernel=v.get(f"{scope}/weights"), bias=v.get(f"{scope}/biases"),
                 bn=None, name=f"{scope}/weights")


def _block(v: _Variables, scope: str) -> List[Entry]:
    entries = []
    if v.has(f"{scope}/expand/weights"):
        entries.append(_conv_bn(v, f"{scope}/expand"))
    entries.append(_conv_bn(v, f"{scope}/depthwise", depthwise=True))
    if v.has(f"{scope}/squeeze_excite/Conv/weights"):
        entries.append(_conv_bias(v, f"{scope}/squeeze_excite/Conv"))
        entries.append(_conv_bias(v, f"{scope}/squeeze_excite/Conv_1"))
    entries.append(_conv_bn(v, f"{scope}/project"))
    return entries


def read_prefix(prefix: str, origin: Optional[str] = None) -> SourceWeights:
    """Every MobileNetV3 conv of the checkpoint at `prefix`, in execution order."""
    v = _Variables(prefix, origin or prefix)
    if not v.has(f"{ROOT}/Conv/weights"):
        raise NotMobileNetV3Error(f"{origin or prefix!r} is a TF checkpoint without TF-Slim "
                                  f"MobileNetV3 variables (no {ROOT}/Conv/weights)")
    entries = [_conv_bn(v, f"{ROOT}/Conv")]
    index = 1
    while v.has(f"{block_scope(index)}/depthwise/depthwise_weights"):
        entries += _block(v, block_scope(index))
        index += 1
    entries.append(_conv_bn(v, f"{ROOT}/Conv_1"))
    for scope in (f"{ROOT}/Conv_2", f"{ROOT}/Logits/Conv2d_1c_1x1"):
        if v.has(f"{scope}/weights"):
            entries.append(_conv_bias(v, scope))
    return SourceWeights(entries=entries, origin=origin or prefix, fmt="slim", bn_folded=False)


def is_slim_checkpoint(prefix: str) -> bool:
    """True for a TF checkpoint prefix holding TF-Slim MobileNetV3 variables."""
    try:
        names = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError):
        return False
    return any(n.startswith(ROOT + "/") for n in names)


