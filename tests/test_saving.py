import numpy as np
import pytest
import tf_keras

from mobilenet_v3 import ModelConfig

from conftest import calibrated_model

# Its module-scoped fixtures are built once: keep the file on one xdist worker.
pytestmark = pytest.mark.xdist_group("saving")


@pytest.fixture(scope="module")
def model():
    return calibrated_model(ModelConfig.from_flat(name="small", alpha=0.5, input_shape=(64, 64, 3),
                                        classes=10, classifier_activation=None))


@pytest.mark.parametrize("filename", ["model.keras", "model.h5", "savedmodel"])
def test_save_and_reload_give_identical_outputs(tmp_path, model, random_images, filename):
    x = random_images(4, (64, 64, 3), 0, 255)
    expected = model(x, training=False).numpy()
    assert np.abs(expected).max() > 0.1   # a real signal, not vanishing activations
    path = str(tmp_path / filename)
    model.save(path) if filename != "savedmodel" else model.save(path, save_format="tf")
    # no custom_objects needed: our layers are registered serializables
    loaded = tf_keras.models.load_model(path)
    np.testing.assert_array_equal(loaded(x, training=False).numpy(), expected)
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]
