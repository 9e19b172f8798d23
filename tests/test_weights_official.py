"""The official uint8 MobileNetV3-Small TFLite file imported into our Small: scored by evaluate.py
on the 750 sample photos next to the file itself, and exported back to float32 TFLite."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from mobilenet_v3 import ModelConfig, weights
from mobilenet_v3.export import convert as conversion
from mobilenet_v3.analysis import tflite_inspect
from mobilenet_v3.data import preprocessing
from mobilenet_v3.weights import convert

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared")
OFFICIAL = os.path.join(SHARED, "models", "v3-small_224_1.0_uint8.tflite")
PHOTOS = os.path.join(SHARED, "datasets", "imagenet_samples")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (os.path.exists(OFFICIAL) and os.path.isdir(PHOTOS)),
                       reason=f"the official file / sample photos are not in {SHARED}"),
]


def test_imported_model_scores_like_the_official_file(tmp_path):
    for classes in (1001, 1000):
        convert.convert(OFFICIAL, str(tmp_path / f"small_{classes}"), classes=classes)
    report_path = tmp_path / "eval.json"
    run = subprocess.run(
        [sys.executable, "evaluate.py", f"--model={tmp_path / 'small_1001'}",
         f"--model={tmp_path / 'small_1000'}", f"--model={OFFICIAL}",
         f"--image_folder={PHOTOS}", f"--output_json={report_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.load(open(report_path))["results"]
    ours_1001, ours_1000, official = results
    assert [r["examples"] for r in results] == [750] * 3
    assert [r["classes"] for r in results] == [1001, 1000, 1001]
    assert official["top1"] > 0.5, official       # the photos and labels line up at all
    for ours in (ours_1001, ours_1000):
        assert abs(ours["top1"] - official["top1"]) <= 0.02, (ours, official)
    print(f"top-1: ours {ours_1001['top1']:.4f} / {ours_1000['top1']:.4f}, "
          f"official {official['top1']:.4f}")


def _photos(count, size=224):
    files = sorted(glob.glob(os.path.join(PHOTOS, "*", "*.jpg")))[::97][:count]
    return np.stack([preprocessing.eval_preprocess(
        tf.io.decode_jpeg(tf.io.read_file(f), channels=3), size).numpy() for f in files])


def test_float32_tflite_export_of_the_imported_model_matches_keras():
    config = ModelConfig.from_flat(name="small", classes=1001, include_preprocessing=False,
                         classifier_activation=None)
    model, _ = weights.weights_for(config, OFFICIAL)
    images = _photos(6)
    want = model(images, training=False).numpy()
    got = tflite_inspect.run(conversion.convert(model, "float32"), images)
    assert np.abs(want).max() > 1.0
    diff = float(np.abs(got - want).max())
    print(f"float32 TFLite vs Keras: max |diff| {diff:.2e}")
    assert diff <= 1e-4
