"""TFLite metadata in and out of a .tflite: pack a ModelMetadataT with its associated files
into the model, and read it back as JSON-like dicts.

This is what MediaPipe's `MetadataPopulator` and `MetadataDisplayer` do, on the same
flatc-generated schema binding: the metadata flatbuffer (identifier M001) goes into a model
buffer named TFLITE_METADATA, the associated files (labels) into a zip appended to the model,
and the minimum parser version is computed from the schema members the metadata uses (the rule
MediaPipe's native metadata_version.cc applies; tests compare with MediaPipe's own writer).
"""

import io
import re
import zipfile
from typing import Dict, Mapping, Optional

import flatbuffers

from mobilenet_v3.export.tflite_metadata import schema_py_generated as fb

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
MODEL_IDENTIFIER = b"TFL3"


class MetadataError(ValueError):
    """A file that cannot carry, or does not carry, readable TFLite metadata."""


_UNIT_VERSIONS = {fb.ProcessUnitOptions.BertTokenizerOptions: (1, 1, 0),
                  fb.ProcessUnitOptions.SentencePieceTokenizerOptions: (1, 1, 0),
                  fb.ProcessUnitOptions.RegexTokenizerOptions: (1, 2, 1)}


def min_parser_version(metadata: fb.ModelMetadataT) -> str:
    """The oldest metadata parser that reads every member this metadata uses: the member ->
    version table of MediaPipe's metadata_version.cc (GetMinimumMetadataParserVersion)."""
    version = (1, 0, 0)

    def need(v):
        nonlocal version
        version = max(version, v)

    def files(items):
        for f in items or []:
            if f.type == fb.AssociatedFileType.VOCABULARY:
                need((1, 0, 1))
            if f.type == fb.AssociatedFileType.SCANN_INDEX_FILE:
                need((1, 4, 0))
            if getattr(f, "version", None):
                need((1, 4, 1))

    files(metadata.associatedFiles)
    for sub in metadata.subgraphMetadata or []:
        files(sub.associatedFiles)
        if sub.inputProcessUnits or sub.outputProcessUnits:
            need((1, 1, 0))
        if sub.inputTensorGroups or sub.outputTensorGroups:
            need((1, 2, 0))
        if sub.customMetadata:
            need((1, 5, 0))
        for tensor in (sub.inputTensorMetadata or []) + (sub.outputTensorMetadata or []):
            files(tensor.associatedFiles)
            content = tensor.content
            if content is not None and \
                    content.contentPropertiesType == fb.ContentProperties.AudioProperties:
                need((1, 3, 0))
            for unit in tensor.processUnits or []:
                need(_UNIT_VERSIONS.get(unit.optionsType, (1, 0, 0)))
    return ".".join(str(v) for v in version)


def _model(tflite: bytes):
    from tensorflow.lite.tools import flatbuffer_utils
    if len(tflite) < 8 or tflite[4:8] != MODEL_IDENTIFIER:
        raise MetadataError("not a TFLite flatbuffer (no TFL3 identifier)")
    return flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite))


def _without_zip(tflite: bytes) -> bytes:
    """The flatbuffer part of a file that may have associated files appended."""
    buffer = io.BytesIO(tflite)
    if not zipfile.is_zipfile(buffer):
        return tflite
    with zipfile.ZipFile(buffer) as archive:
        start = min((i.header_offset for i in archive.infolist()), default=len(tflite))
    return tflite[:start]


def populate(tflite: bytes, metadata: fb.ModelMetadataT,
             associated_files: Mapping[str, bytes]) -> bytes:
    """`tflite` with `metadata` (its min_parser_version set here) and `associated_files`;
    metadata and files already in the file are replaced."""
    from tensorflow.lite.python import schema_py_generated as tfl
    recorded = set(recorded_files(metadata))
    missing = recorded - set(associated_files)
    if missing:
        raise MetadataError(f"files named in the metadata but not given: {sorted(missing)}")
    subgraphs = metadata.subgraphMetadata or []
    model = _model(_without_zip(tflite))
    if len(subgraphs) != 1 or len(model.subgraphs) != 1:
        raise MetadataError("TFLite metadata describes exactly one subgraph")
    graph, sub = model.subgraphs[0], subgraphs[0]
    for kind, tensors, described in (("input", graph.inputs, sub.inputTensorMetadata),
                                     ("output", graph.outputs, sub.outputTensorMetadata)):
        if len(tensors) != len(described or []):
            raise MetadataError(f"the model has {len(tensors)} {kind} tensor(s), the "
                                f"metadata describes {len(described or [])}")
    metadata.minParserVersion = min_parser_version(metadata)
    builder = flatbuffers.Builder(0)
    builder.Finish(metadata.Pack(builder), METADATA_IDENTIFIER)
    buffer = tfl.BufferT()
    buffer.data = bytes(builder.Output())
    entries = [m for m in (model.metadata or []) if m.name.decode() == METADATA_NAME]
    if entries:
        model.buffers[entries[0].buffer] = buffer
    else:
        model.buffers.append(buffer)
        entry = tfl.MetadataT()
        entry.name = METADATA_NAME
        entry.buffer = len(model.buffers) - 1
        model.metadata = list(model.metadata or []) + [entry]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), MODEL_IDENTIFIER)
    out = io.BytesIO(bytes(builder.Output()))
    out.seek(0, io.SEEK_END)
    with zipfile.ZipFile(out, "a") as archive:
        for name, content in associated_files.items():
            archive.writestr(name, content)
    return out.getvalue()


def strip(tflite: bytes) -> bytes:
    """The file without its TFLite metadata and associated files (same computation)."""
    model = _model(_without_zip(tflite))
    ours = [m for m in (model.metadata or []) if m.name.decode() == METADATA_NAME]
    if not ours:
        return _without_zip(tflite)
    for entry in ours:             # its buffer stays, emptied: buffer indices keep their meaning
        model.buffers[entry.buffer].data = None
    model.metadata = [m for m in model.metadata if m.name.decode() != METADATA_NAME]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), MODEL_IDENTIFIER)
    return bytes(builder.Output())


def recorded_files(metadata: fb.ModelMetadataT):
    """Names of the associated files the metadata refers to (model, subgraph, tensors)."""
    names = [f.name for f in metadata.associatedFiles or []]
    for sub in metadata.subgraphMetadata or []:
        names += [f.name for f in sub.associatedFiles or []]
        for tensor in (sub.inputTensorMetadata or []) + (sub.outputTensorMetadata or []):
            names += [f.name for f in tensor.associatedFiles or []]
    return [n.decode() if isinstance(n, bytes) else n for n in names]


def metadata_buffer(tflite: bytes) -> Optional[bytes]:
    """The raw metadata flatbuffer of a file, or None when it has none."""
    model = _model(_without_zip(tflite))
    for entry in model.metadata or []:
        if entry.name.decode() == METADATA_NAME:
            return bytes(bytearray(model.buffers[entry.buffer].data))
    return None


def associated_files(tflite: bytes) -> Dict[str, bytes]:
    buffer = io.BytesIO(tflite)
    if not zipfile.is_zipfile(buffer):
        return {}
    with zipfile.ZipFile(buffer) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


# enum-valued fields, by the table that holds them: shown by name as flatc's JSON does
_ENUMS = {
    ("AssociatedFileT", "type"): fb.AssociatedFileType,
    ("ImagePropertiesT", "colorSpace"): fb.ColorSpaceType,
    ("BoundingBoxPropertiesT", "type"): fb.BoundingBoxType,
    ("BoundingBoxPropertiesT", "coordinateType"): fb.CoordinateType,
    ("ContentT", "contentPropertiesType"): fb.ContentProperties,
    ("ProcessUnitT", "optionsType"): fb.ProcessUnitOptions,
    ("ScoreCalibrationOptionsT", "scoreTransformation"): fb.ScoreTransformationType,
}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _enum_name(enum, value) -> str:
    for key, v in vars(enum).items():
        if not key.startswith("_") and v == value:
            return key
    return str(value)


def as_dict(value):
    """A generated T object as flatc's JSON shows it: snake_case keys, enums by name, no
    unset fields."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        return [as_dict(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    if not hasattr(value, "__dict__"):
        return value
    out = {}
    table = type(value).__name__
    for key, item in vars(value).items():
        if item is None:
            continue
        enum = _ENUMS.get((table, key))
        if enum is not None:
            if key.endswith("Type") and item == 0:
                continue                       # NONE union
            item = _enum_name(enum, item)
        else:
            item = as_dict(item)
        out[_snake(key)] = item
    return out


def read(tflite: bytes) -> Optional[Dict]:
    """The file's metadata as a dict (flatc JSON keys), or None when it has none."""
    raw = metadata_buffer(tflite)
    if raw is None:
        return None
    if raw[4:8] != METADATA_IDENTIFIER:
        raise MetadataError("the TFLITE_METADATA buffer is not a metadata flatbuffer")
    return as_dict(fb.ModelMetadataT.InitFromPackedBuf(raw, 0))
