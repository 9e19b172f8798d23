import numpy as np
import pytest
import tf_keras

from mobilenet_v3 import MobileNetV3Large, MobileNetV3Small
from mobilenet_v3.modeling.features import endpoint_layer_names, feature_extractor


def test_large_endpoints_follow_the_papers_rule():
    model = MobileNetV3Large(input_shape=(224, 224, 3), include_top=False)
    names = endpoint_layer_names(model)
    assert names["C4"] == "bneck13_expand_act"    # expansion of the 13th bottleneck
    assert names["C5"] == "lastconv_act"          # the layer just before pooling
    shapes = {k: v.shape[1:] for k, v in feature_extractor(model).output.items()}
    assert shapes == {"C1": (112, 112, 64), "C2": (56, 56, 72), "C3": (28, 28, 240),
                      "C4": (14, 14, 672), "C5": (7, 7, 960)}


def test_small_endpoints_at_other_width_and_resolution():
    model = MobileNetV3Small(input_shape=(160, 160, 3), alpha=0.75)
    names = endpoint_layer_names(model)
    assert names["C4"] == "bneck9_expand_act" and names["C1"] == "stem_act"
    extractor = feature_extractor(model, endpoints=("C4", "C5"))
    x = np.random.RandomState(0).uniform(0, 255, (2, 160, 160, 3)).astype(np.float32)
    out = extractor(x)
    assert set(out) == {"C4", "C5"}
    assert out["C4"].shape == (2, 10, 10, 240) and out["C5"].shape == (2, 5, 5, 432)
    # shares the classifier's layers: same weights, same feature values
    probe = tf_keras.Model(model.input, model.get_layer("bneck9_expand_act").output)
    np.testing.assert_allclose(out["C4"].numpy(), probe(x).numpy(), rtol=1e-6)


def test_rejects_other_models_and_endpoints():
    with pytest.raises(ValueError, match="not a MobileNetV3"):
        endpoint_layer_names(tf_keras.applications.MobileNetV3Small(weights=None))
    with pytest.raises(ValueError, match="endpoints"):
        feature_extractor(MobileNetV3Small(alpha=0.35), endpoints=("C6",))
