"""--init_weights for detection and segmentation runs (training/transfer.py, weights/head_files.py):
a classifier's backbone into a reduced-tail detector / RF2 segmenter, the official SSDLite from an
OD API checkpoint, DeepLab's segmenter from its checkpoint and frozen graph, and the refusals.

The OD API and DeepLab checkpoints are written here: the official model.ckpt.data is not in
../shared, so the OD API one takes the official variable names and shapes from the
model.ckpt.index there and the official values from the Core ML conversion.
"""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_cases
from mobilenet_v3 import ModelConfig
from mobilenet_v3.modeling.builders import build_model
from mobilenet_v3.training import TrainConfig, transfer
from mobilenet_v3.weights import head_files
from mobilenet_v3.weights.convert import write_folder
from mobilenet_v3.weights.errors import ArchitectureMismatchError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "..", "shared", "models")
TFLITE = os.path.join(MODELS, "v3-small_224_1.0_uint8.tflite")
SSD = os.path.join(MODELS, "ssdlite_mobilenet_v3_small_coco")
MLMODEL, INDEX = os.path.join(SSD, "ssd_mobilenet.mlmodel"), os.path.join(SSD, "model.ckpt")
GRAPH = os.path.join(MODELS, "deeplab_mnv3_small_lraspp_5class", "frozen_inference_graph.pb")
PHOTOS = os.path.join(ROOT, "..", "shared", "datasets", "coco_mini", "val2017")

needs = lambda *paths: pytest.mark.skipif(  # noqa: E731
    not all(os.path.exists(p) for p in paths),
    reason=f"{', '.join(os.path.basename(p) for p in paths)} not in ../shared")


def _random_classifier(path, alpha=0.35):
    """A Small classifier with random BN statistics (a load that skipped them would show)."""
    config = ModelConfig.from_flat(name="small", alpha=alpha, include_top=True, classes=7,
                                   input_shape=(64, 64, 3))
    model = build_model(config)
    rng = np.random.default_rng(0)
    model.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32)
                       for w in model.get_weights()])
    write_folder(model, config, str(path))
    return model


def _detection_task(tmp_path, init, size=64, classes=3, **fields):
    from mobilenet_v3.detection import data as data_lib
    from mobilenet_v3.detection.task import DetectionTask
    fields = {"name": "small", "alpha": 0.35, "reduced_tail": True, **fields}
    return DetectionTask(TrainConfig(
        model_dir=str(tmp_path / "run"), global_batch_size=4, train_steps=1, init_weights=init,
        model=ModelConfig.from_flat(**fields),
        data=data_lib.DetectionDataConfig(image_size=size, num_classes=classes,
                                          synthetic_train_examples=8,
                                          synthetic_eval_examples=4)))


def _segmentation_task(tmp_path, init, size=64, classes=3, seg=None, **fields):
    from mobilenet_v3.segmentation import data as data_lib
    from mobilenet_v3.segmentation.task import SegmentationTask
    fields = {"name": "small", "alpha": 0.35, "rf2": True, "output_stride": 16, **fields}
    return SegmentationTask(TrainConfig(
        model_dir=str(tmp_path / "run"), global_batch_size=2, train_steps=1, init_weights=init,
        model=ModelConfig.from_flat(**fields),
        data=data_lib.SegmentationDataConfig(image_size=size, num_classes=classes,
                                             synthetic_train_examples=4,
                                             synthetic_eval_examples=2)), seg)


def _started(task):
    initialize = task.initializer()
    model = task.build_model()
    return model, initialize(model)


def test_a_classifiers_backbone_starts_a_reduced_tail_detector_and_an_rf2_segmenter(tmp_path):
    source = _random_classifier(tmp_path / "cls")
    by_name = {layer.name: layer for layer in source.layers}
    for task in (_detection_task(tmp_path, str(tmp_path / "cls")),
                 _segmentation_task(tmp_path, str(tmp_path / "cls"))):
        model, line = _started(task)
        loaded, fresh = [], []
        for layer in task.backbone_layers(model):
            if not layer.weights or layer.name not in by_name:
                continue
            ours, theirs = layer.get_weights(), by_name[layer.name].get_weights()
            if [w.shape for w in ours] == [w.shape for w in theirs]:
                for a, b in zip(ours, theirs):
                    np.testing.assert_array_equal(a, b, err_msg=layer.name)
                loaded.append(layer.name)
            else:
                fresh.append(layer.name)
        assert "stem" in loaded and "bneck8_project_bn" in loaded
        assert "bneck11_expand" in fresh, fresh           # the halved last stage (both tails)
        assert "bneck11" in line and "stay new" in line and "the head starts new" in line, line
        assert not any(n.startswith(("ssd_", "seg_")) for n in loaded)


@needs(TFLITE, PHOTOS)
def test_a_bn_folded_tflite_backbone_computes_what_the_file_does(tmp_path):
    """Google's uint8 Small (BN folded) into a reduced-tail detector: the rows the detector keeps
    compute what the file's classifier computes, after the BN statistics were re-estimated."""
    import tf_keras
    from mobilenet_v3.weights import weights_for
    task = _detection_task(tmp_path, TFLITE, size=128, alpha=1.0, bn_epsilon=1e-3)
    model, line = _started(task)
    assert "BN folded" in line and "re-estimated on 16 training images" in line, line
    classifier, _ = weights_for(ModelConfig.from_flat(
        name="small", include_top=True, classes=1001, input_shape=(128, 128, 3),
        include_preprocessing=False), TFLITE)
    photos = sorted(os.listdir(PHOTOS))[:4]
    images = np.stack([tf.image.resize(tf.io.decode_jpeg(tf.io.read_file(
        os.path.join(PHOTOS, p)), 3), (128, 128)).numpy() / 127.5 - 1 for p in photos])
    taps = [tf_keras.Model(m.input, m.get_layer("bneck8_add").output)
            for m in (model, classifier)]
    ours, file = (t(images.astype(np.float32), training=False).numpy() for t in taps)
    assert np.abs(file).max() > 1.0
    np.testing.assert_allclose(ours, file, atol=2e-3 * np.abs(file).max())
    bn = model.get_layer("bneck3_expand_bn")
    assert np.abs(bn.moving_mean.numpy()).max() > 0     # statistics, not the identity import


def _write_checkpoint(prefix, tensors):
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=list(tensors),
                      shape_and_slices=[""] * len(tensors),
                      tensors=[tf.constant(v) for v in tensors.values()])


@needs(MLMODEL, INDEX + ".index", PHOTOS)
def test_the_official_detector_from_an_od_api_checkpoint(tmp_path):
    pytest.importorskip("coremltools")
    from mobilenet_v3.modeling.heads.ssdlite import build_ssdlite
    from mobilenet_v3.weights import official_ssdlite as od
    shapes, values = od.checkpoint_shapes(INDEX), od.read_mlmodel(MLMODEL)
    assert {k: v.shape for k, v in values.items()} == shapes       # 350 official variables
    ema = "BoxPredictor_3/BoxEncodingPredictor/weights"
    tensors = {**values, "global_step": np.array(400000, np.int64),
               ema: np.zeros_like(values[ema]), ema + "/ExponentialMovingAverage": values[ema],
               ema + "/Momentum": np.ones_like(values[ema])}
    folder = tmp_path / "ssd_mobilenet_v3_small_coco_2020_01_14"
    folder.mkdir()
    _write_checkpoint(str(folder / "model.ckpt"), tensors)
    assert head_files.kind_of(str(folder)) == head_files.SSDLITE

    config = od.official_small_config()
    direct, _ = od.load_official_small(MLMODEL, config)
    imported = build_ssdlite(config)
    initialize = transfer.head_initializer(str(folder), "detection", config.model,
                                       lambda n: n.startswith("ssd_class"), lambda: [])
    line = initialize(imported)
    assert "od_api_checkpoint" in line and "350 tensors" in line and "classes kept" in line
    image = tf.image.resize(tf.io.decode_jpeg(tf.io.read_file(
        os.path.join(PHOTOS, sorted(os.listdir(PHOTOS))[0])), 3), (320, 320)) / 127.5 - 1
    for a, b in zip(direct(image[None]), imported(image[None])):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    # a 4-class dataset: the class predictors start new, everything else is the file's
    task = _detection_task(tmp_path, str(folder / "model.ckpt"), size=320, classes=4,
                           alpha=1.0, bn_epsilon=1e-3)
    model, line = _started(task)
    assert "6 class layers new" in line, line
    for name in ("stem", "bneck9_se_excite", "ssd_extra2_dw_bn", "ssd_box5_predict"):
        for a, b in zip(model.get_layer(name).get_weights(), direct.get_layer(name).get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-6, err_msg=name)
    assert model.get_layer("ssd_class0_predict").kernel.shape[-1] == 5 * 3   # 3 anchors x 5

    # convert detects the official config from the checkpoint and names the COCO slots
    from mobilenet_v3.tasks import detection
    from mobilenet_v3.weights import convert
    result = convert.convert(str(folder), str(tmp_path / "converted"))
    assert result["task"] == "detection" and result["format"] == "ssdlite od_api_checkpoint"
    trained = detection.load(str(tmp_path / "converted"))
    assert (trained.config.classes, trained.config.input_shape) == (91, (320, 320, 3))
    assert trained.labels[:2] == ["background", "person"] and len(trained.labels) == 91
    for a, b in zip(trained.model(image[None]), direct(image[None])):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@needs(GRAPH)
def test_deeplab_checkpoint_and_frozen_graph_start_a_segmenter(tmp_path):
    from mobilenet_v3.modeling.heads.lraspp import build_segmenter
    from mobilenet_v3.weights import deeplab_graph
    values = deeplab_graph.read_frozen_graph(GRAPH)
    name = "aspp0/weights"
    tensors = {**values, name: np.zeros_like(values[name]),
               name + "/ExponentialMovingAverage": values[name],
               name + "/Momentum": np.ones_like(values[name]),
               "global_step": np.array(5, np.int64)}
    _write_checkpoint(str(tmp_path / "model.ckpt"), tensors)
    config = deeplab_graph.deeplab_small_config(129, 257)
    reference = build_segmenter(config)
    deeplab_graph.load_into(reference, values)
    import tarfile                      # the zoo's archive layout: one top folder
    archive = tmp_path / "deeplab_mnv3_small_cityscapes_trainfine_2019_11_15.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for f in tmp_path.glob("model.ckpt*"):
            tar.add(f, arcname=f"deeplab_mnv3_small_cityscapes_trainfine/{f.name}")
        tar.add(GRAPH, arcname="deeplab_mnv3_small_cityscapes_trainfine/"
                               "frozen_inference_graph.pb")
    for path in (GRAPH, str(tmp_path / "model.ckpt"), str(tmp_path), str(archive)):
        assert head_files.kind_of(path) == head_files.DEEPLAB, path
        model = build_segmenter(config)
        line = transfer.head_initializer(path, "segmentation", config.model,
                                     lambda n: n.startswith("seg_logits"), lambda: [])(model)
        assert "217 tensors" in line, line
        for a, b in zip(model.get_weights(), reference.get_weights()):
            np.testing.assert_array_equal(a, b)
    # 3 classes and DeepLab's head settings through the segmentation task: logits new
    task = _segmentation_task(tmp_path, GRAPH, size=129, alpha=1.0, output_stride=32,
                              seg=dataclasses.replace(config.seg, classes=3))
    model, line = _started(task)
    assert "2 class layers new" in line and "seg_logits_high, seg_logits_low" in line, line
    np.testing.assert_array_equal(model.get_layer("seg_aspp0").kernel.numpy(),
                                  values["aspp0/weights"])


@needs(GRAPH)
def test_a_file_of_another_task_or_architecture_is_refused_by_name(tmp_path):
    with pytest.raises(ArchitectureMismatchError, match="holds a segmentation model"):
        _detection_task(tmp_path, GRAPH).initializer()
    _random_classifier(tmp_path / "cls")
    task = _segmentation_task(tmp_path, str(tmp_path / "cls"), alpha=0.5)
    with pytest.raises(ArchitectureMismatchError, match="--alpha: the file has 0.35"):
        task.initializer()
    task = _segmentation_task(tmp_path, GRAPH, size=65, alpha=1.0, output_stride=32, rf2=False)
    initialize = task.initializer()
    with pytest.raises(ArchitectureMismatchError,
                       match=r"MobilenetV3/expanded_conv_8/expand/weights.*first tensor"):
        initialize(task.build_model())


@pytest.mark.slow
@needs(GRAPH)
def test_train_py_starts_a_segmenter_from_deeplab_and_refuses_bad_files(tmp_path):
    (tmp_path / "broken.mlmodel").write_bytes(b"not a protobuf")
    tiny = ["--task=segmentation", "--dataset=synthetic", "--num_classes=3",
            "--synthetic_train_examples=4", "--synthetic_eval_examples=2", "--batch_size=2",
            "--model=small", "--resolution=65", "--output_stride=32", "--reduced_tail",
            "--train_steps=1", "--log_every_steps=1"]
    cases = [tiny + [f"--model_dir={tmp_path / 'ok'}", f"--init_weights={GRAPH}"],
             tiny + [f"--model_dir={tmp_path / 'det'}", "--task=detection",
                     f"--init_weights={tmp_path / 'broken.mlmodel'}"],
             tiny + [f"--model_dir={tmp_path / 'missing'}", "--init_weights=/nonexistent.pb"],
             tiny + [f"--model_dir={tmp_path / 'misfit'}", f"--init_weights={GRAPH}",
                     "--alpha=0.75"]]
    ok, broken, missing, misfit = run_cases("train.py", cases)
    assert misfit["code"] == 1 and "first tensor that disagrees" in misfit["stderr"], misfit
    assert not (tmp_path / "misfit" / "train_config.json").exists()   # nothing recorded
    assert ok["code"] == 0, ok["stderr"][-3000:]
    assert "initialized from" in ok["stdout"] and "2 class layers new" in ok["stdout"]
    for result, words in ((broken, "broken.mlmodel"), (missing, "/nonexistent.pb")):
        assert result["code"] == 1 and words in result["stderr"], result
        assert "Traceback" not in result["stderr"], result["stderr"]


def test_coco_categories_are_the_official_ones():
    import json
    from mobilenet_v3.detection import coco_categories
    annotations = os.path.join(ROOT, "..", "shared", "datasets", "coco_mini", "annotations",
                               "instances_val2017.json")
    if not os.path.exists(annotations):
        pytest.skip("coco_mini annotations not in ../shared")
    with open(annotations) as f:
        official = {c["id"]: c["name"] for c in json.load(f)["categories"]}
    assert coco_categories.CATEGORIES == official
    labels = coco_categories.slot_labels(91)
    assert (len(labels), labels[0], labels[1], labels[12], labels[90]) == (
        91, "background", "person", "?", "toothbrush")
    assert [coco_categories.official_id(k) for k in (0, 11, 79)] == [1, 13, 90]


@needs(GRAPH)
def test_convert_writes_a_segmenter_folder_from_deeplabs_graph(tmp_path):
    from mobilenet_v3.tasks import registry, segmentation
    from mobilenet_v3.weights import convert
    result = convert.convert(GRAPH, str(tmp_path / "dl"), resolution=129)
    assert result["task"] == "segmentation" and result["tensors"] == 217
    assert registry.for_model(str(tmp_path / "dl")).name == "segmentation"
    trained = segmentation.load(str(tmp_path / "dl"))
    assert trained.config.classes == 5
    assert trained.config.input_shape == (129, 129, 3) and trained.config.seg.gate == "hard_sigmoid"
    with pytest.raises(FileExistsError):
        convert.convert(GRAPH, str(tmp_path / "dl"), resolution=129)


@pytest.mark.slow
def test_a_float_detector_tflite_imports_verified_and_an_int8_one_is_refused(tmp_path):
    """Our own exported detector (BN folded, names converted): matched by name and shape,
    verified against the file's own outputs; integer files and other architectures refused."""
    from conftest import tiny_detector
    from mobilenet_v3.export import detection as exporter
    from mobilenet_v3.modeling.heads.ssdlite import build_ssdlite
    from mobilenet_v3.weights import detector_tflite
    config, model, images = tiny_detector(classes=4, seed=1)
    graph = exporter.inference_model(model, config, "fused")
    path = tmp_path / "det_float32.tflite"
    path.write_bytes(exporter.convert(graph, config, "float32"))
    assert head_files.kind_of(str(path)) == head_files.SSDLITE

    task = _detection_task(tmp_path, str(path), size=64, classes=3)
    imported, line = _started(task)
    assert "tflite" in line and "classes kept" in line and "re-estimated" in line, line
    for a, b in zip(imported(images[:2], training=False), model(images[:2], training=False)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-3 * np.abs(b.numpy()).max())

    task = _detection_task(tmp_path, str(path), size=64, classes=5)     # other classes
    _, line = _started(task)
    assert "6 class layers new" in line, line
    task = _detection_task(tmp_path, str(path), size=64, classes=3, alpha=0.5)
    initialize = task.initializer()
    with pytest.raises(ArchitectureMismatchError, match="first layer that disagrees"):
        initialize(task.build_model())
    int8 = tmp_path / "det_int8.tflite"
    int8.write_bytes(exporter.convert(exporter.inference_model(model, config, "unfused"),
                                      config, "int8", lambda: iter(images)))
    with pytest.raises(Exception, match="integer weights"):
        detector_tflite.load(build_ssdlite(config), str(int8))
