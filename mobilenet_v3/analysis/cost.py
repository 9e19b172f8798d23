"""Counts multiply-adds and parameters per layer of a tf_keras model.

MAdds are counted for convolutions (regular, depthwise, the SE 1x1 convs, the classifier)
and dense layers, the way the paper and TF-Slim count them; activations, batch norm, pooling,
element-wise adds and multiplies are not counted. Needs static spatial input dimensions.
"""

import dataclasses
from typing import List

import numpy as np
import tf_keras
from tf_keras import layers


@dataclasses.dataclass(frozen=True)
class LayerCost:
    name: str
    kind: str                 # the layer's class name
    input_shape: tuple        # without the batch dimension
    output_shape: tuple
    madds: int
    params: int
    trainable_params: int
    weight_params: int        # params outside batch norm (what the paper's tables count)


def _shape(tensor_shape) -> tuple:
    if isinstance(tensor_shape, list):  # layers with several inputs: report the first
        tensor_shape = tensor_shape[0]
    return tuple(tensor_shape)[1:]


def _layer_madds(layer, input_shape: tuple, output_shape: tuple) -> int:
    # DepthwiseConv2D subclasses Conv2D in tf_keras: test it first.
    if isinstance(layer, layers.DepthwiseConv2D):
        kh, kw = layer.kernel_size
        return int(np.prod(output_shape)) * kh * kw
    if isinstance(layer, layers.Conv2D):
        kh, kw = layer.kernel_size
        in_channels = input_shape[-1] // layer.groups
        return int(np.prod(output_shape)) * kh * kw * in_channels
    if isinstance(layer, layers.Dense):
        return int(np.prod(output_shape)) * input_shape[-1]
    return 0


def profile(model: tf_keras.Model) -> List[LayerCost]:
    """Returns one LayerCost per layer, in model order (input layers left out)."""
    costs = []
    for layer in model.layers:
        if isinstance(layer, tf_keras.layers.InputLayer):
            continue
        input_shape, output_shape = _shape(layer.input_shape), _shape(layer.output_shape)
        if any(d is None for d in output_shape):
            raise ValueError(
                f"layer {layer.name!r} has a dynamic output shape {output_shape}; profile a "
                "model built with a fixed input resolution")
        trainable = int(sum(np.prod(w.shape) for w in layer.trainable_weights))
        params = int(layer.count_params())
        is_bn = isinstance(layer, layers.BatchNormalization)
        costs.append(LayerCost(
            name=layer.name, kind=type(layer).__name__, input_shape=input_shape,
            output_shape=output_shape, madds=_layer_madds(layer, input_shape, output_shape),
            params=params, trainable_params=trainable, weight_params=0 if is_bn else params))
    return costs


@dataclasses.dataclass(frozen=True)
class Totals:
    madds: int
    params: int             # every weight, BN moving statistics included (Keras' count)
    trainable_params: int
    weight_params: int      # conv/dense weights and biases: the paper's "params"


def totals(costs: List[LayerCost]) -> Totals:
    return Totals(*(sum(getattr(c, field) for c in costs)
                    for field in ("madds", "params", "trainable_params", "weight_params")))
