"""The 'folded' h-swish: 6 * h-swish(x) = x * ReLU6(x + 3) in the graph, 1/6 in the weights.

Every h-swish output in MobileNetV3 reaches only linear layers before anything non-linear:
  * the next 1x1 / depthwise conv (BN comes after the conv, so scaling its kernel is exact);
  * in SE blocks, the global pool -> squeeze conv (pooling is linear) and the SE multiply ->
    projection conv (the gate multiplies the value, so the factor passes through);
  * the head's pool -> 1x1 conv, and its h-swish -> dropout -> logits conv.
`fold_weights` divides the kernel of each such conv by 6. Where a folded h-swish feeds a
residual add (Large's stem is the shortcut of bneck1), the factor is carried through the add:
the other branch's last BN is multiplied by 6 (gamma and beta), and the convs that consume the
sum take the 1/6. (A Scale(1/6) on the shortcut would be exact too, but the converter fuses it
with x * ReLU6(x + 3) back into an int8 HARD_SWISH op, which XNNPACK does not run.)
Anything else downstream of a folded h-swish (e.g. a model output, include_top=False) cannot
carry the factor and is refused.
"""

from typing import List, Set

import tf_keras
from tf_keras import layers

from mobilenet_v3.modeling import variants
from mobilenet_v3.modeling.config import ModelConfig
from mobilenet_v3.modeling.layers import is_folded_hard_swish

FACTOR = 6.0
_ABSORB = (layers.Conv2D, layers.DepthwiseConv2D)        # kernel / 6 (Conv2D includes 1x1)
_PASS = (layers.GlobalAveragePooling2D, layers.Dropout, layers.Reshape, layers.Flatten)


class FoldingError(ValueError):
    """A folded h-swish whose factor 6 no linear layer can absorb."""


def _consumers(layer):
    """[(consumer layer, position of `layer`'s output among the consumer's inputs)]."""
    found = []
    for node in layer._outbound_nodes:
        for position, tensor in enumerate(node.keras_inputs):
            if tensor._keras_history.layer is layer:
                found.append((node.layer, position))
    return found


def _producer(tensor):
    return tensor._keras_history.layer


def _absorbers(layer, outputs: Set[int], path: str, scale_up: List) -> List[layers.Layer]:
    """The convs that take `layer`'s (6x) output through linear layers only; BNs whose output
    must be multiplied by 6 to meet it at a residual add are appended to `scale_up`."""
    if id(layer) in outputs:
        raise FoldingError(f"{path} is a model output: a folded h-swish there would be 6x "
                           "the value (use hard_swish_form='unfused')")
    found = []
    for consumer, position in _consumers(layer):
        where = f"{path} -> {consumer.name}"
        if isinstance(consumer, _ABSORB):
            found.append(consumer)
        elif isinstance(consumer, _PASS) or (
                isinstance(consumer, layers.Multiply) and position == 0
                and not is_folded_hard_swish(consumer)):
            found.extend(_absorbers(consumer, outputs, where, scale_up))   # SE: value * gate
        elif isinstance(consumer, layers.Add):
            node = consumer._inbound_nodes[0]
            others = [_producer(t) for i, t in enumerate(node.keras_inputs) if i != position]
            if not all(isinstance(o, layers.BatchNormalization) and o.scale and o.center
                       for o in others):
                raise FoldingError(f"cannot carry the h-swish factor through {where}: its "
                                   "other inputs do not come from a BN")
            scale_up.extend(others)
            found.extend(_absorbers(consumer, outputs, where, scale_up))
        else:
            raise FoldingError(f"cannot fold the h-swish 1/6 along {where} "
                               f"({type(consumer).__name__} is not linear in it)")
    return found


def folded_sites(model: tf_keras.Model) -> List[str]:
    return [layer.name for layer in model.layers if is_folded_hard_swish(layer)]


def fold_weights(model: tf_keras.Model) -> int:
    """Divides by 6 the kernels of every conv fed by a folded h-swish; returns how many."""
    outputs = {id(_producer(t)) for t in model.outputs}
    targets, scale_up = {}, []
    for layer in model.layers:
        if is_folded_hard_swish(layer):
            for conv in _absorbers(layer, outputs, layer.name, scale_up):
                targets[id(conv)] = conv
    for conv in targets.values():
        weights = conv.get_weights()
        conv.set_weights([weights[0] / FACTOR] + weights[1:])
    for bn in {id(b): b for b in scale_up}.values():
        gamma, beta, *statistics = bn.get_weights()
        bn.set_weights([gamma * FACTOR, beta * FACTOR] + statistics)
    return len(targets)


def rebuild(model: tf_keras.Model, config: ModelConfig) -> tf_keras.Model:
    """`variants.rebuild`, plus the kernel folding when `config` is the folded form.

    `model` must carry ordinary (unfolded) weights: any trained model or another form.
    """
    variant = variants.rebuild(model, config)
    if config.graph.hard_swish_form == "folded":
        fold_weights(variant)
    return variant
