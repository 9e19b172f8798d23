import collections

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from mobilenet_v3 import ModelConfig, build_model
from mobilenet_v3.export import convert as conversion
from mobilenet_v3.analysis import tflite_inspect

from conftest import calibrated_model


def _hard_swish_count(model):
    """h-swish layers in the Keras model: Multiply layers fed by an h-sigmoid chain."""
    names = {layer.name for layer in model.layers}
    return sum(1 for layer in model.layers if isinstance(layer, tf_keras.layers.Multiply)
               and f"{layer.name}_hsig_add3" in names)


def _residual_count(model):
    return sum(1 for layer in model.layers if isinstance(layer, tf_keras.layers.Add))


@pytest.mark.parametrize("name, hswish", [("large", 21), ("small", 19)])
def test_float_graph_has_one_hard_swish_per_h_swish(name, hswish):
    model = build_model(ModelConfig.from_flat(name=name, include_preprocessing=False))
    assert _hard_swish_count(model) == hswish   # Table 1: stem, rows 7-15 x2, last conv, head
    ops = collections.Counter(tflite_inspect.op_names(conversion.convert(model)))
    assert ops["HARD_SWISH"] == hswish
    # no unfused h-swish: no RELU6 anywhere, ADD only for the residuals
    assert ops["RELU6"] == 0 and ops["ADD"] == _residual_count(model)
    assert ops["PAD"] == 0 and ops["SHAPE"] == 0 and ops["STRIDED_SLICE"] == 0
    assert not any(op.startswith(("VAR_HANDLE", "READ_VARIABLE")) for op in ops)
    convs = sum(1 for layer in model.layers if type(layer) is tf_keras.layers.Conv2D)
    assert ops["CONV_2D"] == convs


@pytest.mark.parametrize("name, alpha, resolution, preprocessing", [
    ("small", 0.75, 96, False), ("large", 0.5, 64, True)])
def test_float32_logits_match_keras(random_images, name, alpha, resolution, preprocessing):
    model = calibrated_model(ModelConfig.from_flat(
        name=name, alpha=alpha, input_shape=(resolution, resolution, 3), classes=10,
        classifier_activation=None, include_preprocessing=preprocessing))
    low, high = (0, 255) if preprocessing else (-1, 1)
    x = random_images(8, (resolution, resolution, 3), low, high)
    expected = model(x, training=False).numpy()
    assert np.abs(expected).max() > 0.1
    tflite = conversion.convert(model)
    got = tflite_inspect.run(tflite, x)
    assert np.abs(got - expected).max() <= 1e-4
    assert tflite_inspect.xnnpack_partitions(tflite) == 1


def test_bad_conversion_requests():
    model = build_model(ModelConfig.from_flat(name="small", alpha=0.35, input_shape=(None, None, 3)))
    with pytest.raises(ValueError, match="fixed input resolution"):
        conversion.convert(model)
    fixed = build_model(ModelConfig.from_flat(name="small", alpha=0.35, input_shape=(32, 32, 3)))
    with pytest.raises(ValueError, match="format"):
        conversion.convert(fixed, "int4")


def test_float16_dynamic_and_post_training_int8(random_images):
    model = calibrated_model(ModelConfig.from_flat(name="small", alpha=0.5, input_shape=(48, 48, 3),
                                         classes=10, classifier_activation=None,
                                         include_preprocessing=False))
    x = random_images(8, (48, 48, 3))
    expected = model(x, training=False).numpy()
    float32 = conversion.convert(model)
    float16 = conversion.convert(model, "float16")
    assert len(float16) < 0.6 * len(float32)            # fp16 weights
    assert np.abs(tflite_inspect.run(float16, x) - expected).max() <= 1e-2 * np.abs(
        expected).max()
    dynamic = conversion.convert(model, "dynamic")
    assert len(dynamic) < 0.4 * len(float32)            # int8 weights
    int8 = conversion.convert(model, "int8", representative_images=lambda: iter(x),
                              io_dtype=tf.int8)
    assert tflite_inspect.float_tensors_inside(int8) == []
    io = tflite_inspect.interpreter(int8).get_input_details()[0]
    assert io["dtype"] == np.int8
    got = tflite_inspect.run(int8, x)
    assert np.corrcoef(got.ravel(), expected.ravel())[0, 1] > 0.9
