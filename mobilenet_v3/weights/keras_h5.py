"""Reads keras.applications' MobileNetV3 .h5 files (with and without top) layer by layer, in order.

The h5 `layer_names` order is the model's layer order; Conv2D / DepthwiseConv2D / BN are told apart by
their weight names (kernel, depthwise_kernel, gamma...), so keras' layer names are never needed.
"""

import os
from typing import Dict, List

import h5py
import numpy as np

from mobilenet_v3.weights.errors import CorruptWeightsError, NotMobileNetV3Error
from mobilenet_v3.weights.source import BatchNormStats, Entry, SourceWeights

KERAS_BN_EPSILON = 1e-3    # keras.applications' MobileNetV3 BatchNormalization(epsilon=1e-3)
H5_SUFFIXES = (".h5", ".hdf5")


def _decode(values) -> List[str]:
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def _layer_values(group) -> Dict[str, np.ndarray]:
    """{'kernel': ..., 'bias': ..., 'gamma': ...} of one layer group."""
    out = {}
    for weight_name in _decode(group.attrs.get("weight_names", [])):
        key = weight_name.split("/")[-1].split(":")[0]
        out[key] = np.asarray(group[weight_name], np.float32)
    return out


def _entries(root, origin: str) -> List[Entry]:
    entries: List[Entry] = []
    for layer in _decode(root.attrs["layer_names"]):
        values = _layer_values(root[layer])
        if "depthwise_kernel" in values:
            entries.append(Entry("depthwise", values["depthwise_kernel"], values.get("bias"),
                                 None, layer))
        elif "kernel" in values:
            if values["kernel"].ndim != 4:
                raise NotMobileNetV3Error(f"{origin!r}: layer {layer!r} is not a 2-D "
                                          "convolution; this is not a MobileNetV3 file")
            entries.append(Entry("conv", values["kernel"], values.get("bias"), None, layer))
        elif "moving_mean" in values:
            if not entries or entries[-1].bn is not None:
                raise NotMobileNetV3Error(f"{origin!r}: BatchNorm {layer!r} follows no conv")
            entries[-1].bn = BatchNormStats(
                values.get("gamma", np.ones_like(values["moving_mean"])),
                values.get("beta", np.zeros_like(values["moving_mean"])),
                values["moving_mean"], values["moving_variance"], KERAS_BN_EPSILON)
    return entries


def read(path: str) -> SourceWeights:
    """Every conv of a keras.applications MobileNetV3 weights file, in execution order."""
    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            if "layer_names" not in root.attrs:
                raise NotMobileNetV3Error(f"{path!r} is an HDF5 file without Keras layer "
                                          "weights")
            entries = _entries(root, path)
    except (OSError, KeyError) as e:
        raise CorruptWeightsError(f"{path!r} is not a readable Keras .h5 file (truncated "
                                  f"download?): {e}") from None
    return SourceWeights(entries=entries, origin=path, fmt="keras", bn_folded=False)


def is_keras_applications_file(path: str) -> bool:
    """True for an .h5 with keras.applications' MobileNetV3 layout (layer 'expanded_conv/...')."""
    if not (os.path.isfile(path) and path.lower().endswith(H5_SUFFIXES)):
        return False
    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            names = _decode(root.attrs.get("layer_names", []))
    except OSError:
        return os.path.basename(path).startswith("weights_mobilenet_v3_")
    return any(n.startswith("expanded_conv") for n in names) and "Conv" in names
