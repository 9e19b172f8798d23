"""Quantization-aware training of MobileNetV3 with tensorflow-model-optimization.

tfmot quantizes Conv2D, DepthwiseConv2D, BN, ReLU, Add, pooling and reshapes by itself; our
two constant layers (AddConstant, Scale) and Multiply need a config that fake-quantizes their
output. With every link of h-swish / h-sigmoid quantized, the int8 TFLite graph has no
float tensors inside. Depthwise kernels get one range per channel (tfmot's own scheme has one
per tensor), as the converter's post-training quantization does.
"""

from typing import Dict, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras

from mobilenet_v3.modeling.layers import AddConstant, Scale

_qkeras = tfmot.quantization.keras


class OutputQuantizeConfig(_qkeras.QuantizeConfig):
    """Quantizes only a layer's output (8-bit, asymmetric, moving-average range)."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [_qkeras.quantizers.MovingAverageQuantizer(
            num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

    def get_config(self):
        return {}


class NoQuantizeConfig(OutputQuantizeConfig):
    """Leaves a layer's output unquantized: for the x + 3 that the converter fuses with the
    ReLU6 after it (one int8 ADD with a RELU6 activation, quantized once, over [0, 6])."""

    def get_output_quantizers(self, layer):
        return []


class DepthwiseWeightsQuantizer(_qkeras.quantizers.LastValueQuantizer):
    """8-bit symmetric narrow-range depthwise weights, one range per output channel.

    tfmot's per-axis quantizer takes the kernel's last axis, for a (kh, kw, C, M) depthwise
    kernel the depth multiplier M: one range for all C channels. Google's Small has channels
    10-100x wider than its median channel; per tensor its QAT model scored 58.7% top-1, per
    channel 66.9% (float 67.8%, 450 photos). The kernel is viewed as (kh, kw, 1, C*M), TFLite's
    own depthwise layout (output channel c*M + m), quantized along its last axis and reshaped
    back; the converter stores the result as per-channel int8 depthwise weights.
    """

    def __init__(self):
        super().__init__(num_bits=8, per_axis=True, symmetric=True, narrow_range=True)

    def build(self, tensor_shape, name, layer):
        channels = int(tensor_shape[-2]) * int(tensor_shape[-1])
        def variable(suffix, value):
            return layer.add_weight(name + suffix, shape=(channels,), trainable=False,
                                    initializer=tf_keras.initializers.Constant(value))
        return {"min_var": variable("_min", -6.0), "max_var": variable("_max", 6.0)}

    def __call__(self, inputs, training, weights, **kwargs):
        shape = inputs.shape
        flat = tf.reshape(inputs, (shape[0], shape[1], 1, shape[2] * shape[3]))
        return tf.reshape(super().__call__(flat, training, weights, **kwargs), shape)

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls()


class DepthwiseQuantizeConfig(_qkeras.QuantizeConfig):
    """tfmot's default 8-bit DepthwiseConv2D config with per-channel kernel ranges."""

    def __init__(self):
        self.weight_quantizer = DepthwiseWeightsQuantizer()
        self.activation_quantizer = _qkeras.quantizers.MovingAverageQuantizer(
            num_bits=8, per_axis=False, symmetric=False, narrow_range=False)

    def get_weights_and_quantizers(self, layer):
        return [(layer.depthwise_kernel, self.weight_quantizer)]

    def get_activations_and_quantizers(self, layer):
        return [(layer.activation, self.activation_quantizer)]

    def set_quantize_weights(self, layer, quantize_weights):
        layer.depthwise_kernel = quantize_weights[0]

    def set_quantize_activations(self, layer, quantize_activations):
        layer.activation = quantize_activations[0]

    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        return {}


class _QuantizeRegistry(_qkeras.default_8bit.Default8BitQuantizeRegistry):
    """tfmot's default 8-bit registry with per-channel depthwise kernels. Registered here, not
    by quantize_annotate_layer(layer, config): tfmot's Conv+BN(+ReLU) layout transforms skip a
    layer annotated with its own config (a fake quant would land between the depthwise and
    its BN)."""

    def get_quantize_config(self, layer):
        if isinstance(layer, tf_keras.layers.DepthwiseConv2D):
            return DepthwiseQuantizeConfig()
        return super().get_quantize_config(layer)


class QuantizeScheme(_qkeras.default_8bit.Default8BitQuantizeScheme):
    def get_quantize_registry(self):
        return _QuantizeRegistry()


_OUTPUT_QUANTIZED = (Scale, tf_keras.layers.Multiply)


def quantize_scope():
    """The custom objects tfmot needs to build or load a quantized MobileNetV3."""
    return _qkeras.quantize_scope({
        "OutputQuantizeConfig": OutputQuantizeConfig,
        "NoQuantizeConfig": NoQuantizeConfig,
        "DepthwiseQuantizeConfig": DepthwiseQuantizeConfig,
        "DepthwiseWeightsQuantizer": DepthwiseWeightsQuantizer,
        "AddConstant": AddConstant,
        "Scale": Scale,
    })


def quantize_annotate(model: tf_keras.Model) -> tf_keras.Model:
    """Marks every layer for quantization, with our config where tfmot has none."""
    def annotate(layer):
        if isinstance(layer, AddConstant):
            return _qkeras.quantize_annotate_layer(layer, NoQuantizeConfig())
        if isinstance(layer, _OUTPUT_QUANTIZED):
            return _qkeras.quantize_annotate_layer(layer, OutputQuantizeConfig())
        if isinstance(layer, tf_keras.layers.InputLayer):
            return layer
        return _qkeras.quantize_annotate_layer(layer)

    annotated = tf_keras.models.clone_model(model, clone_function=annotate)
    annotated.set_weights(model.get_weights())
    return annotated


def quantize_model(model: tf_keras.Model) -> tf_keras.Model:
    """A QAT copy of `model` (weights copied): fake-quant everywhere, BN folded by tfmot.

    The model must not contain in-graph preprocessing: the [0, 255] -> [-1, 1] rescale
    would stay a float island in front of the first quantize op. Feed [-1, 1] pixels instead
    (an int8 input's scale and zero point then do the rescale for free).
    """
    if any(isinstance(layer, tf_keras.layers.Rescaling) for layer in model.layers):
        raise ValueError("quantize_model needs a model built with include_preprocessing=False "
                         "(a Rescaling layer would leave float ops in the int8 graph)")
    with quantize_scope():
        return _qkeras.quantize_apply(quantize_annotate(model), scheme=QuantizeScheme())


def freeze_batch_norm(qat_model: tf_keras.Model) -> int:
    """Puts every (wrapped) BatchNormalization in inference mode for training: tf_keras runs a
    non-trainable BN with its moving statistics. Returns how many were frozen."""
    count = 0
    for layer in qat_model.layers:
        inner = getattr(layer, "layer", layer)
        if isinstance(inner, tf_keras.layers.BatchNormalization):
            inner.trainable = False
            count += 1
    return count


_RANGE_SUFFIXES = ("output", "post_activation", "pre_activation")


def _range_variables(qat_model: tf_keras.Model) -> Dict[str, Tuple[object, object, str]]:
    """{float layer name: (min var, max var, kind)} of every activation quantizer."""
    found = {}
    for layer in qat_model.layers:
        inner = getattr(layer, "layer", None)
        if inner is None:
            continue
        by_name = {v.name.split("/")[-1].split(":")[0]: v for v in layer.weights}
        for kind in _RANGE_SUFFIXES:
            if f"{kind}_min" in by_name:
                if kind == "pre_activation":
                    raise ValueError(f"{layer.name}: pre-activation ranges are not calibrated "
                                     "(no fused activations in MobileNetV3)")
                found[inner.name] = (by_name[f"{kind}_min"], by_name[f"{kind}_max"], kind)
    return found


def _weight_range_variables(qat_model: tf_keras.Model):
    """(kernel, min var, max var) of every weight quantizer."""
    for layer in qat_model.layers:
        if getattr(layer, "layer", None) is None:
            continue
        by_name = {v.name.split("/")[-1].split(":")[0]: v for v in layer.weights}
        for attr in ("kernel", "depthwise_kernel"):
            if f"{attr}_min" in by_name and attr in by_name:
                yield by_name[attr], by_name[f"{attr}_min"], by_name[f"{attr}_max"]


RELATIVE_RANGE_FLOOR = 1e-3


def floor_weight_ranges(qat_model: tf_keras.Model,
                        relative: float = RELATIVE_RANGE_FLOOR) -> int:
    """Raises every per-channel weight range to at least `relative` x its layer's widest.

    An all-zero channel (Google's Small has pruned SE channels: zero kernel, bias ~3) gets a
    [0, 0] range from tfmot; the converter then stores its int32 bias with a ~1e-9 weight
    scale, the bias clips at 2^31 and the channel's output is wrong by the whole bias (the
    qat_int8 file of the imported Small agreed with its QAT Keras model on 0.38 of the photos).
    An all-zero channel quantizes to the same zeros under any range; a nearly-zero one is
    quantized a little more coarsely, in the QAT model and its file alike. Apply it after the
    last training step: tfmot's LastValueQuantizer re-reads the ranges from the weights at
    every step. Returns how many channel ranges were raised.
    """
    raised = 0
    for _, min_var, max_var in _weight_range_variables(qat_model):
        if not min_var.shape.rank:
            continue
        bound = np.maximum(np.abs(min_var.numpy()), np.abs(max_var.numpy()))
        floored = np.maximum(bound, relative * bound.max())
        raised += int(np.sum(floored > bound))
        min_var.assign(-floored.astype(np.float32))
        max_var.assign(floored.astype(np.float32))
    return raised


def calibrate_weight_ranges(qat_model: tf_keras.Model) -> int:
    """Sets every weight quantizer's range from the weights, as its first training step would.

    tfmot's LastValueQuantizer keeps [-6, 6] until a training step records the weights' range,
    so an untrained QAT model (or its int8 file) clips every kernel to +-6 (Google's Small has
    depthwise weights down to -23.6). Same rule as tfmot: symmetric, per output channel for
    per-axis quantizers. Returns how many ranges were set.
    """
    count = 0
    for kernel_var, min_var, max_var in _weight_range_variables(qat_model):
        kernel = kernel_var.numpy()
        # Conv2D (kh, kw, in, out): `out` ranges; depthwise (kh, kw, C, M): C*M ranges.
        bound = np.abs(kernel.reshape(-1, min_var.shape[0])).max(axis=0) \
            if min_var.shape.rank else np.abs(kernel).max()
        min_var.assign(np.broadcast_to(-bound, min_var.shape).astype(np.float32))
        max_var.assign(np.broadcast_to(bound, max_var.shape).astype(np.float32))
        count += 1
    floor_weight_ranges(qat_model)
    return count


def calibrate_ranges(qat_model: tf_keras.Model, float_model: tf_keras.Model,
                     images: np.ndarray, batch_size: int = 16) -> Dict[str, Tuple[float, float]]:
    """Sets every fake-quant activation range to the float model's min/max over `images`.

    tfmot starts each range at [-6, 6] and moves it by an EMA with decay 0.999 per training
    step, so after a short fine-tuning the ranges are still close to [-6, 6] while a trained
    MobileNetV3's activations reach hundreds (Google's Small: [0, 280] after bneck1's
    depthwise): most activations are clipped and the QAT model (and its int8 file) lose the
    float model's function. Calibrating first makes the fine-tuning start from PTQ-quality
    ranges. `float_model` is the model `qat_model` was made from (same layer names); `images`
    are as the model takes them. Returns {layer name: (min, max)}.
    """
    variables = _range_variables(qat_model)
    names = [n for n in variables if n in {l.name for l in float_model.layers}]
    missing = sorted(set(variables) - set(names))
    if missing:
        raise ValueError(f"QAT ranges without a float layer of the same name: {missing[:5]}")
    probe = tf_keras.Model(float_model.inputs, [float_model.get_layer(n).output for n in names])

    @tf.function
    def extremes(x):
        return tf.stack([tf.stack([tf.reduce_min(o), tf.reduce_max(o)])
                         for o in probe(x, training=False)])

    low = np.full(len(names), np.inf)
    high = np.full(len(names), -np.inf)
    for i in range(0, len(images), batch_size):
        e = extremes(tf.constant(images[i:i + batch_size], tf.float32)).numpy()
        low, high = np.minimum(low, e[:, 0]), np.maximum(high, e[:, 1])
    ranges = {}
    for name, lo, hi in zip(names, low, high):
        lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)     # fake quant keeps 0 exact
        if hi - lo < 1e-6:
            hi = lo + 1e-6
        min_var, max_var, _ = variables[name]
        min_var.assign(tf.fill(min_var.shape, lo))
        max_var.assign(tf.fill(max_var.shape, hi))
        ranges[name] = (lo, hi)
    calibrate_weight_ranges(qat_model)
    # The input quantizer (tfmot's QuantizeLayer): the images' own range.
    for layer in qat_model.layers:
        if type(layer).__name__ == "QuantizeLayer":
            for v in layer.weights:
                kind = v.name.split("/")[-1].split(":")[0]
                if kind.endswith("_min"):
                    v.assign(tf.fill(v.shape, float(min(images.min(), 0.0))))
                elif kind.endswith("_max"):
                    v.assign(tf.fill(v.shape, float(max(images.max(), 0.0))))
    return ranges
