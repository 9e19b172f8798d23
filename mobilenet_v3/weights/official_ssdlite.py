"""Google's official SSDLite-MobileNetV3-Small COCO detector (TF Object Detection API,
`ssd_mobilenet_v3_small_coco_2020_01_14`) loaded into this package's SSDLite.

Three steps, each usable alone:

* reading: `read_mlmodel` (the network converted to Core ML, weights float16) or
  `load_checkpoint_weights` (the archive's own `model.ckpt`) -> {TF variable name: array}, in
  TF checkpoint conventions: conv kernels HWIO, depthwise kernels HWCM, biases, and
  BatchNorm gamma / beta / moving_mean / moving_variance for a BN whose epsilon is the OD API's
  (`OD_API_BN_EPSILON`, pipeline.config's batch_norm epsilon 0.001);
* naming: `keras_weight_name` maps one OD API variable name to our layer/weight;
* writing: `assign_weights` checks every tensor against a model built by `build_ssdlite`
  (`official_small_config()` for the official Small) and writes them all, or nothing.

`load_official_small(path)` does all three for the .mlmodel.

Core ML's BatchNorm (read_mlmodel). The converter kept BN unfolded after the bias-free convs
but stored it as variance 1, epsilon 1e-5, with 1/sqrt(var_tf + 0.001) multiplied into gamma;
beta and the moving mean are kept as TF's (the stored means are non-zero: nothing was folded
into beta). gamma_tf and var_tf cannot be separated again, only their ratio, so
`read_mlmodel` returns an equivalent pair: gamma = Core ML's gamma (the float16 value
unchanged), moving_variance = var_cm + eps_cm - OD_API_BN_EPSILON (= 0.99901), so that a
TF / Keras BN with epsilon 0.001 divides by sqrt(var_cm + eps_cm), exactly what the Core ML
layer computes. (Whether the converter meant gamma_cm / sqrt(1 + 1e-5) or gamma_cm itself to
equal gamma_tf / sqrt(var_tf + 0.001) cannot be told apart: they differ by 5e-6 relative,
100x below the float16 rounding of gamma, 2^-11.) `assign_weights` adapts moving_variance to a
model built with another bn_epsilon the same way (var + 0.001 - eps_model).

Graph constants that are not weights: the SE gate of the official graph is
relu6(x + 3) * 0.16667 (TF-Slim's hard_sigmoid), ours relu6(x + 3) * (1 / 6): 2e-5 relative,
which is all that separates our outputs from the official graph's (measured on a COCO photo:
raw box codes / class logits of magnitude ~12 differ by <= 1.4e-3, scores by 9e-5; with 1/6
in both, by 1.5e-5, float32 noise).
Its h-swish is (x * relu6(x + 3)) * (1 / 6), ours x * (relu6(x + 3) / 6): the same function.

Reading the .mlmodel needs coremltools' generated protobuf modules (`coremltools.proto`), the
only part of coremltools used. They are loaded from the installed package without running
`coremltools/__init__`, which imports its converters (and TensorFlow), warns about untested
TensorFlow versions and takes seconds; see `proto_module`.
"""

import importlib
import importlib.util
import os
import re
import sys
import types
from typing import Dict, Optional, Tuple

import numpy as np

from mobilenet_v3.weights import tf_checkpoint
from mobilenet_v3.weights.errors import NotMobileNetV3Error, WeightsError

OD_API_BN_EPSILON = 1e-3       # pipeline.config: batch_norm { epsilon: 0.001 } (also slim's)
OD_API_BN_MOMENTUM = 0.97      # pipeline.config: batch_norm { decay: 0.97 }
OD_API_WEIGHT_DECAY = 4e-5     # pipeline.config: l2_regularizer { weight: 4e-05 }
BN_WEIGHTS = ("gamma", "beta", "moving_mean", "moving_variance")
MODEL_SCOPES = ("FeatureExtractor/", "BoxPredictor_")

_PRIVATE_PROTO_PACKAGE = "_mobilenet_v3_coreml_proto"


# ----------------------------------------------------------------------------- the detector

def official_small_config():
    """The official `ssdlite_mobilenet_v3_small_320x320_coco` as a DetectorConfig: Small with
    the reduced tail, 320x320 input in [-1, 1] (no in-graph rescale), 91 class slots (0
    background, then COCO category ids 1..90), the OD API's BN epsilon / decay and L2 weight
    (the last two matter only for training)."""
    from mobilenet_v3.modeling.heads.ssdlite import DetectorConfig
    return DetectorConfig.create(
        classes=91, name="small", alpha=1.0, reduced_tail=True, input_shape=(320, 320, 3),
        include_preprocessing=False, bn_epsilon=OD_API_BN_EPSILON,
        bn_momentum=OD_API_BN_MOMENTUM, weight_decay=OD_API_WEIGHT_DECAY)


# ----------------------------------------------------------------------------- naming

_ROOT = "FeatureExtractor/MobilenetV3/"
_LEAVES = {"weights": "kernel", "depthwise_weights": "depthwise_kernel", "biases": "bias",
           **{f"BatchNorm/{n}": n for n in BN_WEIGHTS}}
_SCOPES = (
    # (pattern of the scope, our layer name from the match)
    (re.compile(_ROOT + r"Conv"), lambda m: "stem"),
    (re.compile(_ROOT + r"Conv_1"), lambda m: "lastconv"),
    (re.compile(_ROOT + r"expanded_conv(?:_(\d+))?/(expand|depthwise|project)"),
     lambda m: f"bneck{int(m[1] or 0) + 1}_{m[2]}"),
    (re.compile(_ROOT + r"expanded_conv(?:_(\d+))?/squeeze_excite/Conv(_1)?"),
     lambda m: f"bneck{int(m[1] or 0) + 1}_se_{'excite' if m[2] else 'squeeze'}"),
    # multi_resolution_feature_maps' extra layers, named after the last tapped layer:
    # layer_13_1_Conv2d_2_1x1_256 (1x1 to half depth), layer_13_2_Conv2d_2_3x3_s2_512_depthwise,
    # layer_13_2_Conv2d_2_3x3_s2_512 (1x1 to depth); Conv2d_k is our ssd_extra{k}.
    (re.compile(_ROOT + r"layer_\d+_1_Conv2d_(\d+)_1x1_\d+"), lambda m: f"ssd_extra{m[1]}_1x1"),
    (re.compile(_ROOT + r"layer_\d+_2_Conv2d_(\d+)_3x3_s2_\d+_depthwise"),
     lambda m: f"ssd_extra{m[1]}_dw"),
    (re.compile(_ROOT + r"layer_\d+_2_Conv2d_(\d+)_3x3_s2_\d+"),
     lambda m: f"ssd_extra{m[1]}_project"),
    # ConvolutionalBoxPredictor (use_depthwise): BoxPredictor_k/{BoxEncoding,Class}Predictor
    # _depthwise (3x3 + BN + ReLU6), then the 1x1 predictor with biases.
    (re.compile(r"BoxPredictor_(\d+)/(BoxEncoding|Class)Predictor(_depthwise)?"),
     lambda m: f"ssd_{'box' if m[2] == 'BoxEncoding' else 'class'}{m[1]}_"
               f"{'dw' if m[3] else 'predict'}"),
)


def keras_weight_name(tf_name: str) -> Optional[str]:
    """OD API variable name -> `layer/weight` of our detector (build_ssdlite), or None.

    FeatureExtractor/MobilenetV3/Conv/weights                -> stem/kernel
    .../expanded_conv/depthwise/depthwise_weights             -> bneck1_depthwise/depthwise_kernel
    .../expanded_conv_8/expand/BatchNorm/gamma                -> bneck9_expand_bn/gamma
    .../expanded_conv_8/squeeze_excite/Conv_1/biases          -> bneck9_se_excite/bias
    .../Conv_1/...                                            -> lastconv...
    .../layer_13_2_Conv2d_3_3x3_s2_256_depthwise/...          -> ssd_extra3_dw...
    BoxPredictor_0/ClassPredictor/weights                     -> ssd_class0_predict/kernel
    BoxPredictor_5/BoxEncodingPredictor_depthwise/BatchNorm/beta -> ssd_box5_dw_bn/beta
    """
    for leaf, weight in _LEAVES.items():
        if not tf_name.endswith("/" + leaf):
            continue
        layer = layer_of_scope(tf_name[:-len(leaf) - 1])
        if layer is not None:
            return f"{layer}_bn/{weight}" if leaf.startswith("BatchNorm/") \
                else f"{layer}/{weight}"
    return None


def layer_of_scope(scope: str) -> Optional[str]:
    """Our layer for an OD API layer scope ('BoxPredictor_0/ClassPredictor' ->
    'ssd_class0_predict'), or None."""
    for pattern, layer_of in _SCOPES:
        match = pattern.fullmatch(scope)
        if match:
            return layer_of(match)
    return None


# ----------------------------------------------------------------------------- Core ML

def proto_module():
    """coremltools' generated `Model_pb2` (the Core ML spec), without coremltools' __init__.

    The generated modules import each other relatively (`from . import X_pb2`), so they are
    imported as a private package whose path is coremltools' `proto` folder. An already
    imported `coremltools.proto` is used as it is. Raises ImportError naming the pip
    requirement when coremltools is not installed.
    """
    loaded = sys.modules.get("coremltools.proto.Model_pb2")
    if loaded is not None:
        return loaded
    spec = importlib.util.find_spec("coremltools")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("reading .mlmodel files needs coremltools' protobuf modules: "
                          "pip install 'coremltools>=9.0,<10'")
    proto_dir = os.path.join(list(spec.submodule_search_locations)[0], "proto")
    if os.path.isfile(os.path.join(proto_dir, "Model_pb2.py")):
        package = sys.modules.get(_PRIVATE_PROTO_PACKAGE)
        if package is None:
            package = types.ModuleType(_PRIVATE_PROTO_PACKAGE)
            package.__path__ = [proto_dir]
            sys.modules[_PRIVATE_PROTO_PACKAGE] = package
        try:
            return importlib.import_module(_PRIVATE_PROTO_PACKAGE + ".Model_pb2")
        except ImportError:
            pass
    from coremltools.proto import Model_pb2     # a layout this loader does not know
    return Model_pb2


def _load_spec(path: str):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    spec = proto_module().Model()
    with open(path, "rb") as f:
        data = f.read()
    try:
        spec.ParseFromString(data)
    except Exception as e:     # google.protobuf.message.DecodeError and friends
        raise ValueError(f"{path!r} is not a Core ML model: {e}") from None
    if spec.WhichOneof("Type") != "neuralNetwork":
        raise ValueError(f"{path!r} is a Core ML {spec.WhichOneof('Type')!r} model, not the "
                         "neuralNetwork of the converted SSD")
    return spec


def _array(params, what: str) -> np.ndarray:
    """A Core ML WeightParams as float32 (float32 or float16 storage; quantized refused)."""
    if len(params.floatValue):
        return np.asarray(params.floatValue, np.float32)
    if len(params.float16Value):
        return np.frombuffer(params.float16Value, "<f2").astype(np.float32)
    if len(params.rawValue) or params.HasField("quantization"):
        raise ValueError(f"{what}: quantized Core ML weights are not supported")
    return np.zeros(0, np.float32)


def _scope(layer_name: str, suffixes: Tuple[str, ...], what: str) -> str:
    for suffix in suffixes:
        if layer_name.endswith(suffix):
            return layer_name[:-len(suffix)]
    raise ValueError(f"Core ML {what} layer {layer_name!r} does not end in one of {suffixes}: "
                     "not named like a converted TF Object Detection API graph")


def read_mlmodel(path: str) -> Dict[str, np.ndarray]:
    """{TF variable name: float32 array} of every conv, bias and BatchNorm of the model.

    Kernels: Core ML's [out, in / groups, kh, kw] -> TF's HWIO; a depthwise conv (groups ==
    input channels, out = channels * M) -> [kh, kw, channels, M]. BatchNorm: see the module
    docstring (gamma as stored, moving_variance rebased to epsilon OD_API_BN_EPSILON).
    """
    spec = _load_spec(path)
    out: Dict[str, np.ndarray] = {}

    def put(name, value):
        if name in out:
            raise ValueError(f"{path!r}: two Core ML layers give {name!r}")
        out[name] = value

    for layer in spec.neuralNetwork.layers:
        kind = layer.WhichOneof("layer")
        if kind == "convolution":
            p = layer.convolution
            if p.isDeconvolution:
                raise ValueError(f"{path!r}: {layer.name!r} is a deconvolution")
            kh, kw = p.kernelSize
            same = p.WhichOneof("ConvolutionPaddingType") == "same" \
                and p.same.asymmetryMode == 0      # BOTTOM_RIGHT_HEAVY, i.e. TF's 'SAME'
            if not (same or (kh, kw, *p.stride) == (1, 1, 1, 1)) \
                    or any(d not in (0, 1) for d in p.dilationFactor):
                raise ValueError(f"{path!r}: {layer.name!r} is not a TF 'SAME' undilated "
                                 "conv, as our detector's are")
            weights = _array(p.weights, layer.name).reshape(
                p.outputChannels, p.kernelChannels, kh, kw)
            if p.nGroups > 1:
                if p.kernelChannels != 1:
                    raise ValueError(f"{path!r}: {layer.name!r} is a grouped conv that is "
                                     "not depthwise")
                scope = _scope(layer.name, ("/depthwise",), "depthwise")
                multiplier = p.outputChannels // p.nGroups
                kernel = weights[:, 0].transpose(1, 2, 0).reshape(kh, kw, p.nGroups, multiplier)
                put(f"{scope}/depthwise_weights", kernel)
            else:
                scope = _scope(layer.name, ("/Conv2D",), "convolution")
                put(f"{scope}/weights", weights.transpose(2, 3, 1, 0))
            if p.hasBias:
                put(f"{scope}/biases", _array(p.bias, layer.name))
        elif kind == "batchnorm":
            p = layer.batchnorm
            if p.computeMeanVar or p.instanceNormalization:
                raise ValueError(f"{path!r}: {layer.name!r} computes its own statistics")
            scope = _scope(layer.name, ("/BatchNorm/FusedBatchNormV3/Add_batch_norm",
                                        "/BatchNorm/FusedBatchNorm/Add_batch_norm"),
                           "batchnorm") + "/BatchNorm"
            gamma, beta, mean, variance = (_array(getattr(p, n), layer.name)
                                           for n in ("gamma", "beta", "mean", "variance"))
            put(f"{scope}/gamma", gamma)
            put(f"{scope}/beta", beta)
            put(f"{scope}/moving_mean", mean)
            # the same denominator under TF's epsilon: var + 0.001 == var_cm + eps_cm
            put(f"{scope}/moving_variance",
                np.maximum(variance + np.float32(p.epsilon) - np.float32(OD_API_BN_EPSILON),
                           0.0).astype(np.float32))
    if not out:
        raise ValueError(f"{path!r}: a Core ML neural network without convolutions")
    return out


def read_decoder_anchors(path: str) -> np.ndarray:
    """[N, 4] corner anchors (ymin, xmin, ymax, xmax) of the converted SSD's Decoder.mlmodel
    (its `anchors_yx` / `anchors_hw` constants, [2, N, 1] each: centre and size)."""
    spec = _load_spec(path)
    constants = {layer.name: layer.loadConstant for layer in spec.neuralNetwork.layers
                 if layer.WhichOneof("layer") == "loadConstant"}
    missing = [n for n in ("anchors_yx", "anchors_hw") if n not in constants]
    if missing:
        raise ValueError(f"{path!r} has no constant(s) {missing}: not an SSD decoder")
    yx, hw = (_array(constants[n].data, n).reshape(2, -1).astype(np.float64)
              for n in ("anchors_yx", "anchors_hw"))
    return np.stack([yx[0] - hw[0] / 2, yx[1] - hw[1] / 2,
                     yx[0] + hw[0] / 2, yx[1] + hw[1] / 2], -1).astype(np.float32)


# ----------------------------------------------------------------------------- TF checkpoint

def checkpoint_shapes(prefix: str) -> Dict[str, Tuple[int, ...]]:
    """{variable name: shape} of the model variables of a TF checkpoint (the .index suffices:
    no values are read), without global_step, optimizer slots and EMA shadows."""
    import tensorflow as tf
    return {name: tuple(shape) for name, shape in tf.train.list_variables(prefix)
            if tf_checkpoint.is_model_variable(name, MODEL_SCOPES)}


def load_checkpoint_weights(prefix: str) -> Dict[str, np.ndarray]:
    """{TF variable name: float32 array} of the detector's variables in an OD API checkpoint
    (`.../model.ckpt`), the ExponentialMovingAverage shadow when there is one. The values
    are the checkpoint's own: BN with epsilon OD_API_BN_EPSILON, as `read_mlmodel` returns."""
    try:
        return tf_checkpoint.read(prefix, MODEL_SCOPES)
    except WeightsError as e:
        raise ValueError(f"{e}: not a TF Object Detection API SSD checkpoint"
                         if isinstance(e, NotMobileNetV3Error) else str(e)) from None


# ----------------------------------------------------------------------------- writing

def assign_weights(model, weights: Dict[str, np.ndarray]) -> Dict:
    """Writes {OD API name: array} into a detector built by build_ssdlite, all or nothing.

    Raises ValueError naming the first tensor (in the dict's order) with no place in the
    model or another shape, or else the first model weight that no tensor fills. BN
    moving variances are rebased from OD_API_BN_EPSILON to each BN layer's own epsilon
    (head_tensors.load).
    """
    from mobilenet_v3.weights import head_tensors
    summary = head_tensors.load(model, tensors(weights))
    return {"tensors": summary["tensors"], "values": summary["weights"]}


def tensors(values: Dict[str, np.ndarray], origin: str = ""):
    """OD API variables {name: value} with their place in our SSDLite (`keras_weight_name`)."""
    from mobilenet_v3.weights import head_tensors

    def place_of(name):
        place = keras_weight_name(name)
        return None if place is None else tuple(place.split("/"))
    return head_tensors.tensors_of(values, origin, place_of, lambda layer: OD_API_BN_EPSILON,
                                   "SSDLite (not a variable of the OD API's "
                                   "SSDLite-MobileNetV3)")


def load_official_small(mlmodel_path: str, config=None):
    """(model, config): our SSDLite-Small built from `config` (default official_small_config)
    with the weights of the official detector's .mlmodel."""
    from mobilenet_v3.modeling.heads.ssdlite import build_ssdlite
    config = config or official_small_config()
    weights = read_mlmodel(mlmodel_path)
    model = build_ssdlite(config)
    assign_weights(model, weights)
    return model, config
