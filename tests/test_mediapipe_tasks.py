"""Our exported files in MediaPipe Tasks, the app runtime, on real weights and real photos.

MediaPipe runs in its own environment, created once and cached (mobilenet_v3/apps/
mediapipe_env.py; $MOBILENET_V3_CACHE); where it cannot be installed these tests skip, saying
why. Files: Google's MobileNetV3-Small, the official SSDLite-MobileNetV3-Small COCO weights and
DeepLab's LR-ASPP, each imported and exported by export_tflite.py's code as float32 and int8,
with their metadata. MediaPipe gets only the file: normalisation, labels and output meaning come
from the metadata.
"""

import glob
import os
import subprocess
import sys

import numpy as np
import pytest

from mobilenet_v3.apps import mediapipe_check, mediapipe_env

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("mediapipe")]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared")
MODELS = os.path.join(SHARED, "models")
PHOTOS = os.path.join(SHARED, "datasets", "imagenet_samples")
COCO = os.path.join(SHARED, "datasets", "coco_mini")
FORMATS = ("float32", "int8")


def _need(*paths):
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        pytest.skip(f"{missing[0]} not found (../shared holds the real weights and photos)")


@pytest.fixture(scope="module")
def mediapipe():
    try:
        return mediapipe_env.ensure()
    except mediapipe_env.MediaPipeUnavailable as e:
        pytest.skip(str(e))


def _script(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def classifier_files(tmp_path_factory):
    """Google's Small 1.0 @224 (1001 classes) through convert and export_tflite.py."""
    official = os.path.join(MODELS, "v3-small_224_1.0_uint8.tflite")
    _need(official, PHOTOS)
    folder = tmp_path_factory.mktemp("classifier")
    _script("-m", "mobilenet_v3.weights.convert", official, f"--output={folder / 'model'}",
            "--classes=1001")
    _script("export_tflite.py", f"--model={folder / 'model'}", f"--output_dir={folder}",
            "--formats=float32,int8", "--dataset=image_folder", f"--image_folder={PHOTOS}",
            "--held_out_fraction=0.6", "--calibration_images=100", "--check_images=32")
    return {f: str(folder / f"mobilenet_v3_small_1_224_{f}.tflite") for f in FORMATS}


@pytest.fixture(scope="module")
def detector_files(tmp_path_factory):
    """The official SSDLite-MobileNetV3-Small COCO weights, float32 and the mixed int8."""
    pytest.importorskip("coremltools", reason="reading the official weights' Core ML file")
    weights = os.path.join(MODELS, "ssdlite_mobilenet_v3_small_coco", "ssd_mobilenet.mlmodel")
    _need(weights, COCO)
    folder = tmp_path_factory.mktemp("detector")
    train = folder / "train"
    train.mkdir()
    (train / "images").symlink_to(os.path.abspath(os.path.join(COCO, "train2017")))
    (train / "annotations.json").symlink_to(
        os.path.abspath(os.path.join(COCO, "annotations", "instances_train2017.json")))
    _script("-m", "mobilenet_v3.weights.convert", weights, f"--output={folder / 'model'}")
    _script("export_tflite.py", f"--model={folder / 'model'}", f"--output_dir={folder}",
            "--formats=float32,int8", "--dataset=coco_json", f"--detection_folder={train}",
            f"--detection_val_json={COCO}/annotations/instances_val2017.json",
            f"--detection_val_images={COCO}/val2017", "--calibration_images=80",
            "--check_images=40")
    return {f: str(folder / f"ssdlite_{f}.tflite") for f in FORMATS}


@pytest.fixture(scope="module")
def segmenter_files(tmp_path_factory):
    """DeepLab's MobileNetV3-Small LR-ASPP (5 classes) at 257x513, float32 and mixed int8."""
    graph = os.path.join(MODELS, "deeplab_mnv3_small_lraspp_5class", "frozen_inference_graph.pb")
    _need(graph, COCO)
    import tensorflow as tf
    from mobilenet_v3.export import task_export
    from mobilenet_v3.modeling.heads.lraspp import build_segmenter
    from mobilenet_v3.tasks import segmentation
    from mobilenet_v3.weights import deeplab_graph
    config = deeplab_graph.deeplab_small_config(257, 513, include_preprocessing=False)
    model = build_segmenter(config)
    deeplab_graph.load_frozen_graph(model, graph)

    def photos(split, n):
        files = sorted(glob.glob(os.path.join(COCO, split, "*.jpg")))[:n]
        return np.stack([segmentation.crop_to_aspect(
            tf.io.decode_jpeg(tf.io.read_file(f), 3).numpy(), (257, 513)) for f in files])
    folder = tmp_path_factory.mktemp("segmenter")
    segmentation.export_model(
        model, config, (257, 513), [f"class_{i}" for i in range(5)], photos("train2017", 20),
        photos("val2017", 10), task_export.TaskExportConfig(
            output_dir=str(folder), formats=FORMATS, basename="lraspp",
            min_agreement=segmentation.DEFAULT_MIN_PIXEL_AGREEMENT,
            target_agreement=segmentation.DEFAULT_TARGET_CLASS_IOU), log=lambda s: None)
    return {f: str(folder / f"lraspp_{f}.tflite") for f in FORMATS}


@pytest.mark.parametrize("fmt", FORMATS)
def test_classifier_top1_in_mediapipe_is_ours(mediapipe, classifier_files, fmt):
    photos = mediapipe_check.photo_files(PHOTOS, 150)
    result = mediapipe_check.classifier(classifier_files[fmt], photos)
    assert result["mediapipe"] == mediapipe_env.MEDIAPIPE_VERSION
    assert result["top1_agreement"] >= 0.95, result
    assert result["names_are_the_labels"], result
    labels = mediapipe_check.mediapipe_metadata_labels(classifier_files[fmt])
    assert len(labels) == 1001 and labels[0] == "background" and "goldfish" in labels[2]


@pytest.mark.parametrize("fmt", FORMATS)
def test_detector_map_in_mediapipe_is_within_a_point_of_evaluate(mediapipe, detector_files,
                                                                  fmt):
    result = mediapipe_check.detector(detector_files[fmt],
                                      f"{COCO}/annotations/instances_val2017.json",
                                      f"{COCO}/val2017")
    assert result["images"] == 78 and result["detections_mediapipe"] > 0
    assert result["mAP_ours"] > 0.15, result                     # the real weights' level
    assert abs(result["mAP_mediapipe"] - result["mAP_ours"]) <= 0.01, result


@pytest.mark.parametrize("fmt", FORMATS)
def test_segmenter_category_masks_in_mediapipe_are_ours(mediapipe, segmenter_files, fmt):
    photos = sorted(glob.glob(os.path.join(COCO, "val2017", "*.jpg")))[10:20]
    result = mediapipe_check.segmenter(segmenter_files[fmt], photos)
    assert result["labels"] == [f"class_{i}" for i in range(5)]
    assert result["pixel_agreement"] >= 0.99, result


def test_our_metadata_is_what_mediapipes_own_writer_writes(classifier_files, detector_files,
                                                           segmenter_files, tmp_path):
    """MediaPipe 0.10's metadata writer (1.2's lacks its native module) on the same files
    without our metadata: the same tensor metadata and parser version. For the detector,
    MediaPipe's writer pairs the four outputs by tensor index, which puts "number of
    detections" on our boxes (the clip after the op gives them the last index); ours pairs
    them by what each output is, so only their order differs."""
    from mobilenet_v3.export import tflite_metadata
    from mobilenet_v3.export.tflite_metadata import writer
    try:
        mediapipe_env.ensure("0.10.21")
    except mediapipe_env.MediaPipeUnavailable as e:
        pytest.skip(str(e))
    files = {"classification": classifier_files["float32"],
             "detection": detector_files["float32"],
             "segmentation": segmenter_files["float32"]}
    for kind, path in files.items():
        ours = open(path, "rb").read()
        plain = tmp_path / f"{kind}.tflite"
        plain.write_bytes(writer.strip(ours))
        assert tflite_metadata.read(plain.read_bytes()) is None
        labels = writer.associated_files(ours)["labels.txt"].decode().splitlines()
        theirs = mediapipe_env.run("write_metadata", str(plain), version="0.10.21", kind=kind,
                                   labels=labels, mean=127.5, std=127.5,
                                   output=str(tmp_path / f"{kind}_mp.tflite"))["results"]
        mine = tflite_metadata.read(ours)
        assert theirs["min_parser_version"] == mine["min_parser_version"], kind
        a, b = theirs["subgraph_metadata"][0], mine["subgraph_metadata"][0]
        if kind == "detection":
            by_name = lambda tensors: sorted(tensors, key=lambda t: t["name"])  # noqa: E731
            assert a["output_tensor_metadata"][0]["name"] == "number of detections"
            assert b["output_tensor_metadata"][0]["name"] == "location"
            a = dict(a, output_tensor_metadata=by_name(a["output_tensor_metadata"]))
            b = dict(b, output_tensor_metadata=by_name(b["output_tensor_metadata"]))
        assert a == b, kind
