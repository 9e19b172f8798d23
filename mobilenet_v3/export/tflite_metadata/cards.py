"""The metadata of each task's file, as MediaPipe's metadata writers (image_classifier,
object_detector.create_for_models_with_nms, image_segmenter) write it, plus our provenance.

The same tensor metadata those writers produce (names, descriptions, stats, content properties,
label files, tensor groups, the segmenter's activation), so MediaPipe Tasks and the TFLite
Task Library read our files as they read files made with MediaPipe's tools; tests compare the
two writers' output on the same file. Added: the model's version and author, and a
`provenance.json` (architecture, run, calibration, measured agreement) as a model-level file.
"""

import dataclasses
import json
from typing import Dict, List, Optional, Sequence, Tuple

import flatbuffers
import numpy as np

from mobilenet_v3.export.tflite_metadata import schema_py_generated as fb
from mobilenet_v3.export.tflite_metadata import segmenter_schema_py_generated as seg_fb
from mobilenet_v3.export.tflite_metadata import writer

LABELS_FILE = "labels.txt"
PROVENANCE_FILE = "provenance.json"
SEGMENTER_METADATA = "SEGMENTER_METADATA"
TASKS = ("classification", "detection", "segmentation")
# What MediaPipe's writers call the tensors (metadata_writer.py / metadata_info.py).
_IMAGE = ("image", "Input image to be processed.")
_CLASSIFICATION = ("score", "Score of the labels respectively.")
_SEGMENTATION = ("segmentation_masks", "Masks over the target objects with high accuracy.")
_DETECTION = (("location", "The locations of the detected boxes."),
              ("category", "The categories of the detected boxes."),
              ("score", "The scores of the detected boxes."),
              ("number of detections", "The number of the detected boxes."))
_LABELS_DESCRIPTION = "Labels for categories that the model can recognize."
_PROVENANCE_DESCRIPTION = "How this file was made: architecture, training run, calibration, " \
                          "measured agreement with the model it stands for (mobilenet-v3)."


@dataclasses.dataclass
class ModelCard:
    """What a file's metadata says besides its tensors."""
    task: str                          # classification | detection | segmentation
    name: str
    description: str
    version: str
    labels: Sequence[str]              # one per class index the file outputs
    input_range: Tuple[float, float] = (-1.0, 1.0)   # the float values the network takes
    scores: str = "probabilities"      # classification: probabilities | logits
    segmenter_activation: str = "SOFTMAX"   # segmentation outputs are logits
    author: str = "mobilenet-v3 (export_tflite.py)"
    provenance: Optional[Dict] = None

    def normalization(self) -> Tuple[float, float]:
        """MediaPipe's (mean, std): (pixel - mean) / std maps [0, 255] onto input_range."""
        low, high = self.input_range
        std = 255.0 / (high - low)
        return -low * std, std


def _tensor_types(tflite: bytes):
    from mobilenet_v3.analysis import tflite_inspect
    if len(tflite) < 8 or tflite[4:8] != writer.MODEL_IDENTIFIER:
        raise writer.MetadataError("not a TFLite flatbuffer (no TFL3 identifier)")
    it = tflite_inspect.interpreter(tflite, xnnpack=False)
    return ([np.dtype(d["dtype"]) for d in it.get_input_details()],
            [(np.dtype(d["dtype"]), d["name"]) for d in it.get_output_details()])


def _stats(low, high):
    stats = fb.StatsT()
    stats.min, stats.max = [low], [high]
    return stats


def _labels_file(kind=fb.AssociatedFileType.TENSOR_AXIS_LABELS):
    f = fb.AssociatedFileT()
    f.name, f.description, f.type = LABELS_FILE, _LABELS_DESCRIPTION, kind
    return f


def _content(kind, properties, value_range=None):
    content = fb.ContentT()
    content.contentPropertiesType, content.contentProperties = kind, properties
    if value_range is not None:
        content.range = fb.ValueRangeT()
        content.range.min, content.range.max = value_range
    return content


def _tensor(name, description, content=None, stats=None, files=None):
    t = fb.TensorMetadataT()
    t.name, t.description = name, description
    t.content = content or _content(fb.ContentProperties.FeatureProperties,
                                    fb.FeaturePropertiesT())
    t.stats = stats or fb.StatsT()
    t.associatedFiles = files
    return t


def _image_input(card: ModelCard, dtype: np.dtype):
    mean, std = card.normalization()
    image = fb.ImagePropertiesT()
    image.colorSpace = fb.ColorSpaceType.RGB
    if dtype == np.uint8:
        stats = _stats(0, 255)
    elif dtype == np.float32:
        stats = _stats((0.0 - mean) / std, (255.0 - mean) / std)
    else:
        stats = None
    t = _tensor(*_IMAGE, _content(fb.ContentProperties.ImageProperties, image), stats)
    unit = fb.ProcessUnitT()
    unit.optionsType = fb.ProcessUnitOptions.NormalizationOptions
    unit.options = fb.NormalizationOptionsT()
    unit.options.mean, unit.options.std = [mean], [std]
    t.processUnits = [unit]
    return t


def _classification_outputs(card, outputs):
    dtype, _ = outputs[0]
    if card.scores == "logits":
        stats, description = None, "Logits of the labels respectively (no softmax)."
    else:
        stats = _stats(0, 255) if dtype == np.uint8 else _stats(0.0, 1.0) \
            if dtype == np.float32 else None
        description = _CLASSIFICATION[1]
    return [_tensor(_CLASSIFICATION[0], description, stats=stats, files=[_labels_file()])], []


def _detection_outputs(card, outputs):
    """boxes, classes, scores, count: the order export/detection.py gives the outputs."""
    if len(outputs) != 4:
        raise writer.MetadataError(f"a detector file has 4 outputs, this one {len(outputs)}")
    dims = (2, 2)
    box = fb.BoundingBoxPropertiesT()
    box.index, box.type = [1, 0, 3, 2], fb.BoundingBoxType.BOUNDARIES
    box.coordinateType = fb.CoordinateType.RATIO
    location = _tensor(*_DETECTION[0], _content(fb.ContentProperties.BoundingBoxProperties,
                                                box, dims))
    category = _tensor(*_DETECTION[1], _content(fb.ContentProperties.FeatureProperties,
                                                fb.FeaturePropertiesT(), dims),
                       files=[_labels_file(fb.AssociatedFileType.TENSOR_VALUE_LABELS)])
    score = _tensor(*_DETECTION[2], _content(fb.ContentProperties.FeatureProperties,
                                             fb.FeaturePropertiesT(), dims))
    count = _tensor(*_DETECTION[3])
    group = fb.TensorGroupT()
    group.name, group.tensorNames = "detection_result", [n for n, _ in _DETECTION[:3]]
    return [location, category, score, count], [group]


def _segmentation_outputs(card, outputs):
    image = fb.ImagePropertiesT()
    image.colorSpace = fb.ColorSpaceType.GRAYSCALE
    masks = _tensor(*_SEGMENTATION, _content(fb.ContentProperties.ImageProperties, image,
                                             (1, 2)), files=[_labels_file()])
    return [masks], []


def _segmenter_options(activation: str):
    options = seg_fb.ImageSegmenterOptionsT()
    options.activation = getattr(seg_fb.Activation, activation)
    builder = flatbuffers.Builder(0)
    builder.Finish(options.Pack(builder), b"V001")
    custom = fb.CustomMetadataT()
    custom.name, custom.data = SEGMENTER_METADATA, list(bytes(builder.Output()))
    return custom


_OUTPUTS = {"classification": _classification_outputs, "detection": _detection_outputs,
            "segmentation": _segmentation_outputs}


def metadata_of(tflite: bytes, card: ModelCard) -> Tuple[fb.ModelMetadataT, Dict[str, bytes]]:
    """The ModelMetadataT of the file and the associated files it names."""
    if card.task not in _OUTPUTS:
        raise writer.MetadataError(f"no metadata for task {card.task!r} (known: {TASKS})")
    inputs, outputs = _tensor_types(tflite)
    if len(inputs) != 1:
        raise writer.MetadataError(f"an image model has one input, this file {len(inputs)}")
    sub = fb.SubGraphMetadataT()
    sub.inputTensorMetadata = [_image_input(card, inputs[0])]
    sub.outputTensorMetadata, groups = _OUTPUTS[card.task](card, outputs)
    if groups:
        sub.outputTensorGroups = groups
    if card.task == "segmentation" and card.segmenter_activation:
        sub.customMetadata = [_segmenter_options(card.segmenter_activation)]
    model = fb.ModelMetadataT()
    model.name, model.description = card.name, card.description
    model.version, model.author = card.version, card.author
    model.subgraphMetadata = [sub]
    files = {LABELS_FILE: ("\n".join(card.labels)).encode()}
    if card.provenance is not None:
        provenance = fb.AssociatedFileT()
        provenance.name, provenance.description = PROVENANCE_FILE, _PROVENANCE_DESCRIPTION
        provenance.type = fb.AssociatedFileType.DESCRIPTIONS
        model.associatedFiles = [provenance]
        files[PROVENANCE_FILE] = json.dumps(card.provenance, indent=1, sort_keys=True,
                                            default=str).encode()
    return model, files


def attach(tflite: bytes, card: ModelCard) -> bytes:
    """The file with its metadata and associated files (labels, provenance)."""
    metadata, files = metadata_of(tflite, card)
    return writer.populate(tflite, metadata, files)


def read(tflite: bytes) -> Optional[Dict]:
    """The file's metadata (flatc JSON keys; the segmenter's options decoded), its associated
    files' names, and the label count; None when the file has none."""
    found = writer.read(tflite)
    if found is None:
        return None
    for sub in found.get("subgraph_metadata", []):
        for custom in sub.get("custom_metadata", []):
            if custom.get("name") == SEGMENTER_METADATA and isinstance(custom.get("data"), list):
                options = seg_fb.ImageSegmenterOptionsT.InitFromPackedBuf(
                    bytes(custom["data"]), 0)
                names = {v: k for k, v in vars(seg_fb.Activation).items()
                         if not k.startswith("_")}
                custom["data"] = {"activation": names.get(options.activation,
                                                          options.activation)}
    files = writer.associated_files(tflite)
    found["associated_files_packed"] = sorted(files)
    if LABELS_FILE in files:
        found["labels"] = len(files[LABELS_FILE].decode().splitlines())
    return found


def summary(found: Optional[Dict]) -> List[str]:
    """One line per fact of the metadata for the export log."""
    if not found:
        return ["no TFLite metadata"]
    sub = found["subgraph_metadata"][0]
    image = sub["input_tensor_metadata"][0]
    norm = image["process_units"][0]["options"]
    outputs = ", ".join(t["name"] for t in sub["output_tensor_metadata"])
    return [f"metadata: {found.get('name')} v{found.get('version')}, input normalised as "
            f"(pixel - {norm['mean'][0]:g}) / {norm['std'][0]:g}, outputs {outputs}, "
            f"{found.get('labels', 0)} labels, parser >= {found.get('min_parser_version')}"]
