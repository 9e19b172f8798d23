"""Writes a file's weights into a built model after checking every shape against the model.

Handles folded BN (identity BN carrying the bias), the SE gate's +3, 1001 -> 1000 classes and no-top.
"""

import dataclasses
from typing import Dict, List

import numpy as np
import tf_keras

from mobilenet_v3.modeling.config import ModelConfig
from mobilenet_v3.weights import detect as detect_lib
from mobilenet_v3.weights import plan as plan_lib
from mobilenet_v3.weights.errors import (ArchitectureMismatchError, NotMobileNetV3Error,
                                         WeightsError)
from mobilenet_v3.weights.source import Entry, SourceWeights

GATE_OFFSET = 3.0   # h-sigmoid(x) = ReLU6(x + 3) / 6


def _drop_background(entry: Entry) -> Entry:
    bias = None if entry.bias is None else entry.bias[1:]
    return dataclasses.replace(entry, kernel=entry.kernel[..., 1:], bias=bias)


def select_entries(source: SourceWeights, slots: List[plan_lib.Slot]) -> List[Entry]:
    """The file's entries for `slots`: the backbone only for a no-top model, 1001 -> 1000."""
    entries = list(source.entries)
    if slots[-1].role != "logits" and len(entries) == len(slots) + 2 \
            and entries[-1].kind == "conv":
        entries = entries[:len(slots)]
    if slots[-1].role == "logits" and len(entries) == len(slots):
        found, wanted = entries[-1].shape, slots[-1].shape
        if found[:3] == wanted[:3] and found[3] == 1001 and wanted[3] == 1000:
            entries[-1] = _drop_background(entries[-1])
    return entries


def _mismatch(source, slots, bound, config, entries) -> WeightsError:
    shapes = [(e.shape, e.kind) for e in entries]
    index, slot, found = detect_lib.first_difference(shapes, slots)
    layer = bound[index].conv.name if index < len(bound) else "(none: the file has more)"
    expected = slot.shape if slot else "nothing"
    detail = (f"first layer that disagrees: {layer!r} ({slot.scope if slot else 'extra'}), "
              f"expected kernel {expected}, found {found if found else 'nothing'}")
    variant = detect_lib.detect(source.shapes())
    if variant is None:
        return NotMobileNetV3Error(
            f"{source.origin!r} does not hold MobileNetV3 weights ({len(source.entries)} "
            f"conv/fully-connected layers match no MobileNetV3 variant); {detail}")
    hint = ""
    if variant.include_top and config.include_top and variant.classes != config.classes:
        hint = f"; build the model with classes={variant.classes}"
    elif not variant.include_top and config.include_top:
        hint = "; the file has no classifier: build the model with include_top=False"
    return ArchitectureMismatchError(
        f"{source.origin!r} holds {detect_lib.describe(variant)}, but the model is "
        f"{detect_lib.describe(config)}; {detail}{hint}")


def _batch_norm_values(entry: Entry, source: SourceWeights, bn) -> List[np.ndarray]:
    eps = float(bn.epsilon)
    if entry.bn is not None:
        s = entry.bn
        beta = s.beta if entry.bias is None else s.beta + entry.bias * s.gamma / np.sqrt(
            s.variance + s.epsilon)
        variance = s.variance
        if not np.isclose(s.epsilon, eps, rtol=1e-6, atol=0.0):
            # The same normalisation under our epsilon: var + eps_ours == var_file + eps_file.
            variance = np.maximum(s.variance + s.epsilon - eps, 0.0)
        return [s.gamma, beta, s.mean, variance]
    if source.bn_folded and entry.bias is not None:
        ones = np.ones_like(entry.bias)
        return [ones, entry.bias, np.zeros_like(entry.bias), ones * (1.0 - eps)]
    raise WeightsError(f"{source.origin!r}: {entry.name!r} has neither BatchNorm statistics "
                       "nor a bias for the BatchNorm that follows it in the model")


def _bias(entry: Entry, source: SourceWeights, slot: plan_lib.Slot) -> np.ndarray:
    bias = entry.bias if entry.bias is not None else np.zeros(entry.shape[-1], np.float32)
    if slot.role == "se_excite":
        if entry.added_constant is not None:
            bias = bias + (entry.added_constant - GATE_OFFSET)
        elif source.gate_folded:
            bias = bias - GATE_OFFSET
    return bias


def assign(model: tf_keras.Model, config: ModelConfig, source: SourceWeights) -> Dict:
    """Checks `source` against the model's plan and writes it; returns a short summary."""
    bound = plan_lib.bind(model, config)
    slots = [b.slot for b in bound]
    entries = select_entries(source, slots)
    shapes = [(e.shape, e.kind) for e in entries]
    if not detect_lib.fits(shapes, slots):
        raise _mismatch(source, slots, bound, config, entries)
    write(bound, entries, source)
    return {"source": source.origin, "format": source.fmt, "layers": len(bound),
            "background_dropped": bool(config.include_top and config.classes == 1000
                                       and source.entries[-1].shape[-1] == 1001),
            "bn_folded": source.bn_folded}


def write(bound: List[plan_lib.Bound], entries: List[Entry], source: SourceWeights) -> None:
    """Writes `entries` into the layers of `bound`, pairwise (shapes already checked)."""
    for b, entry in zip(bound, entries):
        kernel = entry.kernel.astype(np.float32)
        if b.slot.has_bn:
            (b.conv.depthwise_kernel if b.slot.kind == "depthwise" else b.conv.kernel) \
                .assign(kernel)
            b.bn.set_weights([np.asarray(v, np.float32)
                              for v in _batch_norm_values(entry, source, b.bn)])
        else:
            b.conv.set_weights([kernel, _bias(entry, source, b.slot).astype(np.float32)])
