"""The training library in-process: the demo learns, the EMA is what gets evaluated and saved,
the learning rate follows the paper, and bad settings are refused."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from mobilenet_v3.training import ema, optimizer as optimizer_lib
from mobilenet_v3.data import pipeline
from mobilenet_v3 import ModelConfig
from mobilenet_v3.training.schedule import ScheduleConfig
from mobilenet_v3.training import Trainer
from mobilenet_v3.training.ema import ema_weights

from conftest import tiny_train_config


@pytest.mark.slow
def test_demo_trains_well_above_chance_and_saves_the_evaluated_model(tmp_path):
    trainer = Trainer(tiny_train_config(tmp_path))
    result = trainer.run()
    assert result["step"] == 256 and result["ema"]
    assert result["top1"] > 0.5, result          # 10 classes: chance is 0.1
    final = tmp_path / "final"
    assert json.loads((final / "eval.json").read_text())["top1"] == result["top1"]
    assert (final / "labels.txt").read_text().split() == [f"class_{i}" for i in range(10)]
    config = json.loads((final / "model_config.json").read_text())
    assert config["classes"] == 10 and config["input_shape"] == [32, 32, 3]
    # The saved model is the evaluated one: same top-1 when reloaded and run on the eval set.
    model = tf_keras.models.load_model(str(final / "model.keras"))
    correct = total = 0
    source = pipeline.open_source(trainer.config.data)
    ctx = tf.distribute.InputContext()
    for images, labels in pipeline.eval_dataset(source, trainer.config.data, 64, ctx):
        predictions = np.argmax(model(images, training=False).numpy(), axis=-1)
        real = labels.numpy() >= 0
        correct += int((predictions[real] == labels.numpy()[real]).sum())
        total += int(real.sum())
    assert total == 256 and correct / total == pytest.approx(result["top1"])
    assert sorted(os.listdir(tmp_path / "checkpoints"))[0] == "checkpoint"


def test_evaluated_weights_are_the_ema_of_the_live_weights(tmp_path):
    config = tiny_train_config(tmp_path, train_steps=6, epochs=1,
                         optimizer=optimizer_lib.OptimizerConfig(ema_momentum=0.5))
    trainer = Trainer(config)
    variables = trainer.model.trainable_variables
    expected = [v.numpy() for v in variables]          # the EMA starts at the initial weights
    for t in range(6):
        trainer.train(max_steps=1)
        decay = min(0.5, (1 + t) / (10 + t))            # Slim's warm-up of the decay
        expected = [decay * e + (1 - decay) * v.numpy() for e, v in zip(expected, variables)]
    averages = ema.ema_values(trainer.optimizer, variables)
    for e, a in zip(expected, averages):
        np.testing.assert_allclose(a.numpy(), e, rtol=1e-5, atol=1e-6)
    live = [v.numpy() for v in variables]
    assert any(not np.allclose(l, e) for l, e in zip(live, expected))
    with ema_weights(trainer.model, trainer.optimizer):
        for v, e in zip(variables, expected):
            np.testing.assert_allclose(v.numpy(), e, rtol=1e-5, atol=1e-6)
    for v, l in zip(variables, live):                   # live weights are back afterwards
        np.testing.assert_array_equal(v.numpy(), l)
    # evaluate() uses the EMA: equal to evaluating live weights after copying the EMA in.
    ema_result = trainer.evaluate()
    for v, e in zip(variables, expected):
        v.assign(e)
    assert trainer.evaluate(use_ema=False)["top1"] == ema_result["top1"]


def test_learning_rate_is_the_papers_at_chosen_steps(tmp_path):
    config = tiny_train_config(tmp_path, global_batch_size=32,
                         schedule=ScheduleConfig(),              # the paper's defaults
                         data=pipeline.DataConfig(image_size=32, synthetic_train_examples=320))
    trainer = Trainer(config)                                    # 10 steps per epoch
    lr = trainer.learning_rate
    peak = 0.1 * 32 / 4096
    warm_end = peak * 0.99 ** (50 // 30)                         # warm-up: 5 epochs = 50 steps
    assert float(lr(25)) == pytest.approx(warm_end * 25 / 50, rel=1e-6)
    assert float(lr(50)) == pytest.approx(peak * 0.99 ** 1, rel=1e-6)
    assert float(lr(89)) == pytest.approx(peak * 0.99 ** 2, rel=1e-6)   # staircase every 3 ep
    assert float(lr(90)) == pytest.approx(peak * 0.99 ** 3, rel=1e-6)
    opt = optimizer_lib.inner_optimizer(trainer.optimizer)
    assert (opt.rho, opt.momentum, opt.epsilon) == (0.9, 0.9, 0.002)
    assert trainer.task.loss_fn.get_config()["label_smoothing"] == 0.1


def test_rmsprop_puts_epsilon_inside_the_square_root():
    var = tf.Variable([1.0])
    opt = optimizer_lib.build_optimizer(
        optimizer_lib.OptimizerConfig(momentum=0.0, use_ema=False), learning_rate=0.1)
    opt.apply_gradients([(tf.constant([0.5]), var)])
    ms = 0.1 * 0.25                                              # (1 - rho) * g^2
    assert var.numpy()[0] == pytest.approx(1.0 - 0.1 * 0.5 / np.sqrt(ms + 0.002), rel=1e-6)


def test_bad_settings_are_refused_before_anything_is_written(tmp_path):
    for overrides, message in (({"global_batch_size": 0}, "global_batch_size"),
                               ({"strategy": "horovod"}, "unknown strategy"),
                               ({"precision": "int4"}, "unknown precision"),
                               ({"label_smoothing": 1.5}, "label_smoothing"),
                               ({"freeze_backbone_epochs": 1.0}, "needs init_weights")):
        with pytest.raises(ValueError, match=message):
            Trainer(tiny_train_config(tmp_path / "run", **overrides))
    assert not (tmp_path / "run").exists()


def test_a_model_dir_of_another_model_is_not_resumed(tmp_path):
    Trainer(tiny_train_config(tmp_path, train_steps=1, epochs=1)).run()
    other = tiny_train_config(tmp_path, train_steps=2, model=ModelConfig.from_flat(name="small", alpha=0.5))
    with pytest.raises(ValueError, match="different model"):
        Trainer(other).run()
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["checkpoint", "ckpt-1.data-00000-of-00001",
                                                            "ckpt-1.index"]


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_trains_with_float32_variables(tmp_path, policy):
    trainer = Trainer(tiny_train_config(tmp_path, precision=policy, train_steps=3, epochs=1,
                                        global_batch_size=4))
    # Loss scaling is for float16 only (bfloat16 has float32's exponent range).
    assert isinstance(trainer.optimizer, tf_keras.mixed_precision.LossScaleOptimizer) == \
        (policy == "mixed_float16")
    conv = trainer.model.get_layer("stem")
    assert conv.compute_dtype == policy.split("_")[1] and conv.dtype == "float32"
    assert tf_keras.mixed_precision.global_policy().name == "float32"   # restored after build
    before = [v.numpy() for v in trainer.model.trainable_variables]
    trainer.train(max_steps=3)
    after = [v.numpy() for v in trainer.model.trainable_variables]
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))
    assert all(np.isfinite(a).all() for a in after)
    assert ema.ema_values(trainer.optimizer, trainer.model.trainable_variables)


def test_strategy_errors_are_clear(monkeypatch):
    from mobilenet_v3.training import distribution
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs TF_CONFIG"):
        distribution.make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        distribution.make_strategy("multi_worker")
    with pytest.raises(ValueError, match="unknown strategy"):
        distribution.make_strategy("parameter_server")
    assert distribution.mixed_precision_policy("auto", "tpu") == "mixed_bfloat16"
    assert distribution.mixed_precision_policy("auto", "mirrored") == "float32"


STALLED_STEP = """
import sys
import tensorflow as tf
from mobilenet_v3.training.checkpoints import SigtermFlag
never = tf.data.Dataset.range(10 ** 15).filter(lambda x: x < 0)
with SigtermFlag(grace_seconds=1.0):
    print("ready", flush=True)
    next(iter(never))          # a step whose input never comes
print("returned", flush=True)
"""


def test_sigterm_is_not_held_off_by_a_stalled_input_pipeline():
    import signal
    import subprocess
    import sys
    import time
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen([sys.executable, "-c", STALLED_STEP], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err[-2000:]
    assert "did not finish within 1 s" in err and "Traceback" not in err
