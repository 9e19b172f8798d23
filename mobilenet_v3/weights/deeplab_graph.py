"""DeepLab's MobileNetV3-Small LR-ASPP (research/deeplab `mobilenet_v3_small_seg`) into our segmenter.

Source: a DeepLab `frozen_inference_graph.pb` (export_model.py). Its variables are frozen into
Const nodes that keep the variable names (each read through a `<name>/read` Identity), so the
names are the ones of DeepLab's `model.ckpt`: the TF-Slim backbone `MobilenetV3/...` and the
head `aspp0`, `image_pooling`, `decoder/decoder_conv0`, `decoder/feature_projection0`.
`keras_weight` maps one such name to our layer and weight; an importer of the checkpoint can
use it unchanged (after dropping optimizer slots / taking EMA shadows).

BatchNorm is NOT folded in these graphs: every bias-free conv is followed by a
FusedBatchNormV3 (inference mode) whose gamma, beta, moving mean and variance are constants,
with epsilon 1e-3 in the backbone (slim's mobilenet scope, our default) and 1.001e-5 in
`aspp0` (DeepLab's 1e-5, raised to cuDNN's minimum by the fused op). The statistics load
as they are; an epsilon that differs from our BN layer's is moved into the variance
(var + eps_file - eps_ours, as `weights.assign` does for slim files), or into gamma when
that would make the variance negative, so the normalisation is the same.

What the graph does around the network (its ImageTensor input, uint8 [1, h, w, 3], h <= 513,
w <= 1025): it pads the image at the bottom and right to 513x1025 with the mean pixel 127.5,
maps it to [-1, 1] as x / 127.5 - 1 (pads become 0), runs the network at 513x1025 always (the
resize sizes are constants), takes the argmax of the 513x1025 logits and crops it to h x w.
`pad_like_deeplab` builds the same canvas for our model.

Head of the original and ours (`deeplab_small_config`): the same function. Same weights,
same pool window (13x25, stride (4, 5) at 513x1025), same tap (bneck3's depthwise output),
same sum merge, output stride 32, RF2, the hard-sigmoid gate relu6(x + 3) * 0.16667
(DeepLab's qsigmoid) and align_corners=True in its three bilinear resizes.
"""

import re
from typing import Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from mobilenet_v3.modeling import naming
from mobilenet_v3.modeling.config import ModelConfig
from mobilenet_v3.modeling.heads.lraspp import PREFIX, SegHeadConfig, SegmenterConfig
from mobilenet_v3.weights import head_tensors
from mobilenet_v3.weights.plan import ROOT
from mobilenet_v3.weights.slim_checkpoint import SLIM_BN_EPSILON

# What the exported graph runs at, and its constants.
GRAPH_SIZE = (513, 1025)
PAD_VALUE = 127.5
CLASSES = 5
INPUT_TENSOR = "ImageTensor:0"
OUTPUT_TENSOR = "SemanticPredictions:0"
NETWORK_INPUT_TENSOR = "MobilenetV3/MobilenetV3/input:0"   # the [-1, 1] padded image
# The pool of the gate at 513x1025: a 13x25 window = DeepLab's image_pooling_crop_size
# 385x769 at output stride 32 (scale_dimension: (crop - 1) / 32 + 1), moving (4, 5) cells.
POOL_CROP = (385, 769)
POOL_STRIDE = (4, 5)
OUTPUT_STRIDE = 32
# BN epsilons the graph runs (FusedBatchNormV3 attributes); DeepLab's head asks for 1e-5.
HEAD_BN_EPSILON = 1.001e-5
HEAD_SCOPES = {                       # DeepLab scope -> our layer (lraspp.build_segmenter)
    "aspp0": PREFIX + "aspp0",                              # 1x1 conv + BN + ReLU, 128
    "image_pooling": PREFIX + "pool_conv",                  # the gate's 1x1 conv (bias)
    "decoder/decoder_conv0": PREFIX + "logits_high",        # classes from the ASPP branch
    "decoder/feature_projection0": PREFIX + "logits_low",   # classes from the 8x tap
}
BLOCK_PARTS = {                       # slim part of an expanded_conv -> our layer suffix
    "expand": "expand",
    "depthwise": "depthwise",
    "squeeze_excite/Conv": "se_squeeze",
    "squeeze_excite/Conv_1": "se_excite",
    "project": "project",
}
VARIABLES = {                         # slim variable -> (our layer suffix, Keras weight)
    "weights": ("", "kernel"),
    "depthwise_weights": ("", "depthwise_kernel"),
    "biases": ("", "bias"),
    "BatchNorm/gamma": ("_bn", "gamma"),
    "BatchNorm/beta": ("_bn", "beta"),
    "BatchNorm/moving_mean": ("_bn", "moving_mean"),
    "BatchNorm/moving_variance": ("_bn", "moving_variance"),
}
BN_ORDER = ("gamma", "beta", "moving_mean", "moving_variance")
_BLOCK = re.compile(re.escape(ROOT) + r"/expanded_conv(?:_(\d+))?/(.+)$")


# --------------------------------------------------------------------------- name mapping

def keras_layer(scope: str) -> Optional[str]:
    """Our layer for a TF-Slim / DeepLab layer scope, None when the segmenter has none.

    'MobilenetV3/Conv' -> 'stem', 'MobilenetV3/Conv_1' -> 'lastconv',
    'MobilenetV3/expanded_conv' -> row 1, 'MobilenetV3/expanded_conv_K/<part>' -> 'bneck{K+1}_<part>'
    (expand, depthwise, project, squeeze_excite/Conv -> se_squeeze, Conv_1 -> se_excite),
    the head as in HEAD_SCOPES.
    """
    if scope == f"{ROOT}/Conv":
        return naming.STEM
    if scope == f"{ROOT}/Conv_1":
        return naming.LAST_CONV
    match = _BLOCK.match(scope)
    if match:
        index = int(match.group(1)) + 1 if match.group(1) is not None else 1
        part = BLOCK_PARTS.get(match.group(2))
        return f"{naming.bneck(index)}_{part}" if part else None
    return HEAD_SCOPES.get(scope)


def split_variable(tf_name: str) -> Optional[Tuple[str, str]]:
    """'a/b/BatchNorm/gamma' -> ('a/b', 'BatchNorm/gamma'); None for a name that is no weight."""
    for variable in sorted(VARIABLES, key=len, reverse=True):
        if tf_name.endswith("/" + variable):
            return tf_name[:-len(variable) - 1], variable
    return None


def keras_weight(tf_name: str) -> Optional[Tuple[str, str]]:
    """(our layer name, Keras weight attribute) of one DeepLab variable, or None.

    'MobilenetV3/expanded_conv_3/depthwise/BatchNorm/gamma' -> ('bneck4_depthwise_bn', 'gamma'),
    'aspp0/weights' -> ('seg_aspp0', 'kernel'), 'image_pooling/biases' -> ('seg_pool_conv', 'bias').
    Kernels need no transposition: slim's Conv2D (kh, kw, in, out) and depthwise
    (kh, kw, in, 1) layouts are Keras's.
    """
    split = split_variable(tf_name)
    if split is None:
        return None
    scope, variable = split
    layer = keras_layer(scope)
    if layer is None:
        return None
    suffix, weight = VARIABLES[variable]
    return layer + suffix, weight


def file_epsilon(bn_layer: str) -> float:
    """The epsilon the DeepLab graph uses for the BN feeding our layer `bn_layer`."""
    return HEAD_BN_EPSILON if bn_layer.startswith(PREFIX) else SLIM_BN_EPSILON


# --------------------------------------------------------------------------- reading

def read_graph_def(path: str) -> tf.compat.v1.GraphDef:
    graph_def = tf.compat.v1.GraphDef()
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    try:
        graph_def.ParseFromString(data)
    except Exception as e:  # google.protobuf.message.DecodeError
        raise ValueError(f"{path!r} is not a TF GraphDef: {e}") from None
    return graph_def


def read_frozen_graph(path: str) -> Dict[str, np.ndarray]:
    """{variable name: value} of a frozen graph, in graph order.

    The variables are the Const nodes read through a `<name>/read` Identity (what
    freeze_graph leaves of a tf.Variable); other constants (pad sizes, +3, 1/6, ...) are not.
    """
    graph_def = read_graph_def(path)
    read = {n.input[0] for n in graph_def.node
            if n.op == "Identity" and n.name.endswith("/read") and n.input}
    out = {}
    for node in graph_def.node:
        if node.op == "Const" and node.name in read:
            out[node.name] = np.array(tf.make_ndarray(node.attr["value"].tensor))
    if not out:
        raise ValueError(f"{path!r} has no frozen variables (Const nodes read through /read)")
    return out


def graph_batch_norm_epsilons(path: str) -> Dict[str, float]:
    """{layer scope: epsilon} of the graph's FusedBatchNorm nodes (to check `file_epsilon`)."""
    out = {}
    for node in read_graph_def(path).node:
        if node.op.startswith("FusedBatchNorm"):
            out[node.name.rsplit("/BatchNorm/", 1)[0]] = float(node.attr["epsilon"].f)
    return out


# --------------------------------------------------------------------------- config

def deeplab_small_config(height: int = GRAPH_SIZE[0], width: int = GRAPH_SIZE[1],
                         include_preprocessing: bool = True) -> SegmenterConfig:
    """Our closest segmenter to DeepLab's mobilenet_v3_small_seg LR-ASPP (5 classes).

    Small 1.0, RF2 last stage, output stride 32 (no atrous rows), LR-ASPP with 128 filters,
    the 8x tap at bneck3's depthwise output (lraspp.low_level_block's rule) and a sum merge.
    The gate's pool: 13x25 with stride (4, 5) at 513x1025, exactly the original's; at other
    sizes the window keeps covering 385/513 x 769/1025 of the image (DeepLab's
    scale_dimension) and the stride scales with the input. include_preprocessing: uint8-range
    input ([0, 255] -> [-1, 1] as x / 127.5 - 1, the graph's own mapping); False: [-1, 1].
    The gate is the hard sigmoid and every resize aligns corners, as the original's.
    """
    model = ModelConfig.from_flat(
        name="small", alpha=1.0, rf2=True, output_stride=OUTPUT_STRIDE, include_top=False,
        input_shape=(height, width, 3), include_preprocessing=include_preprocessing,
        bn_epsilon=SLIM_BN_EPSILON)
    kernel = tuple(max(1, int((crop * size / ref - 1) / OUTPUT_STRIDE + 1))
                   for crop, size, ref in zip(POOL_CROP, (height, width), GRAPH_SIZE))
    stride = tuple(max(1, int(s * size / ref + 0.5))
                   for s, size, ref in zip(POOL_STRIDE, (height, width), GRAPH_SIZE))
    seg = SegHeadConfig(head="lraspp", classes=CLASSES, filters=128, pool_crop=POOL_CROP,
                        pool_kernel=kernel, pool_stride=stride, gate="hard_sigmoid",
                        align_corners=True)
    config = SegmenterConfig(model, seg)
    config.validate()
    return config


def photo_canvas(path: str, size: Tuple[int, int] = GRAPH_SIZE) -> np.ndarray:
    """A photo centre-cropped to size's aspect and resized to fill it (uint8 [H, W, 3]): what
    the comparisons with the original graph feed both models (it then needs no padding)."""
    from PIL import Image
    image = Image.open(path).convert("RGB")
    h, w = size
    iw, ih = image.size
    if iw / ih > w / h:
        nw = int(round(ih * w / h))
        image = image.crop(((iw - nw) // 2, 0, (iw - nw) // 2 + nw, ih))
    else:
        nh = int(round(iw * h / w))
        image = image.crop((0, (ih - nh) // 2, iw, (ih - nh) // 2 + nh))
    return np.asarray(image.resize((w, h), Image.BILINEAR), np.uint8)


def pad_like_deeplab(image: np.ndarray, size: Tuple[int, int] = GRAPH_SIZE) -> np.ndarray:
    """[h, w, 3] pixels (0..255) -> [H, W, 3] float32: the image at the top left of a canvas
    of the mean pixel 127.5, as DeepLab's exported graph pads ImageTensor (h <= H, w <= W)."""
    h, w = image.shape[:2]
    if h > size[0] or w > size[1]:
        raise ValueError(f"image {h}x{w} is larger than the graph's {size[0]}x{size[1]}")
    canvas = np.full(tuple(size) + (3,), PAD_VALUE, np.float32)
    canvas[:h, :w] = image
    return canvas


# --------------------------------------------------------------------------- loading

def load_into(model, weights: Dict[str, np.ndarray]) -> Dict:
    """Writes DeepLab variables {tf name: value} into `model` (built by build_segmenter).

    Every tensor must have a place (`keras_weight`) of the same shape and every weight of the
    model must get one; otherwise ValueError naming the first tensor / weight at fault, and
    nothing is written (head_tensors.load). Returns a summary.
    """
    return dict(head_tensors.load(model, tensors(weights)), bn_folded=False)


def tensors(values: Dict[str, np.ndarray], origin: str = "") -> List[head_tensors.Tensor]:
    """DeepLab variables {tf name: value} with their place in our segmenter (`keras_weight`)."""
    return head_tensors.tensors_of(values, origin, keras_weight, file_epsilon,
                                   "LR-ASPP segmenter")


def load_frozen_graph(model, path: str) -> Dict:
    """read_frozen_graph + load_into."""
    return load_into(model, read_frozen_graph(path))
