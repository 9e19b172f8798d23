"""Transfer learning in-process: --init_weights loads the backbone (any resolution) with a new
head, a resumed run restores its checkpoint instead, and a frozen backbone stays as imported
until the unfreeze step, with optimizer slots and EMA for every variable across it."""

import dataclasses
import shutil

import numpy as np
import pytest
import tf_keras

from mobilenet_v3 import ModelConfig, build_model
from mobilenet_v3.export import convert as conversion
from mobilenet_v3.training import Trainer, ema, transfer
from mobilenet_v3.weights import ArchitectureMismatchError
from mobilenet_v3.weights.convert import write_folder

from conftest import calibrated_model, tiny_train_config

# Its module-scoped fixtures are built once: keep the file on one xdist worker.
pytestmark = pytest.mark.xdist_group("transfer")

SOURCE = dict(name="small", alpha=0.35, input_shape=(32, 32, 3), include_preprocessing=False,
              classifier_activation=None)


def _images(size, n=4):
    return np.random.RandomState(5).uniform(-1, 1, (n, size, size, 3)).astype(np.float32)


def _tap(model, layer):
    return tf_keras.Model(model.input, model.get_layer(layer).output)


def _backbone_state(model):
    """Every weight of the backbone, BN moving statistics included."""
    return {w.name: w.numpy() for layer in transfer.backbone_layers(model) for w in layer.weights}


def _head_state(model):
    return {w.name: w.numpy() for name in ("head", "logits") for w in model.get_layer(name).weights}


def _config(tmp_path, **overrides):
    config = tiny_train_config(tmp_path, epochs=1, checkpoint_every_steps=2, log_every_steps=2,
                               **overrides)
    return dataclasses.replace(config, data=dataclasses.replace(
        config.data, synthetic_train_examples=256))


@pytest.fixture(scope="module")
def official_like_tflite(tmp_path_factory):
    """Our own Small 0.35 with 1001 classes as a float TFLite file (BN folded, like Google's)."""
    model = calibrated_model(ModelConfig.from_flat(classes=1001, **SOURCE), seed=3)
    path = tmp_path_factory.mktemp("tflite") / "small_0.35_1001.tflite"
    path.write_bytes(conversion.convert(model, "float32"))
    return model, str(path)


def test_init_weights_loads_the_backbone_at_another_resolution_with_a_new_head(
        tmp_path, official_like_tflite):
    source, path = official_like_tflite
    config = _config(tmp_path / "run", init_weights=path, train_steps=2)
    config.data.image_size = 48                      # the file was exported at 32
    trainer = Trainer(config)
    assert trainer.restore_or_initialize() == 0
    model, x = trainer.model, _images(48)
    at_48 = build_model(ModelConfig.from_flat(**dict(SOURCE, classes=1001, input_shape=(48, 48, 3))))
    at_48.set_weights(source.get_weights())          # the file's network, run at 48
    for layer in ("lastconv_act", "head_act"):      # the backbone and the head conv compute
        want = _tap(at_48, layer)(x).numpy()        # what the file's network computes
        assert np.abs(want).max() > 0.1
        np.testing.assert_allclose(_tap(model, layer)(x).numpy(), want, rtol=0,
                                   atol=1e-3 * np.abs(want).max())   # BN folded in float32
    # BN folded in the file: statistics re-estimated on training images (the function above
    # unchanged), not the identity (mean 0, variance 1 - eps) the folded file implies.
    bn = model.get_layer("stem_bn")
    assert np.all(bn.moving_mean.numpy() != 0.0)
    assert np.all(np.abs(bn.moving_variance.numpy() - (1 - bn.epsilon)) > 1e-3)
    assert model.output_shape == (None, 10)          # the dataset's classes, not 1001
    assert model.get_layer("logits").kernel.shape[-1] == 10
    # The EMA starts at the imported weights, not at the random ones they replaced.
    variables = ema.averaged_variables(model, trainer.optimizer)
    assert len(variables) == len(model.trainable_variables)
    for v, a in zip(variables, ema.ema_values(trainer.optimizer, variables)):
        np.testing.assert_array_equal(a.numpy(), v.numpy())
    stem = model.get_layer("stem").kernel
    stem.assign(stem * 2.0)                           # what a checkpoint holds, not the file
    trainer.save_checkpoint()
    saved = _backbone_state(model)

    # A resumed run restores its checkpoint and never reads the file (here: gone).
    config.init_weights = str(tmp_path / "moved_away.tflite")
    resumed = Trainer(config)
    assert resumed.restore_or_initialize() == 0
    for name, value in _backbone_state(resumed.model).items():
        np.testing.assert_array_equal(value, saved[name])


def test_a_file_of_another_architecture_is_refused_naming_the_difference(
        tmp_path, official_like_tflite):
    _, path = official_like_tflite
    config = _config(tmp_path / "run", init_weights=path,
                     model=ModelConfig.from_flat(name="small", alpha=0.5))
    with pytest.raises(ArchitectureMismatchError, match="--alpha: the file has 0.35, the run 0.5"):
        Trainer(config)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_frozen_backbone_stays_as_imported_then_trains_and_resumes_across_the_unfreeze(tmp_path):
    # Source: one of our own models with the dataset's 10 classes (its logits are kept).
    source_config = ModelConfig.from_flat(classes=10, **SOURCE)
    write_folder(calibrated_model(source_config, seed=4), source_config, str(tmp_path / "src"))
    config = _config(tmp_path / "straight", init_weights=str(tmp_path / "src"),
                     freeze_backbone_epochs=0.5, train_steps=8)      # 8 steps/epoch: unfreeze at 4
    straight = Trainer(config)
    assert straight.unfreeze_step == 4
    straight.restore_or_initialize()
    model, opt = straight.model, straight.optimizer
    imported, head = _backbone_state(model), _head_state(model)
    source = tf_keras.models.load_model(str(tmp_path / "src" / "model.keras"))
    np.testing.assert_array_equal(model.get_layer("logits").kernel.numpy(),
                                  source.get_layer("logits").kernel.numpy())

    straight.train(max_steps=3)                                      # frozen phase
    for name, value in _backbone_state(model).items():              # weights and BN statistics
        np.testing.assert_array_equal(value, imported[name], err_msg=name)
    assert all(not np.array_equal(v, head[k]) for k, v in _head_state(model).items())
    straight.save_checkpoint()                                       # "killed" at step 3
    shutil.copytree(tmp_path / "straight", tmp_path / "resumed")

    straight.train()                                                 # across the unfreeze
    after = _backbone_state(model)
    changed = [k for k, v in after.items() if not np.array_equal(v, imported[k])]
    assert len(changed) == len(after)      # every kernel, BN gamma/beta and moving statistic
    # tf_keras builds an optimizer once: the slots and EMA must already cover the backbone.
    variables = ema.averaged_variables(model, opt)
    assert {id(v) for v in model.trainable_variables} <= {id(v) for v in variables}
    backbone = {id(w) for layer in transfer.backbone_layers(model) for w in layer.trainable_weights}
    for v, a in zip(variables, ema.ema_values(opt, variables)):
        if id(v) in backbone:
            assert not np.array_equal(a.numpy(), imported[v.name])
    final = {w.name: w.numpy() for w in model.weights}

    resumed = Trainer(dataclasses.replace(config, model_dir=str(tmp_path / "resumed")))
    assert resumed.restore_or_initialize() == 3
    resumed.train()
    for w in resumed.model.weights:
        np.testing.assert_allclose(w.numpy(), final[w.name], rtol=1e-4, atol=1e-5,
                                   err_msg=w.name)
