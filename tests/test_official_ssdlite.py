"""Google's official SSDLite-MobileNetV3-Small COCO weights (the Core ML conversion in
../shared/models/ssdlite_mobilenet_v3_small_coco) loaded into our detector: every tensor has
its place, the anchors are the official ones, the outputs are those of the official graph,
and the detections on real COCO val2017 photos find the annotated objects."""

import importlib.util
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from mobilenet_v3.detection import boxes as box_lib
from mobilenet_v3.modeling.heads.ssdlite import build_ssdlite
from mobilenet_v3.weights import official_ssdlite

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared")
OFFICIAL = os.path.join(SHARED, "models", "ssdlite_mobilenet_v3_small_coco")
MLMODEL = os.path.join(OFFICIAL, "ssd_mobilenet.mlmodel")
DECODER = os.path.join(OFFICIAL, "Decoder.mlmodel")
CKPT = os.path.join(OFFICIAL, "model.ckpt")
COCO = os.path.join(SHARED, "datasets", "coco_mini")
ANNOTATIONS = os.path.join(COCO, "annotations", "instances_val2017.json")
# photos with a large object: a bed (and a dog), a bus, a train
PHOTOS = ("000000022192.jpg", "000000423617.jpg", "000000482585.jpg")
COMPARED_TOO = ("000000568290.jpg",)      # a street photo: the Core ML comparison's fourth

pytestmark = [
    pytest.mark.xdist_group("official_ssdlite"),
    pytest.mark.skipif(not all(os.path.exists(p) for p in (MLMODEL, DECODER, CKPT + ".index",
                                                          ANNOTATIONS)),
                       reason=f"the official SSDLite files / COCO val2017 are not in {SHARED}"),
    pytest.mark.skipif(importlib.util.find_spec("coremltools") is None,
                       reason="coremltools (its protobuf modules read the .mlmodel) is not "
                              "installed: pip install 'coremltools>=9.0,<10'"),
]


@pytest.fixture(scope="module")
def weights():
    return official_ssdlite.read_mlmodel(MLMODEL)


@pytest.fixture(scope="module")
def detector(weights):
    config = official_ssdlite.official_small_config()
    model = build_ssdlite(config)
    summary = official_ssdlite.assign_weights(model, weights)
    return model, config, summary


def _photos(names):
    out = []
    for name in names:
        image = tf.io.decode_jpeg(tf.io.read_file(os.path.join(COCO, "val2017", name)), 3)
        image = tf.image.resize(tf.cast(image, tf.float32), (320, 320))   # squashed
        out.append(image.numpy() / 127.5 - 1.0)
    return np.stack(out).astype(np.float32)


def test_every_official_tensor_has_its_place(weights, detector):
    model, _, summary = detector
    # the names and shapes of the real checkpoint (read from its .index alone)
    shapes = official_ssdlite.checkpoint_shapes(CKPT)
    assert len(shapes) == 350
    assert {n: v.shape for n, v in weights.items()} == shapes
    assert summary == {"tensors": 350, "values": 1806207}
    assert len(model.weights) == 350
    got = {w.name.split(":")[0]: w.numpy() for w in model.weights}
    for tf_name in ("FeatureExtractor/MobilenetV3/expanded_conv_8/depthwise/depthwise_weights",
                    "BoxPredictor_3/ClassPredictor/biases",
                    "FeatureExtractor/MobilenetV3/layer_13_1_Conv2d_5_1x1_64/BatchNorm/beta"):
        np.testing.assert_array_equal(got[official_ssdlite.keras_weight_name(tf_name)],
                                      weights[tf_name])
    # BN: gamma as Core ML stores it, the variance rebased to TF's epsilon 0.001
    bn = "FeatureExtractor/MobilenetV3/Conv/BatchNorm/"
    np.testing.assert_allclose(weights[bn + "moving_variance"] + 1e-3, 1.0 + 1e-5, rtol=1e-6)
    assert float(model.get_layer("stem_bn").epsilon) == pytest.approx(1e-3)


def test_assign_refuses_a_tensor_without_place_or_of_another_shape(weights, detector):
    model = detector[0]
    before = model.get_layer("stem").kernel.numpy()
    with pytest.raises(ValueError, match="BoxPredictor_9/ClassPredictor/weights"):
        official_ssdlite.assign_weights(
            model, {**weights, "BoxPredictor_9/ClassPredictor/weights": np.zeros((1,))})
    with pytest.raises(ValueError, match="global_step.*no place"):
        official_ssdlite.assign_weights(model, {"global_step": np.zeros(())})
    name = "BoxPredictor_0/ClassPredictor/weights"
    with pytest.raises(ValueError, match=f"{name}.*\\(1, 1, 288, 182\\)"):
        official_ssdlite.assign_weights(model, {**weights, name: weights[name][..., :182]})
    with pytest.raises(ValueError, match=r"stem\.kernel .* no tensor"):
        official_ssdlite.assign_weights(
            model, {k: v for k, v in weights.items() if not k.endswith("MobilenetV3/Conv/weights")})
    np.testing.assert_array_equal(model.get_layer("stem").kernel.numpy(), before)  # untouched


def test_checkpoint_reader_reads_an_od_api_style_checkpoint(weights, tmp_path):
    """The official model.ckpt has no values here: a name-keyed checkpoint written like the
    OD API's (TF1 Saver: SaveV2 by variable name), with global_step, an optimizer slot and an
    EMA shadow, reads back as the model's 350 tensors, the shadow preferred."""
    ema = "BoxPredictor_0/ClassPredictor/biases"
    extra = {"global_step": np.array(1000, np.int64),
             ema + "/ExponentialMovingAverage": np.full(273, 7.0, np.float32),
             ema + "/Momentum": np.zeros(273, np.float32)}
    tensors = {**weights, **extra}
    prefix = str(tmp_path / "model.ckpt")
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=list(tensors),
                      shape_and_slices=[""] * len(tensors),
                      tensors=[tf.constant(v) for v in tensors.values()])
    read = official_ssdlite.load_checkpoint_weights(prefix)
    assert set(read) == set(weights)
    np.testing.assert_array_equal(read[ema], extra[ema + "/ExponentialMovingAverage"])
    name = "FeatureExtractor/MobilenetV3/expanded_conv_3/squeeze_excite/Conv_1/weights"
    np.testing.assert_array_equal(read[name], weights[name])


def test_anchors_are_the_official_ones(detector):
    config = detector[1]
    official = official_ssdlite.read_decoder_anchors(DECODER)
    ours = box_lib.anchors(config)
    assert ours.shape == official.shape == (2034, 4)
    assert float(np.abs(ours - official).max()) < 1e-6


def _coreml_graph(images):
    """The converted official graph run layer by layer with TF ops, from its own constants
    (SE gate 0.16667, BN epsilon 1e-5): raw box encodings and class logits."""
    spec = official_ssdlite._load_spec(MLMODEL)
    env = {"Preprocessor/sub": tf.constant(images)}

    def arr(params):
        return official_ssdlite._array(params, "")

    for layer in spec.neuralNetwork.layers:
        kind = layer.WhichOneof("layer")
        p, x = getattr(layer, kind), [env[i] for i in layer.input]
        if kind == "convolution":
            kh, kw = p.kernelSize
            w = arr(p.weights).reshape(p.outputChannels, p.kernelChannels, kh, kw)
            strides = [1, *p.stride, 1]
            y = tf.nn.depthwise_conv2d(x[0], w.transpose(2, 3, 0, 1), strides, "SAME") \
                if p.nGroups > 1 else tf.nn.conv2d(x[0], w.transpose(2, 3, 1, 0), strides,
                                                   "SAME")
            y = y + arr(p.bias) if p.hasBias else y
        elif kind == "batchnorm":
            g, b, m, v = (arr(getattr(p, n)) for n in ("gamma", "beta", "mean", "variance"))
            y = g * (x[0] - m) / np.sqrt(v + p.epsilon) + b
        elif kind in ("add", "multiply", "multiplyBroadcastable"):
            op = tf.add if kind == "add" else tf.multiply
            y = op(x[0], x[1]) if len(x) == 2 else op(x[0], p.alpha)
        elif kind == "activation":
            y = {"ReLU": tf.nn.relu, "sigmoid": tf.sigmoid}[p.WhichOneof("NonlinearityType")](
                x[0])
        elif kind == "clip":
            y = tf.clip_by_value(x[0], p.minVal, p.maxVal)
        elif kind == "pooling":
            assert p.globalPooling
            y = tf.reduce_mean(x[0], [1, 2], keepdims=True)
        elif kind == "transpose":          # NCHW -> NHWC before the reshape: we are NHWC
            assert list(p.axes) == [0, 2, 3, 1]
            y = x[0]
        elif kind == "reshapeStatic":
            y = tf.reshape(x[0], [x[0].shape[0], *p.targetShape[1:]])
        elif kind == "concatND":
            y = tf.concat(x, p.axis)
        elif kind == "squeeze":
            y = tf.squeeze(x[0], list(p.axes))
        else:
            raise AssertionError(f"layer kind {kind!r}")
        env[layer.output[0]] = y
    return env["Postprocessor/raw_box_encodings"].numpy(), env["concat_1"].numpy()


def test_outputs_and_detections_on_real_coco_photos(detector):
    model, config, _ = detector
    images = _photos(PHOTOS)
    encodings, logits = (t.numpy() for t in model(images, training=False))
    # the Core ML graph computed in TF on 4 photos
    compared = np.concatenate([images, _photos(COMPARED_TOO)])
    want_encodings, want_logits = _coreml_graph(compared)
    got_encodings, got_logits = (t.numpy() for t in model(compared, training=False))
    assert len(compared) == 4 and np.abs(want_logits).max() > 5.0
    # measured 1.4e-3 / 9.6e-4, all from the SE gate's 0.16667 vs our 1/6 (1.5e-5 without it)
    assert float(np.abs(got_encodings - want_encodings).max()) < 5e-3
    assert float(np.abs(got_logits - want_logits).max()) < 5e-3

    annotations = json.load(open(ANNOTATIONS))
    by_name = {i["file_name"]: i for i in annotations["images"]}
    anchors = tf.constant(box_lib.anchors(config))
    boxes, classes, scores, counts = (t.numpy() for t in box_lib.postprocess(
        tf.constant(encodings), tf.constant(logits), anchors, config))
    for k, name in enumerate(PHOTOS):
        image = by_name[name]
        h, w = image["height"], image["width"]
        truth = [(a["category_id"], np.array([a["bbox"][1] / h, a["bbox"][0] / w,
                                              (a["bbox"][1] + a["bbox"][3]) / h,
                                              (a["bbox"][0] + a["bbox"][2]) / w], np.float32))
                 for a in annotations["annotations"] if a["image_id"] == image["id"]]
        # the top detection is an annotated object: measured IoU 0.95 / 0.94 / 0.93,
        # scores 0.64 / 0.81 / 0.85
        category = int(classes[k, 0]) + 1
        ious = [float(box_lib.iou(boxes[k, :1], box[None])[0, 0])
                for c, box in truth if c == category]
        assert counts[k] > 0 and scores[k, 0] > 0.4, (name, scores[k, :5])
        assert ious and max(ious) > 0.5, (name, category, ious, sorted({c for c, _ in truth}))
