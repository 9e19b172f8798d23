"""Feature endpoints C1..C5 for detection and segmentation heads.

C_k is the last layer of the backbone at output stride 2**k. At a stride-2 bottleneck that
is the expansion output before its strided depthwise conv, which is the paper's rule for
SSDLite: C4 = the expansion layer of the 13th (Large) / 9th (Small) bottleneck (stride 16),
C5 = the layer just before pooling (stride 32).
"""

from typing import Dict, Sequence

import tf_keras

ENDPOINTS = ("C1", "C2", "C3", "C4", "C5")


def endpoint_layer_names(model: tf_keras.Model) -> Dict[str, str]:
    """Maps C1..C5 to layer names of a model built by `mobilenet_v3.build_model`."""
    names = {layer.name for layer in model.layers}
    if "stem_act" not in names or "lastconv_act" not in names:
        raise ValueError(f"{model.name!r} is not a MobileNetV3 built by this package "
                         "(layers 'stem_act' / 'lastconv_act' not found)")
    by_stride, stride, current, i = {}, 2, "stem_act", 1
    while f"bneck{i}_depthwise" in names:
        if model.get_layer(f"bneck{i}_depthwise").strides[0] == 2:
            if f"bneck{i}_expand_act" in names:
                current = f"bneck{i}_expand_act"
            by_stride[stride] = current
            stride *= 2
        current = f"bneck{i}_add" if f"bneck{i}_add" in names else f"bneck{i}_project_bn"
        i += 1
    by_stride[stride] = "lastconv_act"
    return {f"C{k}": by_stride[2 ** k] for k in range(1, 6)}


def feature_extractor(model: tf_keras.Model,
                      endpoints: Sequence[str] = ENDPOINTS) -> tf_keras.Model:
    """A model sharing `model`'s layers whose outputs are a dict {endpoint: feature map}."""
    unknown = set(endpoints) - set(ENDPOINTS)
    if unknown:
        raise ValueError(f"endpoints must be among {ENDPOINTS}, got {sorted(unknown)}")
    names = endpoint_layer_names(model)
    outputs = {e: model.get_layer(names[e]).output for e in endpoints}
    return tf_keras.Model(model.inputs, outputs, name=f"{model.name}_features")
