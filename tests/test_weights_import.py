"""mobilenet_v3.weights: keras.applications .h5 round trips, a Slim-layout checkpoint imported
exactly (EMA shadows preferred), our own float TFLite imported back, and every bad input refused."""

import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from mobilenet_v3.bench.calibration import calibrate_batch_norm
from mobilenet_v3 import MobileNetV3Large, MobileNetV3Small, ModelConfig, build_model, weights
from mobilenet_v3.export import convert as conversion

# Its module-scoped fixtures are built once: keep the file on one xdist worker.
pytestmark = pytest.mark.xdist_group("weights_import")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 64
KERAS_APPS = {"large": tf_keras.applications.MobileNetV3Large,
              "small": tf_keras.applications.MobileNetV3Small}
OURS = {"large": MobileNetV3Large, "small": MobileNetV3Small}


def _images(n, seed=1, size=SIZE):
    return np.random.RandomState(seed).uniform(-1, 1, (n, size, size, 3)).astype(np.float32)


def _keras_app(name, alpha, minimalistic, include_top, seed=0):
    tf_keras.utils.set_random_seed(seed)
    return KERAS_APPS[name](input_shape=(SIZE, SIZE, 3), alpha=alpha, minimalistic=minimalistic,
                            include_top=include_top, weights=None,
                            classifier_activation=None, include_preprocessing=False)


def _ours(name, alpha, minimalistic, include_top, weights_path=None, **kw):
    return OURS[name](input_shape=(SIZE, SIZE, 3), alpha=alpha, minimalistic=minimalistic,
                      include_top=include_top, weights=weights_path, classifier_activation=None,
                      include_preprocessing=False, **kw)


@pytest.mark.parametrize("name,alpha,minimalistic", [
    ("large", 1.0, False), ("small", 1.0, False), ("small", 1.0, True), ("large", 0.75, False)])
def test_keras_applications_h5_round_trip(tmp_path, name, alpha, minimalistic):
    top = _keras_app(name, alpha, minimalistic, True)
    calibrate_batch_norm(top, _images(8, seed=3))   # outputs of order 1, not ~1e-8
    no_top = _keras_app(name, alpha, minimalistic, False)
    no_top.set_weights(top.get_weights()[:len(no_top.get_weights())])
    stem = f"weights_mobilenet_v3_{name}{'_minimalistic' if minimalistic else ''}_224_{alpha}_float"
    top.save_weights(str(tmp_path / f"{stem}.h5"))
    no_top.save_weights(str(tmp_path / f"{stem}_no_top_v2.h5"))
    x = _images(4)
    for reference, path, include_top in ((top, f"{stem}.h5", True),
                                         (no_top, f"{stem}_no_top_v2.h5", False)):
        ours = _ours(name, alpha, minimalistic, include_top, str(tmp_path / path))
        want, got = reference(x).numpy(), ours(x).numpy()
        assert np.abs(want).max() > 0.1, "reference outputs are trivially small"
        np.testing.assert_allclose(got, want.reshape(got.shape), rtol=0, atol=1e-5)


# ---- a checkpoint laid out like TF-Slim's (names from research/slim/nets/mobilenet) ----------

def _slim_names(config: ModelConfig):
    """[(kernel variable, bias variable or None, BN scope or None)] in execution order, written
    from the Slim sources (mobilenet_v3.py, conv_blocks.py), not from the importer."""
    arch, root = config.scaled_arch, "MobilenetV3"
    out = [(f"{root}/Conv/weights", None, f"{root}/Conv/BatchNorm")]
    for b in arch.blocks:
        s = f"{root}/expanded_conv" + (f"_{b.index - 1}" if b.index > 1 else "")
        if b.exp != b.in_channels:
            out.append((f"{s}/expand/weights", None, f"{s}/expand/BatchNorm"))
        out.append((f"{s}/depthwise/depthwise_weights", None, f"{s}/depthwise/BatchNorm"))
        if b.se_channels:
            for conv in ("Conv", "Conv_1"):
                se = f"{s}/squeeze_excite/{conv}"
                out.append((f"{se}/weights", f"{se}/biases", None))
        out.append((f"{s}/project/weights", None, f"{s}/project/BatchNorm"))
    out.append((f"{root}/Conv_1/weights", None, f"{root}/Conv_1/BatchNorm"))
    for s in (f"{root}/Conv_2", f"{root}/Logits/Conv2d_1c_1x1"):
        out.append((f"{s}/weights", f"{s}/biases", None))
    return out


def _write_slim_checkpoint(prefix, config):
    """Random variables with Slim's names (+ different EMA shadows); returns the values an
    importer must pick: {name: value} with the EMA value where a shadow exists."""
    model = build_model(config)   # only for the sizes of the random values
    convs = [l for l in model.layers if isinstance(
        l, (tf_keras.layers.Conv2D, tf_keras.layers.DepthwiseConv2D))]
    rng = np.random.RandomState(0)
    tensors, expected = {}, {}
    for (kernel, bias, bn), layer in zip(_slim_names(config), convs):
        k = layer.depthwise_kernel if isinstance(layer, tf_keras.layers.DepthwiseConv2D) \
            else layer.kernel
        n = k.shape[-2] if isinstance(layer, tf_keras.layers.DepthwiseConv2D) else k.shape[-1]
        trainable = {kernel: rng.normal(size=k.shape)}
        if bias:
            trainable[bias] = rng.normal(size=(n,))
        if bn:
            trainable[f"{bn}/gamma"] = rng.uniform(0.5, 1.5, n)
            trainable[f"{bn}/beta"] = rng.normal(size=n)
            for stat, value in ((f"{bn}/moving_mean", rng.normal(size=n)),
                                (f"{bn}/moving_variance", rng.uniform(0.5, 2.0, n))):
                tensors[stat] = expected[stat] = value
        for var, value in trainable.items():
            tensors[var] = value
            tensors[var + "/ExponentialMovingAverage"] = expected[var] = value + 1.0
    tensors["global_step"] = np.array(7)
    names = sorted(tensors)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(np.asarray(tensors[n], np.float32 if n != "global_step"
                                                      else np.int64)) for n in names])
    return expected


def _model_values(model):
    """Our model's conv/BN values in order, as (kernel, bias or None, [gamma, beta, mean, var])."""
    layers, out = model.layers, []
    for i, layer in enumerate(layers):
        if isinstance(layer, (tf_keras.layers.Conv2D, tf_keras.layers.DepthwiseConv2D)):
            w = layer.get_weights()
            bn = layers[i + 1].get_weights() if isinstance(
                layers[i + 1], tf_keras.layers.BatchNormalization) else None
            out.append((w[0], w[1] if len(w) > 1 else None, bn))
    return out


@pytest.fixture(scope="module")
def slim_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slim")
    config = ModelConfig.from_flat(name="small", alpha=0.5, input_shape=(SIZE, SIZE, 3), classes=1001)
    prefix = str(folder / "v3-small_224_0.5_float" / "ema" / "model-7")
    os.makedirs(os.path.dirname(prefix))
    expected = _write_slim_checkpoint(prefix, config)
    archive = str(folder / "v3-small_224_0.5_float.tgz")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(str(folder / "v3-small_224_0.5_float"), arcname="v3-small_224_0.5_float")
    return config, prefix, archive, expected


@pytest.mark.parametrize("form", ["prefix", "tgz"])
def test_slim_checkpoint_imports_exactly_with_ema(slim_checkpoint, form):
    config, prefix, archive, expected = slim_checkpoint
    model = build_model(config)
    weights.load_pretrained(model, prefix if form == "prefix" else archive, config)
    for (kernel, bias, bn), (k, b, stats) in zip(_slim_names(config), _model_values(model)):
        np.testing.assert_array_equal(k, expected[kernel].astype(np.float32))
        if bias:
            np.testing.assert_array_equal(b, expected[bias].astype(np.float32))
        if bn:
            for value, stat in zip(stats, ("gamma", "beta", "moving_mean", "moving_variance")):
                np.testing.assert_array_equal(value, expected[f"{bn}/{stat}"].astype(np.float32))


def test_slim_checkpoint_1001_to_1000_classes_and_no_top(slim_checkpoint):
    config, prefix, _, expected = slim_checkpoint
    logits = "MobilenetV3/Logits/Conv2d_1c_1x1"
    model = MobileNetV3Small(input_shape=(SIZE, SIZE, 3), alpha=0.5, classes=1000,
                             weights=prefix)
    k, b, _ = _model_values(model)[-1]
    np.testing.assert_array_equal(k, expected[f"{logits}/weights"][..., 1:].astype(np.float32))
    np.testing.assert_array_equal(b, expected[f"{logits}/biases"][1:].astype(np.float32))
    backbone = MobileNetV3Small(input_shape=(SIZE, SIZE, 3), alpha=0.5, include_top=False,
                                weights=prefix)
    k, _, stats = _model_values(backbone)[-1]
    np.testing.assert_array_equal(k, expected["MobilenetV3/Conv_1/weights"].astype(np.float32))
    assert weights.detect_config(weights.read_weights(prefix)).classes == 1001


# ---- TFLite: our own float export comes back (folded BN and folded SE +3) -----------------

@pytest.fixture(scope="module")
def our_tflite(tmp_path_factory):
    config = ModelConfig.from_flat(name="small", alpha=0.5, input_shape=(SIZE, SIZE, 3),
                         include_preprocessing=False, classifier_activation=None, classes=1001)
    tf_keras.utils.set_random_seed(0)
    model = build_model(config)
    calibrate_batch_norm(model, _images(8, seed=3))
    path = str(tmp_path_factory.mktemp("tflite") / "ours_float32.tflite")
    with open(path, "wb") as f:
        f.write(conversion.convert(model, "float32"))
    return config, model, path


def test_float_tflite_imports_back(our_tflite):
    config, reference, path = our_tflite
    assert weights.detect_config(weights.read_weights(path)).name == "small"
    model, summary = weights.weights_for(config, path)
    assert summary["bn_folded"]
    x = _images(4)
    want = reference(x).numpy()
    assert np.abs(want).max() > 0.1
    np.testing.assert_allclose(model(x).numpy(), want, rtol=0, atol=1e-4)


# ---- bad inputs ---------------------------------------------------------------------------

def _first_different_layer(model, other):
    """Name of the first conv of `model` whose kernel shape differs from `other`'s."""
    def kernels(m):
        return [(l.name, tuple(l.get_weights()[0].shape)) for l in m.layers if isinstance(
            l, (tf_keras.layers.Conv2D, tf_keras.layers.DepthwiseConv2D))]
    for (name, a), (_, b) in zip(kernels(model), kernels(other)):
        if a != b:
            return name
    raise AssertionError("the two models have the same kernels")


def test_wrong_architecture_names_the_first_layer_that_disagrees(our_tflite):
    config, small, path = our_tflite
    large = build_model(ModelConfig.from_flat(name="large", alpha=0.5, input_shape=(SIZE, SIZE, 3),
                                    classes=1001))
    with pytest.raises(weights.ArchitectureMismatchError) as e:
        weights.load_pretrained(large, path)
    message = str(e.value)
    assert repr(_first_different_layer(large, small)) in message
    assert "MobileNetV3-Small 0.5 (1001 classes)" in message
    with pytest.raises(weights.ArchitectureMismatchError, match="classes=1001"):
        weights.weights_for(ModelConfig.from_flat(name="small", alpha=0.5, input_shape=(SIZE, SIZE, 3),
                                        classes=10), path)


def test_missing_truncated_and_foreign_files(tmp_path, our_tflite, slim_checkpoint):
    _, _, path = our_tflite
    config = ModelConfig.from_flat(name="small", alpha=0.5, input_shape=(SIZE, SIZE, 3), classes=1001)
    model = build_model(config)
    missing = str(tmp_path / "v3-small_224_1.0_float.tflite")
    with pytest.raises(weights.WeightsNotFoundError, match="v3-small_224_1.0_float.tflite"):
        weights.load_pretrained(model, missing, config)
    for source in (path, slim_checkpoint[2]):
        data = open(source, "rb").read()
        cut = str(tmp_path / ("cut_" + os.path.basename(source)))
        with open(cut, "wb") as f:
            f.write(data[:len(data) // 2])
        with pytest.raises(weights.CorruptWeightsError, match="cut_"):
            weights.load_pretrained(model, cut, config)
    h5 = str(tmp_path / "weights_mobilenet_v3_small_224_1.0_float.h5")
    with open(h5, "wb") as f:
        f.write(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(weights.CorruptWeightsError, match="h5"):
        weights.load_pretrained(model, h5, config)
    tiny = tf_keras.Sequential([tf_keras.Input((8, 8, 3), batch_size=1),
                                tf_keras.layers.Conv2D(4, 3), tf_keras.layers.Flatten(),
                                tf_keras.layers.Dense(2)])
    other = str(tmp_path / "tiny.tflite")
    with open(other, "wb") as f:
        f.write(conversion.convert(tiny, "float32"))
    with pytest.raises(weights.NotMobileNetV3Error, match="tiny.tflite"):
        weights.load_pretrained(model, other, config)


def test_imagenet_with_empty_caches_lists_the_files_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setenv(weights.ENV_VAR, str(tmp_path / "empty"))
    with pytest.raises(weights.WeightsNotFoundError) as e:
        MobileNetV3Small(weights="imagenet")
    message = str(e.value)
    assert "https://storage.googleapis.com/mobilenet_v3/checkpoints/v3-small_224_1.0_float.tgz" \
        in message
    assert ("https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/"
            "weights_mobilenet_v3_small_224_1.0_float.h5") in message
    assert str(tmp_path / "empty") in message
    with pytest.raises(weights.WeightsNotFoundError, match="no ImageNet weights are published"):
        MobileNetV3Large(alpha=0.5, weights="imagenet")


def test_imagenet_is_found_in_the_weights_dir(tmp_path, monkeypatch, slim_checkpoint):
    _, _, archive, expected = slim_checkpoint
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv(weights.ENV_VAR, os.path.dirname(archive))
    with pytest.raises(weights.WeightsNotFoundError):     # only 0.5 is there, not 1.0
        MobileNetV3Small(weights="imagenet")
    # 0.5 is not a published variant: the catalog refuses before looking.
    with pytest.raises(weights.WeightsNotFoundError, match="published"):
        MobileNetV3Small(alpha=0.5, input_shape=(SIZE, SIZE, 3), weights="imagenet")


def _run(args):
    return subprocess.run([sys.executable] + args, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)


@pytest.mark.slow   # three subprocesses, ~25 s
def test_cli_errors_exit_1_without_traceback(tmp_path, our_tflite):
    _, _, path = our_tflite
    convert = _run(["-m", "mobilenet_v3.weights.convert", str(tmp_path / "nope.tflite"),
                    f"--output={tmp_path / 'out'}"])
    assert convert.returncode == 1
    assert "convert: weights file not found" in convert.stderr
    assert "Traceback" not in convert.stderr
    out = tmp_path / "converted"
    ok = _run(["-m", "mobilenet_v3.weights.convert", path, f"--output={out}", "--classes=1000",
               "--resolution=64"])
    assert ok.returncode == 0, ok.stderr
    assert sorted(os.listdir(out)) == ["labels.txt", "model.keras", "model_config.json"]
    labels = open(out / "labels.txt").read().splitlines()
    assert len(labels) == 1000 and labels[0].startswith("tench")
    evaluate = _run(["evaluate.py", f"--model={out}", f"--image_folder={tmp_path / 'none'}"])
    assert evaluate.returncode == 1
    assert "evaluate.py: image folder not found" in evaluate.stderr
    assert "Traceback" not in evaluate.stderr
