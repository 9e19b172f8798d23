import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tf_keras  # noqa: E402

from benchmark.calibration import calibrate_batch_norm  # noqa: E402
from mobilenet_v3 import ModelConfig, build_model  # noqa: E402


def calibrated_model(config: ModelConfig, seed: int = 0) -> tf_keras.Model:
    """A randomly initialised model whose BN statistics come from real batches.

    With BN's initial moving statistics (mean 0, variance 1) an untrained MobileNetV3's
    logits are ~1e-8, which would make any numeric comparison pass trivially. A few
    training-mode passes give activations and logits of order 1.
    """
    tf_keras.utils.set_random_seed(seed)
    model = build_model(config)
    low, high = (0, 255) if config.include_preprocessing else (-1, 1)
    images = np.random.RandomState(seed).uniform(low, high, (8,) + tuple(config.input_shape))
    calibrate_batch_norm(model, images.astype(np.float32))
    return model


@pytest.fixture
def random_images():
    def make(n, shape, low=-1.0, high=1.0, seed=1):
        return np.random.RandomState(seed).uniform(low, high, (n,) + tuple(shape)).astype(
            np.float32)
    return make
