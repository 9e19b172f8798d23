"""keras.applications' own MobileNetV3 test cases (keras/src/applications/applications_test.py,
the MobileNetV3Small/Large rows) on our builders, rewritten on tf_keras: no-top shapes for any
resolution and 1 or 4 channels, custom input shape and tensor, pooling, the classifier's
activation, serialisation round trip; and the base case (pretrained weights,
preprocess_input, decode_predictions) on Google's Small and real photos instead of the
downloaded elephant."""

import glob
import os

import numpy as np
import pytest
import tf_keras

import mobilenet_v3
from mobilenet_v3 import MobileNetV3Large, MobileNetV3Small

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared")
APPS = [(MobileNetV3Small, 576), (MobileNetV3Large, 960)]
IDS = ["small", "large"]


@pytest.mark.parametrize("app,last_dim", APPS, ids=IDS)
def test_notop_variable_input_channels(app, last_dim):
    for channels in (1, 4):
        model = app(weights=None, include_top=False, input_shape=(None, None, channels))
        assert list(model.outputs[0].shape) == [None, None, None, last_dim]


@pytest.mark.parametrize("app,last_dim", APPS, ids=IDS)
def test_notop_without_input_shape_takes_any_resolution(app, last_dim):
    model = app(weights=None, include_top=False)
    assert model.input_shape == (None, None, None, 3)
    assert list(model.outputs[0].shape) == [None, None, None, last_dim]
    for h, w in ((96, 128), (161, 65)):
        out = model(np.zeros((1, h, w, 3), np.float32), training=False)
        assert out.shape == (1, -(-h // 32), -(-w // 32), last_dim)
    # with the classifier the default stays the paper's 224x224
    assert app(weights=None).input_shape == (None, 224, 224, 3)


@pytest.mark.parametrize("app,last_dim", APPS, ids=IDS)
def test_notop_custom_input_shape_and_tensor(app, last_dim):
    model = app(weights=None, include_top=False, input_shape=(123, 123, 3))
    assert list(model.outputs[0].shape)[-1] == last_dim
    inputs = tf_keras.Input(shape=(200, 200, 4), name="custom_input")
    tensor = tf_keras.layers.Conv2D(3, (2, 2), padding="valid", strides=(2, 2))(inputs)
    model = app(weights=None, include_top=False, input_tensor=tensor)
    assert list(model.outputs[0].shape)[-1] == last_dim
    assert model.inputs[0].name.startswith("custom_input")


@pytest.mark.parametrize("app,last_dim", APPS, ids=IDS)
def test_pooling(app, last_dim):
    for pooling in ("max", "avg"):
        model = app(weights=None, include_top=False, pooling=pooling)
        assert list(model.outputs[0].shape) == [None, last_dim]


@pytest.mark.parametrize("app,last_dim", APPS, ids=IDS)
def test_classifier_activation_and_serialisation(app, last_dim):
    model = app(weights=None, include_top=True, classifier_activation="softmax")
    assert model.layers[-1].activation.__name__ == "softmax"
    config = tf_keras.saving.serialize_keras_object(model)
    rebuilt = tf_keras.saving.deserialize_keras_object(config)
    assert len(model.weights) == len(rebuilt.weights)
    assert model.__class__.from_config(model.get_config()).count_params() == \
        model.count_params()


def test_preprocess_input_is_the_identity_as_in_keras():
    x = np.random.RandomState(0).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_array_equal(mobilenet_v3.preprocess_input(x), x)
    keras_app = tf_keras.applications.mobilenet_v3
    np.testing.assert_array_equal(keras_app.preprocess_input(x), x)


def test_decode_predictions_names_the_classes_with_and_without_background():
    from mobilenet_v3.data import imagenet_classes
    preds = np.zeros((2, 1000), np.float32)
    preds[0, [1, 7]] = [0.9, 0.1]
    preds[1, 999] = 1.0
    decoded = mobilenet_v3.decode_predictions(preds, top=2)
    assert decoded[0] == [(imagenet_classes.wnids()[1], imagenet_classes.names()[1],
                           pytest.approx(0.9)),
                          (imagenet_classes.wnids()[7], imagenet_classes.names()[7],
                           pytest.approx(0.1))]
    assert decoded[0][0][0] == "n01443537" and "goldfish" in decoded[0][0][1]
    assert decoded[1][0][0] == imagenet_classes.wnids()[999]
    with_background = np.concatenate([np.full((2, 1), 5.0, np.float32), preds], 1)
    assert mobilenet_v3.decode_predictions(with_background, top=2) == decoded
    with pytest.raises(ValueError, match="1000"):
        mobilenet_v3.decode_predictions(np.zeros((1, 10)))


def test_base_case_pretrained_predictions_on_real_photos():
    """keras' test_application_base: pretrained weights, preprocess_input, predict,
    decode_predictions; the true class in the top 3 (a weak correctness test, as keras')."""
    weights = os.path.join(SHARED, "models", "v3-small_224_1.0_uint8.tflite")
    photos = sorted(glob.glob(os.path.join(SHARED, "datasets", "imagenet_samples", "*", "*")))
    if not os.path.isfile(weights) or not photos:
        pytest.skip("../shared (Google's Small and the ImageNet photos) not found")
    import tensorflow as tf
    model = MobileNetV3Small(weights=weights, classes=1001)
    picked = photos[::50]
    x = np.stack([tf.image.resize(tf.io.decode_jpeg(tf.io.read_file(p), 3), (224, 224))
                  .numpy() for p in picked])
    decoded = mobilenet_v3.decode_predictions(model.predict(mobilenet_v3.preprocess_input(x),
                                                            verbose=0), top=3)
    wnids = [os.path.basename(os.path.dirname(p)) for p in picked]
    hits = [wnid in [d[0] for d in top3] for wnid, top3 in zip(wnids, decoded)]
    assert np.mean(hits) >= 0.7, list(zip(wnids, decoded))
