import numpy as np
import pytest
import tf_keras

from mobilenet_v3 import ModelConfig, MobileNetV3Large, MobileNetV3Small, build_model, specs
from mobilenet_v3.modeling.layers import AddConstant


def _trainable(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def test_exact_parameter_counts_at_1000_classes():
    # torchvision and keras.applications agree on these (PAPER.md).
    assert _trainable(MobileNetV3Large()) == 5_483_032
    assert _trainable(MobileNetV3Small()) == 2_542_856


@pytest.mark.parametrize("builder, alpha, resolution", [
    (MobileNetV3Large, 1.0, 224), (MobileNetV3Large, 0.35, 96), (MobileNetV3Large, 0.75, 33),
    (MobileNetV3Small, 1.25, 160), (MobileNetV3Small, 0.5, 32), (MobileNetV3Small, 1.0, 67),
])
def test_output_and_feature_shapes(builder, alpha, resolution):
    model = builder(input_shape=(resolution, resolution, 3), alpha=alpha, classes=7)
    assert model.output_shape == (None, 7)
    features = builder(input_shape=(resolution, resolution, 3), alpha=alpha, include_top=False)
    final = -(-resolution // 32)   # TF 'SAME' padding: ceil at each stride 2
    arch = specs.scale_arch(specs.get_arch(builder.__name__[11:].lower()), alpha)
    assert features.output_shape == (None, final, final, arch.last_conv_channels)


def test_dynamic_resolution_and_pooling():
    model = MobileNetV3Small(input_shape=(None, None, 3), include_top=False, pooling="avg",
                             alpha=0.35)
    assert model.output_shape == (None, 200)
    for size in (32, 75):
        x = np.zeros((1, size, size, 3), np.float32)
        assert model(x).shape == (1, 200)
    maxpooled = MobileNetV3Small(include_top=False, pooling="max", alpha=0.35)
    assert maxpooled.output_shape == (None, 200)


def test_softmax_logits_and_1001_classes():
    model = MobileNetV3Small(input_shape=(64, 64, 3), alpha=0.35, classes=1001)
    x = np.random.RandomState(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    y = model(x).numpy()
    assert y.shape == (2, 1001)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)
    logits = MobileNetV3Small(input_shape=(64, 64, 3), alpha=0.35, classes=1001,
                              classifier_activation=None)
    assert logits.get_layer("predictions").activation.__name__ == "linear"


def _activation_kind(model, name):
    layer = model.get_layer(name)
    if isinstance(layer, tf_keras.layers.ReLU):
        return specs.RE
    if isinstance(layer, tf_keras.layers.Multiply) and \
            isinstance(model.get_layer(f"{name}_hsig_add3"), AddConstant):
        return specs.HS
    raise AssertionError(f"{name} is neither ReLU nor h-swish")


@pytest.mark.parametrize("name, minimalistic", [
    ("large", False), ("small", False), ("large", True), ("small", True)])
def test_every_row_has_its_kernel_se_residual_and_nonlinearity(name, minimalistic):
    config = ModelConfig.from_flat(name=name, minimalistic=minimalistic, include_preprocessing=False)
    model = build_model(config)
    names = {layer.name for layer in model.layers}
    table = specs.get_arch(name).blocks
    for i, (row, block) in enumerate(zip(table, config.scaled_arch.blocks), start=1):
        kernel = 3 if minimalistic else row.kernel
        nl = specs.RE if minimalistic else row.nl
        se = row.se and not minimalistic
        depthwise = model.get_layer(f"bneck{i}_depthwise")
        assert depthwise.kernel_size == (kernel, kernel), i
        assert depthwise.strides == (row.stride, row.stride), i
        assert depthwise.padding == "same"
        assert (f"bneck{i}_se_mul" in names) == se, i
        assert (f"bneck{i}_add" in names) == block.has_residual, i
        assert (f"bneck{i}_expand" in names) == (row.exp != block.in_channels), i
        assert _activation_kind(model, f"bneck{i}_depthwise_act") == nl, i
        if f"bneck{i}_expand" in names:
            assert model.get_layer(f"bneck{i}_expand").filters == row.exp
            assert _activation_kind(model, f"bneck{i}_expand_act") == nl, i
        project = model.get_layer(f"bneck{i}_project")
        assert project.filters == row.out
        # the projection is linear: its BN output feeds the add or the next block directly
        assert f"bneck{i}_project_act" not in names
    first = specs.RE if minimalistic else specs.HS
    for act in ("stem_act", "lastconv_act", "head_act"):
        assert _activation_kind(model, act) == first
    assert model.get_layer("head").use_bias
    assert not any(isinstance(layer, tf_keras.layers.ZeroPadding2D) for layer in model.layers)


def test_batch_norm_settings():
    model = MobileNetV3Small(alpha=0.35, input_shape=(32, 32, 3))
    bns = [layer for layer in model.layers
           if isinstance(layer, tf_keras.layers.BatchNormalization)]
    assert bns and all(bn.momentum == 0.99 and bn.epsilon == 1e-3 for bn in bns)


def test_weight_decay_skips_depthwise_kernels():
    model = build_model(ModelConfig.from_flat(name="small", alpha=0.35, input_shape=(32, 32, 3),
                                    weight_decay=1e-5))
    for layer in model.layers:
        if isinstance(layer, tf_keras.layers.DepthwiseConv2D):
            assert layer.depthwise_regularizer is None
        elif isinstance(layer, tf_keras.layers.Conv2D):
            assert layer.kernel_regularizer is not None, layer.name
    assert len(model.losses) == sum(
        1 for layer in model.layers if type(layer) is tf_keras.layers.Conv2D)


def test_preprocessing_maps_pixels_to_minus_one_one():
    model = MobileNetV3Small(alpha=0.35, input_shape=(32, 32, 3))
    layer = model.get_layer("preprocess")
    np.testing.assert_allclose(layer(np.array([0.0, 127.5, 255.0])).numpy(), [-1, 0, 1],
                               atol=1e-6)
    assert "preprocess" not in {
        l.name for l in MobileNetV3Small(alpha=0.35, include_preprocessing=False).layers}


@pytest.mark.parametrize("kwargs, argument", [
    (dict(alpha=0), "alpha"), (dict(alpha=-0.5), "alpha"),
    (dict(input_shape=(31, 224, 3)), "resolution"), (dict(input_shape=(224, 16, 3)), "resolution"),
    (dict(classes=0), "classes"), (dict(pooling="sum", include_top=False), "pooling"),
    (dict(input_shape=(224, 224)), "input_shape"),
])
def test_bad_arguments_raise_value_error_naming_them(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        MobileNetV3Large(**kwargs)


def test_unknown_model_name_is_a_value_error():
    with pytest.raises(ValueError, match="model name"):
        build_model(ModelConfig.from_flat(name="tiny"))


def test_imagenet_weights_fail_clearly_and_paths_load(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty_keras_home"))   # no cached weights
    monkeypatch.delenv("MOBILENET_V3_WEIGHTS_DIR", raising=False)
    with pytest.raises(ValueError, match="never downloads"):
        MobileNetV3Small(weights="imagenet")
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        MobileNetV3Small(alpha=0.35, input_shape=(32, 32, 3), weights=str(tmp_path / "nope.h5"))
    source = MobileNetV3Small(alpha=0.35, input_shape=(32, 32, 3))
    path = str(tmp_path / "w.weights.h5")
    source.save_weights(path)
    loaded = MobileNetV3Small(alpha=0.35, input_shape=(32, 32, 3), weights=path)
    for a, b in zip(source.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
