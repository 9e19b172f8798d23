"""A proposal's weights from its parent: in every narrowed space keep the channels whose
filters have the largest L2 norm (NetAdapt's choice), sliced the same way through every layer
of the space (expand -> depthwise -> SE -> project, all projects of a residual group and the
next layer's input).

The norm of a space's channel is that of the filters that produce it: the expand kernel for
an expansion, the sum over the group's project kernels (and the stem conv) for a width, the
last conv's kernel; an SE squeeze follows its expansion and keeps its own largest filters.
"""

from typing import Dict, List, Tuple

import numpy as np
import tf_keras

from mobilenet_v3.modeling import naming
from mobilenet_v3.search import arch as arch_lib
from mobilenet_v3.specs import ArchSpec

FIXED_IN, FIXED_OUT = "rgb", "classes"


def layer_spaces(spec: ArchSpec) -> Dict[str, Tuple[str, str]]:
    """layer name -> (input space, output space) for every layer with weights.

    BatchNorm and depthwise layers have one space: both entries name it.
    """
    sp, head = arch_lib.spaces(spec), "head"
    table = {naming.STEM: (FIXED_IN, sp.stem), f"{naming.STEM}_bn": (sp.stem, sp.stem)}
    for i, (exp, se, inp, out) in enumerate(zip(sp.expansion, sp.se, sp.inputs, sp.outputs), 1):
        b = naming.bneck(i)
        if exp != inp:
            table[f"{b}_expand"] = (inp, exp)
            table[f"{b}_expand_bn"] = (exp, exp)
        table[f"{b}_depthwise"] = table[f"{b}_depthwise_bn"] = (exp, exp)
        if se:
            table[f"{b}_se_squeeze"] = (exp, se)
            table[f"{b}_se_excite"] = (se, exp)
        table[f"{b}_project"] = (exp, out)
        table[f"{b}_project_bn"] = (out, out)
    table[naming.LAST_CONV] = (sp.outputs[-1], sp.last)
    table[f"{naming.LAST_CONV}_bn"] = (sp.last, sp.last)
    table[naming.HEAD] = (sp.last, head)
    table[naming.LOGITS] = (head, FIXED_OUT)
    return table


def _kernel(layer) -> np.ndarray:
    weight = getattr(layer, "depthwise_kernel", None)
    return (weight if weight is not None else layer.kernel).numpy()


def _filter_norms(kernel: np.ndarray) -> np.ndarray:
    """L2 norm of each output filter of a (kh, kw, in, out) kernel."""
    return np.sqrt(np.sum(kernel.reshape(-1, kernel.shape[-1]) ** 2, axis=0))


def kept_channels(parent: tf_keras.Model, parent_spec: ArchSpec,
                  child_spec: ArchSpec) -> Dict[str, np.ndarray]:
    """space -> the parent's channel indices the child keeps (sorted), for narrowed spaces."""
    old, new = arch_lib.widths(parent_spec), arch_lib.widths(child_spec)
    table = layer_spaces(parent_spec)
    kept = {}
    # SE squeezes last: their filters are read after their expansion's slice
    order = sorted((s for s in old if new.get(s) != old[s]), key=lambda s: s.endswith(".se"))
    for space in order:
        if new[space] > old[space]:
            raise ValueError(f"{space}: the child is wider ({new[space]}) than the parent "
                             f"({old[space]}); inheritance only narrows")
        norms = np.zeros(old[space])
        for name, (inp, out) in table.items():
            if out != space or inp == out:      # producers only (not BN / depthwise)
                continue
            kernel = _kernel(parent.get_layer(name))
            if inp in kept:
                kernel = kernel[:, :, kept[inp], :]
            norms += _filter_norms(kernel)
        kept[space] = np.sort(np.argsort(-norms, kind="stable")[:new[space]])
    return kept


def _slice(value: np.ndarray, axes: List[Tuple[int, np.ndarray]]) -> np.ndarray:
    for axis, index in axes:
        if index is not None:
            value = np.take(value, index, axis=axis)
    return value


def transfer(parent: tf_keras.Model, parent_spec: ArchSpec, child: tf_keras.Model,
             child_spec: ArchSpec) -> Dict[str, np.ndarray]:
    """Writes the parent's weights, narrowed, into `child` (built from `child_spec`); every
    weighted layer of the child must come from the parent. Returns the kept channels."""
    kept = kept_channels(parent, parent_spec, child_spec)
    table = layer_spaces(child_spec)
    for layer in child.layers:
        if not layer.weights:
            continue
        if layer.name not in table:
            raise ValueError(f"inheritance does not know layer {layer.name!r}")
        inp, out = table[layer.name]
        source = parent.get_layer(layer.name)
        values = []
        for weight in source.get_weights():
            if isinstance(layer, tf_keras.layers.BatchNormalization) or weight.ndim == 1:
                values.append(_slice(weight, [(0, kept.get(out))]))
            elif isinstance(layer, tf_keras.layers.DepthwiseConv2D):
                values.append(_slice(weight, [(2, kept.get(out))]))
            else:
                values.append(_slice(weight, [(2, kept.get(inp)), (3, kept.get(out))]))
        layer.set_weights(values)
    return kept
