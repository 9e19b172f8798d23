import numpy as np
import tf_keras

from mobilenet_v3.modeling.layers import AddConstant, Scale, hard_sigmoid, hard_swish, squeeze_excite


def _apply(fn, x):
    inputs = tf_keras.Input(x.shape[1:])
    return tf_keras.Model(inputs, fn(inputs))(x).numpy()


def test_hard_sigmoid_and_hard_swish_numerics():
    x = np.linspace(-8, 8, 1601, dtype=np.float32)[None, :]
    expected_sigmoid = np.minimum(np.maximum(x + 3, 0), 6) / 6
    np.testing.assert_allclose(_apply(lambda t: hard_sigmoid(t, "hs"), x), expected_sigmoid,
                               atol=1e-6)
    np.testing.assert_allclose(_apply(lambda t: hard_swish(t, "hw"), x), x * expected_sigmoid,
                               atol=1e-6)
    # the defining points: 0 below -3, identity above 3, h-sigmoid(0) = 0.5
    y = _apply(lambda t: hard_swish(t, "hw"), np.array([[-4.0, -3.0, 0.0, 3.0, 5.0]], np.float32))
    np.testing.assert_allclose(y, [[0, 0, 0, 3, 5]], atol=1e-6)
    s = _apply(lambda t: hard_sigmoid(t, "hs"), np.array([[0.0]], np.float32))
    assert s[0, 0] == 0.5


def test_hard_swish_is_a_chain_of_quantizable_layers():
    inputs = tf_keras.Input((4,))
    model = tf_keras.Model(inputs, hard_swish(inputs, "act"))
    kinds = [type(layer).__name__ for layer in model.layers[1:]]
    assert kinds == ["AddConstant", "ReLU", "Scale", "Multiply"]
    assert model.layers[-1].name == "act"


def test_constant_layers_round_trip_through_config():
    a = AddConstant.from_config(AddConstant(3.0, name="a").get_config())
    s = Scale.from_config(Scale(0.5, name="s").get_config())
    assert (a.constant, a.name, s.factor, s.name) == (3.0, "a", 0.5, "s")


def test_squeeze_excite_structure_and_gate():
    inputs = tf_keras.Input((5, 5, 32))
    model = tf_keras.Model(inputs, squeeze_excite(inputs, 8, "se"))
    squeeze, excite = model.get_layer("se_squeeze"), model.get_layer("se_excite")
    assert squeeze.filters == 8 and excite.filters == 32
    assert squeeze.use_bias and excite.use_bias
    assert not any(isinstance(layer, tf_keras.layers.BatchNormalization) for layer in model.layers)
    # the output is the input scaled per channel by a gate in [0, 1]
    x = np.random.RandomState(0).normal(size=(2, 5, 5, 32)).astype(np.float32)
    y = model(x).numpy()
    gate = y / x
    assert np.all(gate >= -1e-6) and np.all(gate <= 1 + 1e-6)
    np.testing.assert_allclose(gate, gate[:, :1, :1, :].repeat(5, 1).repeat(5, 2), rtol=1e-4)
