"""Quantization-aware training of MobileNetV3 with tensorflow-model-optimization.

tfmot quantizes Conv2D, DepthwiseConv2D, BN, ReLU, Add, pooling and reshapes by itself; our
two constant layers (AddConstant, Scale) and Multiply need a config that fake-quantizes their
output. With every link of h-swish / h-sigmoid quantized, the int8 TFLite graph has no
float tensors inside.
"""

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


_OUTPUT_QUANTIZED = (AddConstant, Scale, tf_keras.layers.Multiply)


def quantize_scope():
    """The custom objects tfmot needs to build or load a quantized MobileNetV3."""
    return _qkeras.quantize_scope({
        "OutputQuantizeConfig": OutputQuantizeConfig,
        "AddConstant": AddConstant,
        "Scale": Scale,
    })


def quantize_annotate(model: tf_keras.Model) -> tf_keras.Model:
    """Marks every layer for quantization, with our config where tfmot has none."""
    def annotate(layer):
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
        return _qkeras.quantize_apply(quantize_annotate(model))
