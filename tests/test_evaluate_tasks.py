"""evaluate.py for every task: the task comes from the model, segmentation keeps each image's
aspect ratio, detection follows the COCO protocol, classification takes any class map."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tf_keras
from PIL import Image

from mobilenet_v3 import files
from mobilenet_v3.modeling.heads.lraspp import SegmenterConfig, build_segmenter
from mobilenet_v3.tasks import segmentation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared")
COCO = os.path.join(SHARED, "datasets", "coco_mini")
ENV = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")

pytestmark = pytest.mark.xdist_group("evaluate_tasks")


def _evaluate(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "evaluate.py"), *args], env=ENV,
                          capture_output=True, text=True, timeout=600)


def test_fit_and_pad_keeps_the_aspect_ratio():
    image = np.full((100, 300, 3), 255, np.uint8)
    padded, (rows, cols) = segmentation.fit_and_pad(image, (64, 128))
    assert (rows, cols) == (43, 128)              # 1:3 stays 1:3, not squashed to 1:2
    assert np.allclose(padded[:rows], 1.0) and np.allclose(padded[rows:], 0.0)
    crop = segmentation.crop_to_aspect(image, (64, 128))
    assert crop.shape == (64, 128, 3)


def test_scores_at_full_mask_resolution_with_ignore():
    rng = np.random.RandomState(0)
    mask = np.zeros((90, 200), np.int64)
    mask[20:70, 30:120] = 1
    mask[0:5] = 255                               # ignored rows
    image = rng.randint(0, 255, (90, 200, 3)).astype(np.uint8)
    size = (96, 192)           # the image fills 86x192 of it: the two resizes lose ~1 pixel

    def oracle(x):        # logits that are the true mask, placed as fit_and_pad places it
        import tensorflow as tf
        _, (rows, cols) = segmentation.fit_and_pad(image, size)
        small = tf.image.resize(np.eye(2)[np.minimum(mask, 1)].astype(np.float32),
                                (rows, cols)).numpy()
        out = np.zeros((1,) + size + (2,), np.float32)
        out[0, :rows, :cols] = small
        return out
    result = segmentation.score_masks(oracle, [image], [mask], size, 2)
    assert result["mIoU"] > 0.95 and result["images"] == 1
    wrong = segmentation.score_masks(lambda x: np.zeros((1,) + size + (2,)) + [1.0, 0.0],
                                     [image], [mask], size, 2)
    assert wrong["mIoU"] < 0.5
    with pytest.raises(ValueError, match="class id"):
        segmentation.score_masks(oracle, [image], [mask + 2 * (mask == 1)], size, 2)


@pytest.mark.slow
def test_segmenter_run_and_its_file_are_scored_by_evaluate(tmp_path):
    config = SegmenterConfig.create(classes=3, name="small", alpha=0.35, rf2=True,
                                    input_shape=(64, 128, 3), include_preprocessing=False)
    tf_keras.utils.set_random_seed(0)
    model = build_segmenter(config)
    final = tmp_path / "run" / "final"
    final.mkdir(parents=True)
    model.save(final / "model.keras")
    files.atomic_write_json(str(final / "model_config.json"), config.to_flat())
    masks = tmp_path / "masks"
    (masks / "images").mkdir(parents=True)
    (masks / "masks").mkdir()
    rng = np.random.RandomState(0)
    for k in range(3):
        Image.fromarray(rng.randint(0, 255, (60, 150, 3)).astype(np.uint8)).save(
            masks / "images" / f"{k}.png")
        Image.fromarray(rng.randint(0, 3, (60, 150)).astype(np.uint8), "L").save(
            masks / "masks" / f"{k}.png")
    from mobilenet_v3.segmentation import export as conversion
    graph = conversion.inference_model(model, config, "fused")
    tflite = tmp_path / "seg.tflite"
    tflite.write_bytes(conversion.convert(graph, "float32"))
    out = tmp_path / "report.json"
    run = _evaluate(f"--model={tmp_path / 'run'}", f"--model={tflite}",
                    f"--mask_folder={masks}", f"--output_json={out}")
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["task"] == "segmentation" and len(report["results"]) == 2
    keras, lite = report["results"]
    assert keras["images"] == 3 and keras["input_size"] == [64, 128]
    assert keras["mIoU"] == pytest.approx(lite["mIoU"], abs=1e-3)
    assert "mIoU" in run.stdout
    mixed = _evaluate(f"--model={tmp_path / 'run'}", f"--model={ROOT}/README.md")
    assert mixed.returncode == 1 and "Traceback" not in mixed.stderr
    missing = _evaluate(f"--model={tmp_path / 'run'}")
    assert missing.returncode == 1 and "--mask_folder" in missing.stderr


@pytest.mark.slow
def test_classifier_on_one_class_folder_with_a_class_map(tmp_path):
    from mobilenet_v3 import ModelConfig, build_model
    config = ModelConfig.from_flat(name="small", alpha=0.35, input_shape=(32, 32, 3),
                                   classes=3, classifier_activation=None)
    model = build_model(config)
    folder = tmp_path / "model"
    folder.mkdir()
    model.save(folder / "model.keras")
    files.atomic_write_json(str(folder / "model_config.json"), config.to_flat())
    photos = tmp_path / "photos" / "cat"
    photos.mkdir(parents=True)
    for k in range(2):
        Image.fromarray(np.full((40, 40, 3), 40 * k, np.uint8)).save(photos / f"{k}.jpg")
    (tmp_path / "map.txt").write_text("dog\ncat\nbird\n")
    run = _evaluate(f"--model={folder}", f"--image_folder={tmp_path / 'photos'}",
                    f"--class_map={tmp_path / 'map.txt'}")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "(2 images, 3 classes)" in run.stdout
    (tmp_path / "map1.txt").write_text("cat\n")
    refused = _evaluate(f"--model={folder}", f"--image_folder={tmp_path / 'photos'}",
                        f"--class_map={tmp_path / 'map1.txt'}")
    assert refused.returncode == 1 and "needs 1 or 2" in refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(COCO) or not os.path.exists(os.path.join(
    SHARED, "models", "ssdlite_mobilenet_v3_small_coco", "ssd_mobilenet.mlmodel")),
    reason=f"coco_mini / the official SSDLite weights are not in {SHARED}")
def test_official_detector_scored_by_evaluate_under_the_coco_protocol(tmp_path):
    pytest.importorskip("coremltools", reason="coremltools reads the official weights")
    from mobilenet_v3.weights import official_ssdlite
    model, config = official_ssdlite.load_official_small(os.path.join(
        SHARED, "models", "ssdlite_mobilenet_v3_small_coco", "ssd_mobilenet.mlmodel"))
    folder = tmp_path / "official"
    folder.mkdir()
    model.save(folder / "model.keras")
    files.atomic_write_json(str(folder / "model_config.json"), config.to_flat())
    annotations = os.path.join(COCO, "annotations", "instances_val2017.json")
    images = os.path.join(COCO, "val2017")
    out = tmp_path / "coco.json"
    run = _evaluate(f"--model={folder}", f"--annotations={annotations}", f"--images={images}",
                    "--max_examples=12", f"--output_json={out}")
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(out.read_text())["results"][0]
    assert result["images"] == 12 and result["mAP"] > 0.1 and result["mAP50"] > result["mAP"]
    wrong = _evaluate(f"--model={folder}", f"--annotations={annotations}",
                      f"--images={images}", "--category_ids=sorted", "--max_examples=2")
    assert wrong.returncode == 1 and "'sorted' needs 80" in wrong.stderr
