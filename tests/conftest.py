import dataclasses
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# As the entry scripts: tf.keras is tf_keras, and Keras 3 is not imported (subprocesses inherit).
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tf_keras  # noqa: E402

from mobilenet_v3.bench.calibration import calibrate_batch_norm  # noqa: E402
from mobilenet_v3 import ModelConfig, build_model  # noqa: E402
from mobilenet_v3.data import pipeline  # noqa: E402
from mobilenet_v3.training import TrainConfig, optimizer as optimizer_lib  # noqa: E402
from mobilenet_v3.training.schedule import ScheduleConfig  # noqa: E402


def calibrated_model(config: ModelConfig, seed: int = 0) -> tf_keras.Model:
    """A randomly initialised model whose BN statistics come from real batches.

    With BN's initial moving statistics (mean 0, variance 1) an untrained MobileNetV3's
    logits are ~1e-8, which would make any numeric comparison pass trivially. A few
    training-mode passes give activations and logits of order 1.
    """
    tf_keras.utils.set_random_seed(seed)
    model = build_model(config)
    low, high = (0, 255) if config.graph.include_preprocessing else (-1, 1)
    images = np.random.RandomState(seed).uniform(low, high, (8,) + tuple(config.input_shape))
    calibrate_batch_norm(model, images.astype(np.float32))
    return model


def tiny_train_config(model_dir, **overrides) -> TrainConfig:
    """Small 0.35 @32 on 2048 synthetic images, a rate and EMA that learn in ~200 steps."""
    config = TrainConfig(
        model_dir=str(model_dir),
        model=ModelConfig.from_flat(name="small", alpha=0.35, weight_decay=1e-5),
        data=pipeline.DataConfig(image_size=32, synthetic_train_examples=2048,
                                 synthetic_eval_examples=256, min_crop_area=0.25),
        schedule=ScheduleConfig(base_learning_rate=0.8, warmup_epochs=1),
        optimizer=optimizer_lib.OptimizerConfig(ema_momentum=0.99),
        global_batch_size=32, epochs=4, log_every_steps=64, checkpoint_every_steps=128)
    return dataclasses.replace(config, **overrides)


@pytest.fixture
def random_images():
    def make(n, shape, low=-1.0, high=1.0, seed=1):
        return np.random.RandomState(seed).uniform(low, high, (n,) + tuple(shape)).astype(
            np.float32)
    return make


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cases(script, cases, timeout=900):
    """Each flag list of `cases` through `script`'s main() (train.py, export_tflite.py, ...),
    in order, in one process (tests/script_cases.py): [{"args", "code", "stdout", "stderr"}].
    One TensorFlow start-up for all of them instead of one each."""
    fd, results = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    env.pop("TF_CONFIG", None)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "script_cases.py"),
                           script, results], input=json.dumps(cases), capture_output=True,
                          text=True, env=env, timeout=timeout)
    try:
        assert proc.returncode == 0, proc.stderr[-3000:]
        with open(results) as f:
            return json.load(f)
    finally:
        os.remove(results)


def tiny_detector(classes=3, seed=0, images=8):
    """(config, model, images): an SSDLite on Small 0.35 (reduced tail) at 64x64 with random
    weights and BN statistics of `images` random [-1, 1] images (for export tests)."""
    import numpy as np
    import tensorflow as tf
    from mobilenet_v3.bench.calibration import calibrate_batch_norm
    from mobilenet_v3.modeling.heads.ssdlite import DetectorConfig, build_ssdlite
    config = DetectorConfig.create(classes=classes, name="small", alpha=0.35, reduced_tail=True,
                                   input_shape=(64, 64, 3), include_preprocessing=False)
    tf.keras.utils.set_random_seed(seed)
    model = build_ssdlite(config)
    batch = np.random.RandomState(0).uniform(-1, 1, (images, 64, 64, 3)).astype(np.float32)
    calibrate_batch_norm(model, batch)
    return config, model, batch
