"""TFLite metadata for app runtimes (MediaPipe Tasks, the TFLite Task Library).

Why our own writer: the maintained writers do not install beside TensorFlow 2.21 in one
environment (tflite-support 0.4.4 needs protobuf < 4; MediaPipe 0.10.x numpy < 2 and protobuf 4;
MediaPipe 1.2.x absl-py ~= 2.3 against tensorflow-model-optimization's ~= 1.2, and its Python
writer lacks its native module). So the metadata is built on the schema's flatc-generated
binding, vendored from MediaPipe, with the field choices of MediaPipe's writers; tests write the
same files with MediaPipe's own writer in its own environment and compare, and run them in
MediaPipe Tasks.
"""

from mobilenet_v3.export.tflite_metadata.cards import (  # noqa: F401
    LABELS_FILE, PROVENANCE_FILE, ModelCard, attach, metadata_of, read, summary)
from mobilenet_v3.export.tflite_metadata.writer import MetadataError  # noqa: F401
