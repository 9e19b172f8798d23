import collections

import numpy as np
import pytest
import tensorflow as tf

from mobilenet_v3 import ModelConfig, build_model
from mobilenet_v3.export import convert as conversion
from mobilenet_v3.export.compression import qat as quantization
from mobilenet_v3.analysis import tflite_inspect

from conftest import calibrated_model


@pytest.mark.slow
def test_qat_model_converts_to_all_int8_and_agrees(random_images):
    float_model = calibrated_model(ModelConfig.from_flat(
        name="small", alpha=0.5, input_shape=(64, 64, 3), classes=10,
        classifier_activation=None, include_preprocessing=False))
    qat = quantization.quantize_model(float_model)
    # every layer of the float model is wrapped for quantization; nothing is left out
    wrapped = collections.Counter(type(l.layer).__name__ for l in qat.layers
                                  if type(l).__name__ == "QuantizeWrapperV2")
    original = collections.Counter(type(l).__name__ for l in float_model.layers[1:])
    assert wrapped == original
    assert {type(l).__name__ for l in qat.layers} == {
        "InputLayer", "QuantizeLayer", "QuantizeWrapperV2"}
    # a few steps let the fake-quant ranges settle on real activations
    x = random_images(32, (64, 64, 3))
    y = float_model(x, training=False).numpy()
    qat.compile("sgd", loss="mse")
    qat.fit(x, y, batch_size=8, epochs=2, verbose=0)
    tflite = conversion.convert(qat, "int8", io_dtype=tf.int8)
    assert tflite_inspect.float_tensors_inside(tflite) == []
    ops = tflite_inspect.op_histogram(tflite)
    assert "QUANTIZE" not in ops and "DEQUANTIZE" not in ops, ops
    expected = qat(x, training=False).numpy()
    assert np.abs(expected).max() > 0.1
    got = tflite_inspect.run(tflite, x)
    # The int8 graph tracks the fake-quant Keras graph. (On this random, barely-calibrated
    # network the two differ by ~20% of the logits' spread, since the converter folds BN into
    # the conv before quantizing its weights; issue 4 measures agreement on a trained model.)
    correlation = np.corrcoef(got.ravel(), expected.ravel())[0, 1]
    assert correlation > 0.9, correlation


def test_quantize_model_rejects_in_graph_preprocessing():
    model = build_model(ModelConfig.from_flat(name="small", alpha=0.35, input_shape=(32, 32, 3)))
    with pytest.raises(ValueError, match="include_preprocessing=False"):
        quantization.quantize_model(model)
