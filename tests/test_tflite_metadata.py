"""TFLite metadata (export/tflite_metadata): what each task's file carries, read back from the
file itself, the writer's refusals, and that metadata never changes what a file computes.
MediaPipe reading and running the files: tests/test_mediapipe_tasks.py."""

import json

import numpy as np
import pytest

from mobilenet_v3 import ModelConfig
from mobilenet_v3.export import convert, task_export, tflite_metadata
from mobilenet_v3.export.tflite_metadata import writer

from conftest import calibrated_model, tiny_detector


def same_computation(a: bytes, b: bytes) -> bool:
    """Whether two files give bit-identical outputs on one random input."""
    from mobilenet_v3.analysis import tflite_inspect
    outputs = []
    for content in (a, b):
        it = tflite_inspect.interpreter(content, xnnpack=False)
        inp = it.get_input_details()[0]
        rng = np.random.default_rng(0)
        if np.dtype(inp["dtype"]).kind in "iu":
            info = np.iinfo(inp["dtype"])
            x = rng.integers(info.min, info.max + 1, inp["shape"]).astype(inp["dtype"])
        else:
            x = rng.uniform(-1, 1, inp["shape"]).astype(inp["dtype"])
        it.set_tensor(inp["index"], x)
        it.invoke()
        outputs.append([it.get_tensor(d["index"]).copy() for d in it.get_output_details()])
    return len(outputs[0]) == len(outputs[1]) and all(
        np.array_equal(x, y) for x, y in zip(*outputs))


@pytest.fixture(scope="module")
def classifier_files():
    config = ModelConfig.from_flat(name="small", alpha=0.35, input_shape=(32, 32, 3),
                                   classes=5)
    model = calibrated_model(config)
    images = np.random.RandomState(0).uniform(-1, 1, (8, 32, 32, 3)).astype(np.float32)
    import tensorflow as tf
    return {"float32": convert.convert(model, "float32"),
            "int8": convert.convert(model, "int8", lambda: iter(images), io_dtype=tf.uint8)}


def _card(task="classification", labels=("a", "b", "c", "d", "e"), **kw):
    kw = dict(dict(version="abc123", provenance={"format": "x", "agreement": 0.5}), **kw)
    return tflite_metadata.ModelCard(task=task, name="tiny", description="a tiny model",
                                     labels=list(labels), **kw)


def test_classifier_metadata_reads_back_from_the_file(classifier_files):
    for fmt, content in classifier_files.items():
        written = tflite_metadata.attach(content, _card())
        found = tflite_metadata.read(written)
        sub = found["subgraph_metadata"][0]
        image = sub["input_tensor_metadata"][0]
        assert image["process_units"][0]["options"] == {"mean": [127.5], "std": [127.5]}
        assert image["content"]["content_properties"]["color_space"] == "RGB"
        # the stats say what reaches the network: [-1, 1] floats, or uint8 pixels
        assert image["stats"] == ({"min": [-1.0], "max": [1.0]} if fmt == "float32"
                                  else {"min": [0], "max": [255]})
        score = sub["output_tensor_metadata"][0]
        assert score["associated_files"][0] == {
            "name": "labels.txt", "type": "TENSOR_AXIS_LABELS",
            "description": "Labels for categories that the model can recognize."}
        assert (found["name"], found["version"], found["min_parser_version"]) == (
            "tiny", "abc123", "1.0.0")
        files = writer.associated_files(written)
        assert files["labels.txt"].decode().splitlines() == ["a", "b", "c", "d", "e"]
        assert json.loads(files["provenance.json"]) == {"format": "x", "agreement": 0.5}
        assert found["labels"] == 5
        assert same_computation(content, written)
        assert tflite_metadata.read(content) is None


def test_normalisation_follows_the_input_range_and_logits_are_said(classifier_files):
    found = tflite_metadata.read(tflite_metadata.attach(
        classifier_files["float32"], _card(input_range=(0.0, 255.0), scores="logits")))
    sub = found["subgraph_metadata"][0]
    assert sub["input_tensor_metadata"][0]["process_units"][0]["options"] == {
        "mean": [0.0], "std": [1.0]}
    assert "Logits" in sub["output_tensor_metadata"][0]["description"]
    assert "stats" not in sub["output_tensor_metadata"][0] or \
        sub["output_tensor_metadata"][0]["stats"] == {}


def test_writing_twice_replaces_the_metadata_and_the_files(classifier_files):
    once = tflite_metadata.attach(classifier_files["float32"], _card())
    twice = tflite_metadata.attach(once, _card(labels="vwxyz", version="second"))
    assert tflite_metadata.read(twice)["version"] == "second"
    assert writer.associated_files(twice)["labels.txt"].decode().split() == list("vwxyz")
    assert abs(len(twice) - len(once)) < 64                  # no second copy of anything
    from tensorflow.lite.tools import flatbuffer_utils
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(twice))
    assert [m.name for m in model.metadata].count(b"TFLITE_METADATA") == 1
    assert same_computation(classifier_files["float32"], twice)


def test_refusals(classifier_files):
    content = classifier_files["float32"]
    with pytest.raises(tflite_metadata.MetadataError, match="4 outputs"):
        tflite_metadata.attach(content, _card(task="detection"))
    with pytest.raises(tflite_metadata.MetadataError, match="task"):
        tflite_metadata.attach(content, _card(task="pose"))
    with pytest.raises(tflite_metadata.MetadataError, match="TFL3"):
        tflite_metadata.attach(b"not a model at all", _card())
    metadata, files = tflite_metadata.metadata_of(content, _card())
    with pytest.raises(tflite_metadata.MetadataError, match="not given"):
        writer.populate(content, metadata, {})
    metadata.subgraphMetadata[0].outputTensorMetadata *= 2
    with pytest.raises(tflite_metadata.MetadataError, match="1 output"):
        writer.populate(content, metadata, files)


def test_detector_and_segmenter_files_say_what_their_outputs_are(tmp_path):
    from mobilenet_v3.modeling.heads.lraspp import SegmenterConfig
    from mobilenet_v3.tasks import detection, segmentation
    det, model, images = tiny_detector(classes=3)
    reports = detection.export_model(model, det, ["cat", "dog"], images, images[:4],
                                     task_export.TaskExportConfig(
                                         output_dir=str(tmp_path / "d"), basename="ssdlite",
                                         formats=("float32",)), log=lambda s: None)
    found = reports["float32"]["metadata"]
    sub = found["subgraph_metadata"][0]
    names = [t["name"] for t in sub["output_tensor_metadata"]]
    assert names == ["location", "category", "score", "number of detections"]
    assert sub["output_tensor_groups"] == [{"name": "detection_result",
                                            "tensor_names": names[:3]}]
    box = sub["output_tensor_metadata"][0]["content"]["content_properties"]
    assert box == {"index": [1, 0, 3, 2], "type": "BOUNDARIES"}    # RATIO: the default
    assert sub["output_tensor_metadata"][1]["associated_files"][0]["type"] == \
        "TENSOR_VALUE_LABELS"
    assert found["min_parser_version"] == "1.2.0"          # tensor groups
    content = (tmp_path / "d" / "ssdlite_float32.tflite").read_bytes()
    assert tflite_metadata.read(content) == {k: v for k, v in found.items()}
    # the metadata's order is the file's: boxes [1, K, 4], classes, scores [1, K], count [1]
    from mobilenet_v3.analysis import tflite_inspect
    shapes = [list(d["shape"]) for d in
              tflite_inspect.interpreter(content).get_output_details()]
    k = det.ssd.max_detections
    assert shapes == [[1, k, 4], [1, k], [1, k], [1]]
    provenance = json.loads(writer.associated_files(content)["provenance.json"])
    assert provenance["task"] == "detection" and provenance["format"] == "float32"
    assert provenance["agreement"]["recall"] == reports["float32"]["agreement"]["recall"]

    config = SegmenterConfig.create(classes=3, name="small", alpha=0.35,
                                    input_shape=(64, 64, 3), include_preprocessing=False)
    from mobilenet_v3.modeling.heads.lraspp import build_segmenter
    from mobilenet_v3.bench.calibration import calibrate_batch_norm
    seg_model = build_segmenter(config)
    calibrate_batch_norm(seg_model, images)
    reports = segmentation.export_model(seg_model, config, (64, 64), ["sky", "road", "car"],
                                        images, images[:2], task_export.TaskExportConfig(
                                            output_dir=str(tmp_path / "s"),
                                            formats=("float32",)), log=lambda s: None)
    sub = reports["float32"]["metadata"]["subgraph_metadata"][0]
    masks = sub["output_tensor_metadata"][0]
    assert masks["name"] == "segmentation_masks"
    assert masks["content"]["content_properties"] == {"color_space": "GRAYSCALE"}
    assert masks["content"]["range"] == {"min": 1, "max": 2}
    assert sub["custom_metadata"] == [{"name": "SEGMENTER_METADATA",
                                       "data": {"activation": "SOFTMAX"}}]
    assert reports["float32"]["metadata"]["labels"] == 3
