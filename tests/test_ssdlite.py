"""SSDLite detection (issue 13): cost model vs Table 6, anchors, targets, loss, data, export."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from mobilenet_v3 import specs
from mobilenet_v3.analysis import cost as cost_lib
from mobilenet_v3.detection import boxes as box_lib, data as data_lib
from mobilenet_v3.detection.task import detection_losses, focal_loss_sum
from mobilenet_v3.modeling.heads.ssdlite import DetectorConfig, build_ssdlite

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Paper Table 6 (PAPER.md): params (M), MAdds (B) at 320x320, 91 class slots.
TABLE_6 = [("large", True, 3.22, 0.51), ("large", False, 4.97, 0.62),
           ("small", True, 1.77, 0.16), ("small", False, 2.49, 0.21)]


def test_reduced_tail_halves_channels_between_c4_and_c5():
    large = specs.scale_arch(specs.reduced_tail(specs.LARGE), 1.0)
    b = {blk.index: blk for blk in large.blocks}
    assert (b[12].exp, b[12].out) == (672, 112)          # before C4: unchanged
    assert (b[13].exp, b[13].out) == (672, 80)           # C4 = its expansion, kept
    assert (b[14].exp, b[14].out, b[15].exp) == (480, 80, 480)
    assert large.last_conv_channels == 480
    small = specs.scale_arch(specs.reduced_tail(specs.SMALL), 1.0)
    s = {blk.index: blk for blk in small.blocks}
    assert (s[9].exp, s[9].out, s[10].exp, s[11].out) == (288, 48, 288, 48)
    assert small.last_conv_channels == 288


@pytest.mark.parametrize("name,reduced,params_m,madds_b", [
    TABLE_6[0]] + [pytest.param(*row, marks=pytest.mark.slow) for row in TABLE_6[1:]])
def test_cost_model_matches_table_6(name, reduced, params_m, madds_b):
    config = DetectorConfig.create(classes=91, name=name, reduced_tail=reduced,
                                   include_preprocessing=False)
    totals = cost_lib.totals(cost_lib.profile(build_ssdlite(config)))
    assert totals.weight_params / 1e6 == pytest.approx(params_m, rel=0.05)
    assert totals.madds / 1e9 == pytest.approx(madds_b, rel=0.05)


def test_anchors_follow_ssd_anchor_generator():
    config = DetectorConfig.create()
    anchors = box_lib.anchors(config)
    assert anchors.shape == (2034, 4)          # 20x20x3 + (10x10 + 5x5 + 3x3 + 2x2 + 1) x 6
    first = anchors[0]                         # lowest layer: (0.1, 1.0) at cell (0, 0)
    np.testing.assert_allclose(first, [0.025 - 0.05, 0.025 - 0.05, 0.075, 0.075], atol=1e-6)
    last = anchors[-1]                         # 1x1 layer, interpolated scale sqrt(0.95 * 1)
    np.testing.assert_allclose(last[2] - last[0], np.sqrt(0.95), atol=1e-5)


def test_head_outputs_one_prediction_per_anchor():
    config = DetectorConfig.create(classes=4, name="small", alpha=0.35, reduced_tail=True,
                                   input_shape=(96, 96, 3))
    boxes, logits = build_ssdlite(config).outputs
    assert boxes.shape[1:] == (len(box_lib.anchors(config)), 4)
    assert logits.shape[1:] == (len(box_lib.anchors(config)), 4)


def test_targets_encode_decode_and_force_match():
    config = DetectorConfig.create()
    anchors = tf.constant(box_lib.anchors(config))
    gt = tf.constant([[0.1, 0.2, 0.5, 0.45], [0.70, 0.70, 0.72, 0.71], [0, 0, 0, 0]])
    classes = tf.constant([3, 1, 0])
    cls, codes = box_lib.assign_targets(gt, classes, anchors, config.ssd.box_scales)
    # the tiny box overlaps no anchor by 0.5 but is force-matched to exactly one
    assert int(tf.reduce_sum(tf.cast(cls == 1, tf.int32))) == 1
    assert int(tf.reduce_sum(tf.cast(cls == 3, tf.int32))) >= 1
    decoded = box_lib.decode(codes, anchors, config.ssd.box_scales)
    for c, box in ((3, gt[0]), (1, gt[1])):
        np.testing.assert_allclose(tf.boolean_mask(decoded, cls == c).numpy(),
                                   np.tile(box.numpy(), (int(tf.reduce_sum(
                                       tf.cast(cls == c, tf.int32))), 1)), atol=1e-5)


def test_focal_loss_values():
    logits = tf.constant([[2.0, -1.0]])
    targets = tf.constant([[1.0, 0.0]])
    p = 1 / (1 + np.exp(-np.array([2.0, -1.0])))
    expected = 0.75 * (1 - p[0]) ** 2 * -np.log(p[0]) + 0.25 * p[1] ** 2 * -np.log(1 - p[1])
    assert float(focal_loss_sum(logits, targets)) == pytest.approx(expected, rel=1e-5)
    # background anchors (class 0) have all-zero targets; box loss only on matched anchors
    cls, loc, matches = detection_losses(tf.ones([1, 2, 4]), tf.zeros([1, 2, 3]),
                                         tf.constant([[0, 2]]), tf.zeros([1, 2, 4]))
    assert float(matches) == 1.0 and float(loc) == pytest.approx(4 * 0.5 / 4)


def test_augment_is_seeded_and_keeps_boxes_valid():
    image, boxes, classes = data_lib.synthetic.make_example(5, 0, 3, 96)
    seed = tf.constant([0, 17], tf.int64)
    a = data_lib.augment(image, boxes, classes, seed, 64)
    b = data_lib.augment(image, boxes, classes, seed, 64)
    np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())
    kept = a[2].numpy() > 0
    assert a[0].shape == (64, 64, 3)
    assert np.all(a[1].numpy()[kept] >= 0) and np.all(a[1].numpy()[kept] <= 1)
    assert np.all(a[1].numpy()[kept][:, 2] > a[1].numpy()[kept][:, 0])
    others = [data_lib.augment(image, boxes, classes, tf.constant([0, s], tf.int64), 64)[1]
              for s in range(5)]
    assert any(not np.allclose(o.numpy(), a[1].numpy()) for o in others)


def _folder(tmp_path, annotations, image_size=(40, 30)):
    from PIL import Image
    (tmp_path / "images").mkdir()
    Image.new("RGB", image_size).save(tmp_path / "images" / "a.jpg")
    text = annotations if isinstance(annotations, str) else json.dumps(annotations)
    (tmp_path / "annotations.json").write_text(text)
    return str(tmp_path)


GOOD = {"images": [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 30}],
        "categories": [{"id": 7, "name": "cat"}, {"id": 9, "name": "dog"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 9, "bbox": [4, 3, 20, 15]}]}


def test_coco_json_folder_reads_boxes(tmp_path):
    files, boxes, classes, ids, names = data_lib.read_annotations(_folder(tmp_path, GOOD))
    assert names == ("cat", "dog") and list(ids) == [1]
    np.testing.assert_allclose(boxes[0, 0], [0.1, 0.1, 0.6, 0.6])
    assert classes[0, 0] == 2


@pytest.mark.parametrize("change,message", [
    ("{not json", "not valid JSON"),
    ({"annotations": [dict(GOOD["annotations"][0], bbox=[30, 3, 20, 15])]}, "outside image"),
    ({"annotations": [dict(GOOD["annotations"][0], category_id=3)]}, "unknown category_id 3"),
    ({"annotations": []}, "no boxes"),
    ({"annotations": [dict(GOOD["annotations"][0], iscrowd=1)]}, "only crowd regions"),
])
def test_bad_annotations_are_named(tmp_path, change, message):
    annotations = change if isinstance(change, str) else {**GOOD, **change}
    with pytest.raises(data_lib.AnnotationError, match=message):
        data_lib.read_annotations(_folder(tmp_path, annotations))


def test_images_are_checked_against_their_annotations(tmp_path, capsys):
    from PIL import Image
    root = _folder(tmp_path, {**GOOD, "images": GOOD["images"] + [
        {"id": 2, "file_name": "b.jpg", "width": 40, "height": 30}], "annotations": GOOD[
        "annotations"] + [dict(GOOD["annotations"][0], id=2, image_id=2)]})
    (tmp_path / "images" / "b.jpg").write_bytes(b"not a jpeg")
    files, boxes, classes, ids, _ = data_lib.read_annotations(root)
    assert list(ids) == [1] and len(files) == len(boxes) == 1        # b.jpg left out ...
    assert "1 of 2 images are unreadable" in capsys.readouterr().err  # ... named and counted
    Image.new("RGB", (40, 30)).save(tmp_path / "images" / "b.jpg")
    Image.new("RGB", (30, 40)).save(tmp_path / "images" / "a.jpg")    # rotated after labelling
    with pytest.raises(data_lib.AnnotationError, match=r"'.*a\.jpg' is 30x40 but its entry "
                                                        r"says 40x30 \(rotated"):
        data_lib.read_annotations(root)
    for name in ("a.jpg", "b.jpg"):
        (tmp_path / "images" / name).write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(data_lib.AnnotationError, match="none of its 2 images is readable"):
        data_lib.read_annotations(root)


def test_a_validation_json_scores_instead_of_a_held_out_split(tmp_path):
    from PIL import Image
    root = _folder(tmp_path, GOOD)
    Image.new("RGB", (40, 30)).save(tmp_path / "images" / "v.jpg")
    val = {**GOOD, "images": [{"id": 5, "file_name": "v.jpg", "width": 40, "height": 30}],
           "annotations": [dict(GOOD["annotations"][0], image_id=5)] * 2}
    (tmp_path / "val.json").write_text(json.dumps(val))
    config = data_lib.DetectionDataConfig(source="coco_json", detection_folder=root,
                                          val_json=str(tmp_path / "val.json"), image_size=64)
    source = data_lib.open_source(config)
    assert (source.num_train, source.num_eval, source.max_boxes) == (1, 1, 2)
    ids = [int(ex[3]) for ex in source.eval_examples()]
    assert ids == [5]
    other = {**val, "categories": [{"id": 7, "name": "cat"}, {"id": 9, "name": "cow"}]}
    (tmp_path / "val.json").write_text(json.dumps(other))
    with pytest.raises(data_lib.AnnotationError, match="not those of"):
        data_lib.open_source(config)
    with pytest.raises(ValueError, match="needs --detection_val_json"):
        data_lib.DetectionDataConfig(source="coco_json", detection_folder=root,
                                     val_images=root).validate()


@pytest.mark.slow
def test_train_script_refuses_bad_annotations(tmp_path):
    bad = {**GOOD, "annotations": [dict(GOOD["annotations"][0], category_id=3)]}
    run = subprocess.run(
        [sys.executable, "train.py", "--task=detection", "--dataset=coco_json",
         f"--detection_folder={_folder(tmp_path, bad)}", f"--model_dir={tmp_path / 'run'}"],
        cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT),
        timeout=300)
    assert run.returncode == 1
    assert "unknown category_id 3" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.slow
def test_tfds_coco_on_mock_data():
    import tensorflow_datasets as tfds
    from mobilenet_v3.data.imagenet import DatasetNotPreparedError
    from mobilenet_v3.detection import coco_categories
    config = data_lib.DetectionDataConfig(source="coco", image_size=64, download=True,
                                          data_dir="/nonexistent/tfds")
    detector = DetectorConfig.create(classes=91, name="small", alpha=0.35,
                                     input_shape=(64, 64, 3))
    with tfds.testing.mock_data(num_examples=4):
        source = data_lib.open_source(config)
        assert source.num_classes == 90 and source.num_train == 4    # the OD API's 91 slots
        assert source.class_names[0] == "person" and source.class_names[11] == "?"
        ds = data_lib.train_dataset(source, config, detector, 2,
                                    tf.distribute.InputContext())
        images, cls, codes, skipped = next(iter(ds))
        raw = np.concatenate([ex[2].numpy() for ex in source.train_stream(
            0, tf.distribute.InputContext()).ignore_errors().take(4)])
        with pytest.raises(DatasetNotPreparedError, match="--download_data"):
            data_lib.open_source(dataclasses.replace(config, download=False))
    assert images.shape == (2, 64, 64, 3) and cls.shape == (2, len(box_lib.anchors(detector)))
    used = set(np.unique(raw)) - {0}                     # tfds labels 0..79 -> official ids
    assert codes.shape[-1] == 4 and used and used <= set(coco_categories.OFFICIAL_IDS)
    assert int(tf.reduce_max(cls)) <= 90


@pytest.mark.slow
def test_export_runs_in_litert_and_agrees_with_keras():
    from conftest import tiny_detector
    from mobilenet_v3.analysis import tflite_inspect
    from mobilenet_v3.export import detection as exporter, report
    config, model, images = tiny_detector()
    for fmt, form in (("float32", "fused"), ("int8", "unfused")):
        graph = exporter.inference_model(model, config, form)
        tflite = exporter.convert(graph, config, fmt, lambda: iter(images))
        described = report.describe(tflite, fmt)
        assert described["op_histogram"][exporter.POSTPROCESS_OP] == 1
        # outputs in TFLite's detection order: boxes, classes, scores, count (the op's own)
        assert [o["shape"] for o in described["outputs"]] == [[1, 100, 4], [1, 100], [1, 100],
                                                              [1]]
        it = tflite_inspect.interpreter(tflite, xnnpack=False)
        op = [o for o in it._get_ops_details() if o["op_name"] == exporter.POSTPROCESS_OP][0]
        outputs = [d["index"] for d in it.get_output_details()]
        assert outputs[1:] == list(op["outputs"])[1:]      # boxes: clipped after the op
        ours = exporter.run(tflite, images[:4])
        assert ours[0]["boxes"].shape == (100, 4) and ours[0]["count"] > 0
        boxes = np.concatenate([r["boxes"] for r in ours])
        assert boxes.min() >= 0.0 and boxes.max() <= 1.0
        names = [o["op_name"] for o in it._get_ops_details()]
        tail = names[names.index(exporter.POSTPROCESS_OP) + 1:]
        assert tail and not {"QUANTIZE", "DEQUANTIZE"} & set(tail), tail   # the clip: float
        score = 0.5 * float(np.median([r["scores"][0] for r in ours]))
        agreement = exporter.agreement(ours, exporter.keras_detections(graph, config,
                                                                       images[:4]), score)
        assert agreement["reference_detections"] > 0
        if fmt == "float32":
            assert agreement["recall"] == 1.0 and agreement["max_box_diff"] < 1e-4
        else:
            assert described["xnnpack_partitions"] <= 4

    # per-class NMS (the op's use_regular_nms) agrees with Keras' per-class post-processing
    per_class = dataclasses.replace(config, ssd=dataclasses.replace(config.ssd,
                                                                    per_class_nms=True))
    graph = exporter.inference_model(model, per_class, "fused")
    tflite = exporter.convert(graph, per_class, "float32")
    assert exporter.postprocess_options(tflite)["use_regular_nms"]
    assert not exporter.postprocess_options(exporter.convert(graph, config, "float32"))[
        "use_regular_nms"]
    ours = exporter.run(tflite, images[:4])
    reference = exporter.keras_detections(graph, per_class, images[:4])
    fast = exporter.keras_detections(graph, config, images[:4])
    assert sum(int(r["count"]) for r in reference) != sum(int(r["count"]) for r in fast)
    score = 0.5 * float(np.median([r["scores"][0] for r in ours]))
    assert exporter.agreement(ours, reference, score)["recall"] > 0.95


PY_FUNCTION_OPS = {"EagerPyFunc", "PyFunc", "PyFuncStateless"}


def _graph_ops(concrete_function):
    """Op types of a traced function and of every function it calls (map_fn bodies, ...)."""
    graph = concrete_function.graph.as_graph_def()
    return ({n.op for n in graph.node}
            | {n.op for f in graph.library.function for n in f.node_def})


@pytest.mark.slow
def test_eval_step_is_pure_tf_and_scores_like_eager_collection(tmp_path):
    """The COCO evaluation is fed on the host from the step's logs: no py_function in the
    compiled step (it could run on a TPU), and the mAP of the old way (each batch's detections
    handed to the evaluator as they come) on the same model."""
    from mobilenet_v3 import ModelConfig
    from mobilenet_v3.bench.calibration import calibrate_batch_norm
    from mobilenet_v3.detection.coco_metrics import CocoEvaluator
    from mobilenet_v3.detection.task import DetectionTask
    from mobilenet_v3.training import TrainConfig, Trainer
    config = TrainConfig(model_dir=str(tmp_path), global_batch_size=4, train_steps=1,
                         model=ModelConfig.from_flat(name="small", alpha=0.35,
                                                     reduced_tail=True),
                         data=data_lib.DetectionDataConfig(image_size=64,
                                                           synthetic_train_examples=8,
                                                           synthetic_eval_examples=10))
    task = DetectionTask(config)
    trainer = Trainer(config, task)
    ctx = tf.distribute.InputContext()
    batches = list(data_lib.eval_dataset(task.source, task.data, 4, ctx))
    calibrate_batch_norm(trainer.model, tf.concat([b[0] for b in batches[:2]], 0))
    result = trainer.evaluate(use_ema=False)

    spec = trainer.strategy.distribute_datasets_from_function(task.eval_dataset).element_spec
    ops = _graph_ops(trainer.compiled._eval_fn.get_concrete_function(spec))
    assert "TopKV2" in ops          # in non_max_suppression_padded: the map_fn body is seen
    assert not ops & PY_FUNCTION_OPS, ops & PY_FUNCTION_OPS
    hidden = tf.function(lambda x: tf.map_fn(                    # the check sees a nested one
        lambda t: tf.py_function(lambda v: v, [t], tf.float32), x))
    assert _graph_ops(hidden.get_concrete_function(tf.TensorSpec([2]))) & PY_FUNCTION_OPS

    old = CocoEvaluator(task.source.num_classes)
    for images, gt_boxes, gt_classes, image_ids, sizes in batches:
        encodings, logits = trainer.model(images, training=False)
        detections = box_lib.postprocess(encodings, logits, task.anchors, task.model_config)
        old.add(image_ids.numpy(), sizes.numpy(), gt_boxes.numpy(), gt_classes.numpy(),
                *(t.numpy() for t in detections))
    expected = old.result()
    assert len(old.dets) > 0 and expected["mAP50"] > 0        # not a 0 == 0 comparison
    assert result["mAP"] == pytest.approx(expected["mAP"], abs=1e-6)
    assert result["mAP50"] == pytest.approx(expected["mAP50"], abs=1e-6)
    assert result["examples"] == 10 and set(result) == {"mAP", "mAP50", "examples", "ema",
                                                         "step"}


def test_run_reads_boxes_classes_scores_count_in_any_output_order():
    """The mixed int8 search scores files straight from the converter (its own output order,
    scores first); run() must read the same detections as from the reordered file."""
    from conftest import tiny_detector
    from mobilenet_v3.export import detection as exporter
    config, model, images = tiny_detector(images=4)
    graph = exporter.inference_model(model, config, "fused")
    with exporter._converter(graph, config) as converter:
        raw = converter.convert()                       # before outputs_in_detection_order
    ordered = exporter.outputs_in_detection_order(raw)
    a, b = exporter.run(raw, images[:2]), exporter.run(ordered, images[:2])
    for x, y in zip(a, b):
        assert x["boxes"].shape == (100, 4) and x["count"].shape == ()
        n = int(y["count"])                  # past the count the op leaves memory as it was
        assert int(x["count"]) == n and n > 0
        for key in ("boxes", "classes", "scores"):
            np.testing.assert_array_equal(x[key][:n], y[key][:n])
