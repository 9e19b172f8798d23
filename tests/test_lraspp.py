"""LR-ASPP segmentation (issue 14): specs, cost model vs Table 7, head, data, metric, export."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from mobilenet_v3 import ModelConfig, specs
from mobilenet_v3.analysis import cost as cost_lib
from mobilenet_v3.modeling.heads.lraspp import (SegHeadConfig, SegmenterConfig,
                                                build_segmenter, low_level_block,
                                                pool_geometry)
from mobilenet_v3.segmentation import data as data_lib
from mobilenet_v3.segmentation.task import confusion_matrix, iou_from_confusion, mean_iou

from conftest import run_cases

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Paper Table 7 (PAPER.md): params (M), MAdds (B), 19 classes. Counted at DeepLab's Cityscapes
# evaluation crop 1025x2049 (at 1024x2048 V3-Small is 5.8% low; RESULTS.md).
TABLE_7 = [("large", True, "lraspp", 1.51, 9.74), ("small", True, "lraspp", 0.47, 2.90),
           ("large", False, "raspp", 3.60, 18.43)]


def test_rf2_halves_the_last_stage_with_its_expansion_like_deeplab():
    large = {b.index: b for b in specs.scale_arch(specs.reduced_last_stage(specs.LARGE),
                                                  1.0).blocks}
    assert (large[12].exp, large[12].out) == (672, 112)
    assert [(large[i].exp, large[i].out) for i in (13, 14, 15)] == [(336, 80), (480, 80),
                                                                    (480, 80)]
    small = {b.index: b for b in specs.scale_arch(specs.reduced_last_stage(specs.SMALL),
                                                  1.0).blocks}
    assert [(small[i].exp, small[i].out) for i in (9, 10, 11)] == [(144, 48), (288, 48),
                                                                   (288, 48)]
    # the detection variant keeps the stride-2 row's expansion (C4): not the same transform
    assert specs.reduced_tail(specs.LARGE).blocks[12].exp == 672


def test_atrous_rows_follow_slim_output_stride_rule():
    rows = specs.atrous(specs.LARGE, 16).blocks
    assert [(b.stride, b.dilation) for b in rows[12:]] == [(1, 1), (1, 2), (1, 2)]
    assert [b.stride for b in rows[:12]] == [b.stride for b in specs.LARGE.blocks[:12]]
    rows8 = specs.atrous(specs.SMALL, 8).blocks
    assert [(b.stride, b.dilation) for b in rows8[3:]] == [(1, 1)] + [(1, 2)] * 4 + \
        [(1, 2)] + [(1, 4)] * 2
    with pytest.raises(ValueError, match="output_stride"):
        specs.atrous(specs.LARGE, 4)


def test_new_backbone_fields_stay_out_of_old_records():
    flat = ModelConfig().to_flat()
    assert "rf2" not in flat and "output_stride" not in flat
    seg = ModelConfig.from_flat(rf2=True, output_stride=16)
    assert ModelConfig.from_flat(**seg.to_flat()) == seg
    with pytest.raises(ValueError, match="choose one"):
        ModelConfig.from_flat(rf2=True, reduced_tail=True).validate()


def test_pool_geometry_is_deeplabs_by_default_torchvisions_or_the_legacy_scaled_one():
    seg = SegHeadConfig()            # image_pooling_crop_size 769,769, stride 4,5
    assert pool_geometry(1024, 2048, 16, seg) == ((49, 49), (4, 5))
    assert pool_geometry(769, 769, 16, seg) == ((49, 49), (4, 5))       # a global pool
    assert pool_geometry(512, 1024, 16, seg) == ((32, 49), (4, 5))      # clipped to the map
    assert pool_geometry(1025, 2049, 32, seg) == ((25, 25), (4, 5))
    assert pool_geometry(512, 1024, 16, dataclasses.replace(seg, global_pool=True)) == (
        (32, 64), (1, 1))
    legacy = dataclasses.replace(seg, pool_crop=None, pool_stride=None)   # scaled with input
    assert pool_geometry(1024, 2048, 16, legacy) == ((49, 49), (4, 5))
    assert pool_geometry(512, 1024, 16, legacy) == ((24, 24), (2, 3))
    assert pool_geometry(64, 64, 16, legacy) == ((3, 3), (1, 1))
    assert low_level_block(ModelConfig.from_flat(name="large", output_stride=16)) == 6
    assert low_level_block(ModelConfig.from_flat(name="small", output_stride=16)) == 3


def test_head_settings_are_recorded_and_old_records_keep_the_head_they_trained(tmp_path):
    import tf_keras
    from mobilenet_v3.modeling.layers import AlignedResize
    ramp = np.array([0.0, 3.0], np.float32).reshape(1, 1, 2, 1)
    aligned = AlignedResize(1, 4)(ramp).numpy().ravel()
    np.testing.assert_allclose(aligned, [0, 1, 2, 3], atol=1e-6)          # corners aligned
    half_pixel = tf_keras.layers.Resizing(1, 4)(ramp).numpy().ravel()
    np.testing.assert_allclose(half_pixel, [0, 0.75, 2.25, 3], atol=1e-6)

    config = SegmenterConfig.create(classes=3, name="small", alpha=0.35,
                                    input_shape=(64, 128, 3), include_preprocessing=False)
    flat = config.to_flat()
    assert (flat["seg_gate"], flat["seg_align_corners"], flat["seg_pool_crop"],
            flat["seg_pool_stride"], flat["seg_global_pool"]) == (
        "hard_sigmoid", True, [769, 769], [4, 5], False)
    assert SegmenterConfig.from_flat(json.loads(json.dumps(flat))) == config
    old = {k: v for k, v in flat.items()
           if k not in ("seg_gate", "seg_align_corners", "seg_pool_crop", "seg_global_pool")}
    old["seg_pool_stride"] = None
    legacy = SegmenterConfig.from_flat(old).seg
    assert (legacy.gate, legacy.align_corners, legacy.pool_crop, legacy.pool_stride) == (
        "sigmoid", False, None, None)
    model = build_segmenter(config)
    layers = {layer.name: type(layer).__name__ for layer in model.layers}
    assert "seg_pool_gate_relu6" in layers and "seg_pool_sigmoid" not in layers
    assert layers["seg_aspp_resize"] == layers["seg_upsample"] == "AlignedResize"
    before = build_segmenter(SegmenterConfig.from_flat(old))
    kinds = {type(layer).__name__ for layer in before.layers}
    assert "AlignedResize" not in kinds and "seg_pool_sigmoid" in [x.name for x in before.layers]
    # the new layer saves and loads with the model
    images = np.random.RandomState(0).uniform(-1, 1, (1, 64, 128, 3)).astype(np.float32)
    model.save(tmp_path / "m.keras")
    again = tf_keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again(images).numpy(), model(images).numpy(), atol=1e-5)


@pytest.mark.parametrize("name,rf2,head,params_m,madds_b", [
    TABLE_7[0]] + [pytest.param(*row, marks=pytest.mark.slow) for row in TABLE_7[1:]])
def test_cost_model_matches_table_7(name, rf2, head, params_m, madds_b):
    config = SegmenterConfig.create(head=head, classes=19, name=name, rf2=rf2,
                                    input_shape=(1025, 2049, 3), include_preprocessing=False)
    totals = cost_lib.totals(cost_lib.profile(build_segmenter(config)))
    assert totals.weight_params / 1e6 == pytest.approx(params_m, rel=0.05)
    assert totals.madds / 1e9 == pytest.approx(madds_b, rel=0.05)


@pytest.mark.parametrize("head", ["lraspp", "raspp"])
def test_head_outputs_logits_at_input_size(head):
    config = SegmenterConfig.create(head=head, classes=5, name="small", alpha=0.35, rf2=True,
                                    input_shape=(64, 96, 3))
    model = build_segmenter(config)
    assert model.output_shape == (None, 64, 96, 5)
    names = {layer.name for layer in model.layers}
    assert ("seg_logits_low" in names) == (head == "lraspp")
    assert model.get_layer("bneck10_depthwise").dilation_rate == (2, 2)
    assert SegmenterConfig.from_flat(config.to_flat()) == config


def test_confusion_and_miou_ignore_255():
    masks = tf.constant([[[0, 1, 255, 2]]])
    logits = tf.one_hot([[[0, 2, 1, 2]]], 3)
    matrix = confusion_matrix(logits, masks, 3).numpy()
    assert matrix.sum() == 3 and matrix[1, 2] == 1 and matrix[2, 2] == 1
    np.testing.assert_allclose(iou_from_confusion(matrix), [1.0, 0.0, 0.5])
    assert mean_iou(matrix) == pytest.approx(0.5)


# Two logical CPUs must be set before TensorFlow initialises: in a process of its own.
TWO_REPLICA_EVAL = """
import json
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np
from mobilenet_v3 import ModelConfig
from mobilenet_v3.bench.calibration import calibrate_batch_norm
from mobilenet_v3.segmentation import data as data_lib
from mobilenet_v3.segmentation.task import SegmentationTask
from mobilenet_v3.training import TrainConfig, Trainer

config = TrainConfig(
    model_dir=sys.argv[1], strategy="mirrored", global_batch_size=4, train_steps=1,
    model=ModelConfig.from_flat(name="small", alpha=0.35),
    data=data_lib.SegmentationDataConfig(image_size=64, num_classes=3,
                                         synthetic_train_examples=8,
                                         synthetic_eval_examples=10))
task = SegmentationTask(config)
trainer = Trainer(config, task)
batches = list(data_lib.eval_dataset(task.source, task.data, 2, tf.distribute.InputContext()))
calibrate_batch_norm(trainer.model, tf.concat([b[0] for b in batches[:2]], 0))
shapes = []
aggregate = task.aggregate_logs
task.aggregate_logs = lambda state, logs: (shapes.append(logs["confusion"].shape),
                                           aggregate(state, logs))[1]
sums, matrix = trainer.compiled.eval_pass()
result = trainer.evaluate(use_ema=False)
expected = np.zeros((3, 3), np.int64)
for images, masks, _ in batches:       # the 10 held-out images, 2 at a time as per replica
    predicted = np.argmax(trainer.model(images, training=False).numpy(), -1)
    valid = masks.numpy() != 255
    expected += np.bincount(3 * masks.numpy()[valid] + predicted[valid],
                            minlength=9).reshape(3, 3)
print(json.dumps({"replicas": trainer.strategy.num_replicas_in_sync, "shapes": shapes,
                  "matrix": matrix.tolist(), "expected": expected.tolist(),
                  "result": result}))
"""


@pytest.mark.slow
def test_eval_sums_one_confusion_matrix_over_two_replicas(tmp_path):
    """The k x k matrix comes to the host from both replicas of every step (no k**2 named
    sums) and is the confusion matrix of the held-out set counted directly in numpy."""
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run([sys.executable, "-c", TWO_REPLICA_EVAL, str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2
    assert out["shapes"] == [[2, 3, 3]] * 6     # 2 passes of 3 steps, a 3 x 3 per replica
    matrix = np.array(out["matrix"])
    np.testing.assert_array_equal(matrix, out["expected"])
    assert (matrix > 0).sum() >= 4              # not one predicted class: a real comparison
    result = out["result"]
    assert result["mIoU"] == pytest.approx(mean_iou(matrix))
    assert result["pixel_accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum())
    iou = iou_from_confusion(matrix)
    assert [result[f"IoU/{n}"] for n in ("background", "rectangle_1", "ellipse_2")] == \
        pytest.approx(list(iou))
    assert result["examples"] == 10 and not any(k.startswith("confusion") for k in result)


def test_synthetic_and_augment_are_seeded_and_keep_labels():
    image, mask = data_lib.synthetic.make_example(5, 0, 4, 96)
    again, _ = data_lib.synthetic.make_example(5, 0, 4, 96)
    np.testing.assert_array_equal(image.numpy(), again.numpy())
    ids = set(np.unique(mask.numpy()))
    assert 0 in ids and ids - {0, 255} and ids <= {0, 1, 2, 3, 255}
    seed = tf.constant([0, 7], tf.int64)
    a = data_lib.augment(image, mask, seed, 64)
    b = data_lib.augment(image, mask, seed, 64)
    c = data_lib.augment(image, mask, seed + 1, 64)
    np.testing.assert_array_equal(a[1].numpy(), b[1].numpy())
    assert a[0].shape == (64, 64, 3) and a[1].shape == (64, 64)
    assert not np.array_equal(a[0].numpy(), c[0].numpy())
    assert set(np.unique(a[1].numpy())) <= ids | {255}


def test_random_scale_of_the_original_image_in_deeplabs_steps():
    """Stripes 10 px wide in a 100x100 photo: with scale_of='original' and scales {0.5, 2.0}
    (step 1.5) a 32 crop shows stripes 5 or 20 px wide; with 'crop' (shorter side = 32 x s)
    1.6 or 6.4."""
    stripes = (np.arange(100) // 10) % 2
    mask = tf.constant(np.tile(stripes, (100, 1)), tf.int32)
    image = tf.zeros([100, 100, 3], tf.uint8)

    def widths(scale_of):
        out = set()
        for k in range(12):
            _, m = data_lib.augment(image, mask, tf.constant([1, k], tf.int64), 32, 0.5, 2.0,
                                    1.5, scale_of)
            row = m.numpy()[0]
            edges = np.flatnonzero(np.diff(row)) + 1
            runs = np.diff(edges)          # whole stripes inside the crop
            out.add(int(np.median(runs)) if len(runs) else 32)
        return out
    original = widths("original")        # 32: a crop with fewer than two stripe edges
    assert original <= {5, 20, 32} and 5 in original and original & {20, 32}, original
    assert max(widths("crop")) <= 7


def _write_folder(root, n=4, size=(40, 30), bad=None):
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    os.makedirs(os.path.join(root, "masks"), exist_ok=True)
    rng = np.random.RandomState(0)
    for i in range(n):
        w, h = size
        Image.fromarray(rng.randint(0, 255, (h, w, 3), np.uint8)).save(
            os.path.join(root, "images", f"im{i}.png"))
        mask = rng.randint(0, 3, (h, w)).astype(np.uint8)
        mask[0] = 255
        if bad == "size" and i == 2:
            mask = mask[:-1]
        if bad == "class" and i == 1:
            mask[3, 3] = 7
        if bad == "missing" and i == 3:
            continue
        Image.fromarray(mask).save(os.path.join(root, "masks", f"im{i}.png"))


def test_mask_folder_reads_images_and_masks(tmp_path):
    _write_folder(str(tmp_path), n=5)
    config = data_lib.SegmentationDataConfig(source="mask_folder", mask_folder=str(tmp_path),
                                             image_size=32, held_out_fraction=0.2)
    source = data_lib.open_source(config)
    assert (source.num_classes, source.num_train, source.num_eval) == (3, 4, 1)
    image, mask = next(iter(source.eval_examples()))
    assert image.shape == (30, 40, 3) and mask.shape == (30, 40)
    assert set(np.unique(mask.numpy())) <= {0, 1, 2, 255}


def test_mask_folder_class_names_from_a_file_and_no_phantom_classes(tmp_path):
    _write_folder(str(tmp_path / "data"), n=5)                # ids 0..2
    base = dict(source="mask_folder", mask_folder=str(tmp_path / "data"), image_size=32,
                held_out_fraction=0.2)
    names = tmp_path / "names.txt"
    names.write_text("road\ncar\nperson\nbicycle\n")
    source = data_lib.open_source(data_lib.SegmentationDataConfig(**base,
                                                                  class_list=str(names)))
    assert source.class_names == ("road", "car", "person", "bicycle")   # named: may be unseen
    with pytest.raises(data_lib.MaskError, match=r"ids up to 2 only: class\(es\) 3..4"):
        data_lib.open_source(data_lib.SegmentationDataConfig(**base, num_classes=5))
    with pytest.raises(data_lib.MaskError, match="names 4 classes"):
        data_lib.open_source(data_lib.SegmentationDataConfig(**base, num_classes=3,
                                                             class_list=str(names)))
    names.write_text("road\ncar\n")
    with pytest.raises(data_lib.MaskError, match=r"class id\(s\) \[2\] >= num_classes 2"):
        data_lib.open_source(data_lib.SegmentationDataConfig(**base, class_list=str(names)))


@pytest.mark.parametrize("bad,message", [("size", "is 40x29 but its image"),
                                         ("class", r"class id\(s\) \[7\] >= num_classes 3"),
                                         ("missing", "no mask for")])
def test_bad_masks_are_named(tmp_path, bad, message):
    _write_folder(str(tmp_path), bad=bad)
    with pytest.raises(data_lib.MaskError, match=message):
        data_lib.read_mask_folder(str(tmp_path), num_classes=3)


def test_cityscapes_label_ids_map_to_19_train_ids():
    ids = data_lib.cityscapes_train_ids(tf.constant([0, 7, 8, 26, 33, 34, 255])).numpy()
    np.testing.assert_array_equal(ids, [255, 0, 1, 13, 18, 255, 255])


@pytest.mark.slow
def test_tfds_cityscapes_on_mock_data():
    import tensorflow_datasets as tfds
    config = data_lib.SegmentationDataConfig(source="cityscapes", image_size=64)
    with tfds.testing.mock_data(num_examples=2):
        source = data_lib.open_source(config)
        assert source.num_classes == 19
        batch = next(iter(data_lib.train_dataset(source, config, 2,
                                                 tf.distribute.InputContext(), 0)))
    images, masks, _ = batch
    assert images.shape == (2, 64, 64, 3)
    assert set(np.unique(masks.numpy())) <= set(range(19)) | {255}


@pytest.mark.slow
def test_train_export_and_refusals(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    model_dir = tmp_path / "run"
    common = ["--task=segmentation", "--model=small", "--alpha=0.35", "--reduced_tail",
              "--resolution=64", "--num_classes=3", f"--model_dir={model_dir}"]
    refused, run = run_cases("train.py", [
        common + ["--init_weights=x.tflite"],
        common + ["--synthetic_train_examples=64", "--synthetic_eval_examples=8",
                  "--batch_size=8", "--train_steps=2", "--log_every_steps=1",
                  "--base_learning_rate=0.5", "--base_batch_size=4096"]])
    assert refused["code"] == 1 and "x.tflite" in refused["stderr"]      # named, not found
    assert "not found" in refused["stderr"] and "Traceback" not in refused["stderr"]
    assert run["code"] == 0, run["stderr"][-2000:]
    assert "mIoU" in run["stdout"]
    out = tmp_path / "tflite"
    export = subprocess.run([sys.executable, os.path.join(ROOT, "export_tflite.py"),
                             f"--model={model_dir}", f"--output_dir={out}",
                             "--calibration_images=4", "--check_images=2",
                             "--max_float_blocks=0", "--min_int8_agreement=0"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert export.returncode == 0, export.stderr[-2000:]
    files = {name: json.loads((out / f"lraspp_{name}.json").read_text())
             for name in ("float32", "int8")}
    assert files["float32"]["agreement"]["pixel_agreement"] >= 0.99
    assert files["int8"]["float_tensors_inside"] == []
    assert 0 <= files["int8"]["agreement"]["pixel_agreement"] <= 1
    assert files["int8"]["guard"]["verdict"] == "pass" and files["int8"]["task"] == "segmentation"
    # a 2-step model has degenerate int8 scales XNNPACK may refuse (the trained demo exports
    # in 1 partition at 128 and 512x1024); float32 must be one partition regardless
    assert files["float32"]["xnnpack_partitions"] == 1
