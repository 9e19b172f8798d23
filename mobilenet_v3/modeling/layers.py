"""Building blocks of MobileNetV3 as tf_keras layers.

h-swish and h-sigmoid are written as chains of tiny layers (add 3 -> ReLU6 -> scale 1/6
[-> multiply]) rather than one custom layer or a TF op on a Keras tensor, because:
  * the TFLite converter fuses `x * relu6(x + 3) * (1/6)` into one HARD_SWISH op in float
    graphs (an unfused h-swish costs ~10% latency, paper Table 5);
  * tensorflow-model-optimization can quantize every link of the chain, so a QAT model
    converts to an all-int8 graph (a single custom layer leaves a float island, and
    TFOpLambda layers such as keras.applications' `x + 3.0` cannot be quantized at all).
"""

from typing import Callable, Optional

import tensorflow as tf
import tf_keras
from tf_keras import layers

from mobilenet_v3.modeling.config import HARD_SWISH_FORMS
from mobilenet_v3.specs import HS, RE, ScaledBneck

_PACKAGE = "mobilenet_v3"


@tf_keras.saving.register_keras_serializable(package=_PACKAGE)
class AddConstant(layers.Layer):
    """y = x + constant (the '+3' of the hard sigmoid)."""

    def __init__(self, constant: float, **kwargs):
        super().__init__(**kwargs)
        self.constant = float(constant)

    def call(self, inputs):
        return inputs + self.constant

    def get_config(self):
        return {**super().get_config(), "constant": self.constant}


@tf_keras.saving.register_keras_serializable(package=_PACKAGE)
class Scale(layers.Layer):
    """y = x * factor (the '/6' of the hard sigmoid)."""

    def __init__(self, factor: float, **kwargs):
        super().__init__(**kwargs)
        self.factor = float(factor)

    def call(self, inputs):
        return inputs * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@tf_keras.saving.register_keras_serializable(package=_PACKAGE)
class AlignedResize(layers.Layer):
    """Bilinear resize to a fixed size with align_corners=True: the corner pixels of input and
    output coincide (TF1's resize_bilinear, which DeepLab uses for every resize). Keras's
    Resizing uses half-pixel centres, a different function at every size but 1x1."""

    def __init__(self, height: int, width: int, **kwargs):
        super().__init__(**kwargs)
        self.height, self.width = int(height), int(width)

    def call(self, inputs):
        return tf.raw_ops.ResizeBilinear(images=inputs, size=(self.height, self.width),
                                         align_corners=True, half_pixel_centers=False)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}


def hard_sigmoid(x, name: str):
    """h-sigmoid(x) = ReLU6(x + 3) / 6, as three quantizable layers."""
    x = AddConstant(3.0, name=f"{name}_add3")(x)
    x = layers.ReLU(6.0, name=f"{name}_relu6")(x)
    return Scale(1.0 / 6.0, name=f"{name}_div6")(x)


def hard_swish(x, name: str, form: str = "fused"):
    """h-swish(x) = x * ReLU6(x + 3) / 6; the output layer is called `name`.

    'fused': x * (ReLU6(x + 3) / 6), which the TFLite converter turns into one HARD_SWISH op
    (the fast float path). 'unfused': (x / 6) * ReLU6(x + 3), the same values in an order the
    converter leaves as ADD(+RELU6) and two MULs: XNNPACK runs those in int8, whereas it does
    not take the int8 HARD_SWISH op and cuts the graph into pieces around each one.
    'folded': x * ReLU6(x + 3), i.e. 6 * h-swish(x), one MUL fewer than 'unfused'; the 1/6 is
    carried by the kernels of the linear layers that consume it (`export.folding` divides
    them when it builds this form from trained weights, and carries the factor through a
    residual add). Only for exports: layer outputs differ by the factor 6.
    """
    if form == "fused":
        return layers.Multiply(name=name)([x, hard_sigmoid(x, name=f"{name}_hsig")])
    if form in ("unfused", "folded"):
        gate = AddConstant(3.0, name=f"{name}_add3")(x)
        gate = layers.ReLU(6.0, name=f"{name}_relu6")(gate)
        if form == "folded":
            return layers.Multiply(name=name)([x, gate])
        return layers.Multiply(name=name)([Scale(1.0 / 6.0, name=f"{name}_div6")(x), gate])
    raise ValueError(f"unknown hard_swish form {form!r}; expected one of {HARD_SWISH_FORMS}")


def _producer(tensor):
    history = getattr(tensor, "_keras_history", None)
    return history.layer if history is not None else None


def is_folded_hard_swish(layer) -> bool:
    """True for the output layer of a 'folded' h-swish: Multiply([x, ReLU6(x + 3)])."""
    if not isinstance(layer, layers.Multiply) or len(layer._inbound_nodes) != 1:
        return False
    inputs = layer._inbound_nodes[0].keras_inputs
    if len(inputs) != 2:
        return False
    relu = _producer(inputs[1])
    if not (isinstance(relu, layers.ReLU) and relu.max_value is not None
            and float(relu.max_value) == 6.0 and len(relu._inbound_nodes) == 1):
        return False
    add = _producer(relu._inbound_nodes[0].keras_inputs[0])
    return isinstance(add, AddConstant) and add.constant == 3.0 and \
        add._inbound_nodes[0].keras_inputs[0] is inputs[0]


def activation(x, nl: str, name: str, hard_swish_form: str = "fused"):
    """Applies the paper's non-linearity 'relu' (RE) or 'hard_swish' (HS); output layer `name`."""
    if nl == RE:
        return layers.ReLU(name=name)(x)
    if nl == HS:
        return hard_swish(x, name=name, form=hard_swish_form)
    raise ValueError(f"unknown non-linearity {nl!r}; expected {RE!r} or {HS!r}")


def squeeze_excite(x, squeeze_channels: int, name: str, regularizer=None):
    """Squeeze-and-excite on the expanded tensor: pool, 1x1 ReLU, 1x1 h-sigmoid, multiply.

    There is no BN inside SE; both 1x1 convs carry biases (paper section 5.3, slim).
    """
    channels = x.shape[-1]
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    s = layers.Conv2D(squeeze_channels, 1, kernel_regularizer=regularizer,
                      name=f"{name}_squeeze")(s)
    s = layers.ReLU(name=f"{name}_squeeze_relu")(s)
    s = layers.Conv2D(channels, 1, kernel_regularizer=regularizer, name=f"{name}_excite")(s)
    s = hard_sigmoid(s, name=f"{name}_gate")
    return layers.Multiply(name=f"{name}_mul")([x, s])


BatchNormFactory = Callable[[str], layers.Layer]
RegularizerOrNone = Optional[tf_keras.regularizers.Regularizer]


def conv_bn_act(x, filters: int, kernel: int, stride: int, nl: Optional[str], name: str,
                batch_norm: BatchNormFactory, regularizer: RegularizerOrNone = None,
                hard_swish_form: str = "fused"):
    """Conv (TF 'SAME' padding, no bias) + BN [+ non-linearity named `{name}_act`]."""
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                      kernel_regularizer=regularizer, name=name)(x)
    x = batch_norm(f"{name}_bn")(x)
    return activation(x, nl, f"{name}_act", hard_swish_form) if nl else x


def inverted_residual(x, block: ScaledBneck, name: str, batch_norm: BatchNormFactory,
                      regularizer: RegularizerOrNone = None, hard_swish_form: str = "fused"):
    """The bottleneck ('bneck'): expand 1x1, depthwise kxk, optional SE, linear project 1x1.

    The expansion is skipped when the expansion size equals the input channels; the
    residual add is present iff stride 1 and input channels == output channels.
    Depthwise kernels are never regularized (slim's convention).
    Returns (output, expansion output or None): detection heads tap the latter.
    """
    shortcut, expanded = x, None
    if block.has_expansion:
        x = expanded = conv_bn_act(x, block.exp, 1, 1, block.nl, f"{name}_expand", batch_norm,
                                   regularizer, hard_swish_form)
    x = layers.DepthwiseConv2D(block.kernel, strides=block.stride, padding="same",
                               dilation_rate=block.dilation, use_bias=False,
                               name=f"{name}_depthwise")(x)
    x = batch_norm(f"{name}_depthwise_bn")(x)
    x = activation(x, block.nl, f"{name}_depthwise_act", hard_swish_form)
    if block.se_channels:
        x = squeeze_excite(x, block.se_channels, f"{name}_se", regularizer)
    x = conv_bn_act(x, block.out, 1, 1, None, f"{name}_project", batch_norm, regularizer)
    if block.has_residual:
        x = layers.Add(name=f"{name}_add")([shortcut, x])
    return x, expanded
