"""TFLite export: conversion, the format table, QAT, per-file verification and reports.

Entry: `export(load_trained(path), ExportConfig(...))`; export_tflite.py maps flags onto it.
"""

from mobilenet_v3.export.exporter import (DEFAULT_MIN_INT8_AGREEMENT, ExportConfig, ExportError,
                                          Int8AgreementError, default_basename, export,
                                          to_model_input)
from mobilenet_v3.export.formats import FORMAT_NAMES as FORMATS
from mobilenet_v3.export.formats import IO_DTYPES
from mobilenet_v3.files import atomic_write
from mobilenet_v3.training.run_dir import RunFolderError, TrainedModel, load_trained

__all__ = ["DEFAULT_MIN_INT8_AGREEMENT", "ExportConfig", "ExportError", "Int8AgreementError", "FORMATS", "IO_DTYPES", "RunFolderError",
           "TrainedModel", "atomic_write", "default_basename", "export", "load_trained",
           "to_model_input"]
