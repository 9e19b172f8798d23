"""TFLite export of a trained MobileNetV3: every format converted, verified and reported.

`export(trained, config)` writes, per format, `<name>_<format>.tflite`, a JSON report beside it
and `labels.txt`, each atomically; existing files are kept unless `overwrite=True`.
"""

import dataclasses
import os
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import tensorflow as tf

from mobilenet_v3 import files
from mobilenet_v3.data import pipeline, sampling
from mobilenet_v3.export import convert
from mobilenet_v3.export.compression import finetune
from mobilenet_v3.export.formats import FORMAT_NAMES, FORMATS, IO_DTYPES, FormatPolicy
from mobilenet_v3.export.report import describe
from mobilenet_v3.export.verify import verify
from mobilenet_v3.modeling import variants
from mobilenet_v3.modeling.config import HARD_SWISH_FORMS, ModelConfig
from mobilenet_v3.training.run_dir import TrainedModel


class ExportError(ValueError):
    """Bad input to the exporter: a clear message, nothing written."""


@dataclasses.dataclass
class ExportConfig:
    output_dir: str
    formats: Sequence[str] = ("float32", "int8")
    basename: Optional[str] = None            # default: e.g. mobilenet_v3_small_0.5_64
    include_preprocessing: bool = False       # [0, 255] input with the rescale in the graph
    classifier_activation: Optional[str] = None   # None: logits; 'softmax'
    io_dtype: str = "int8"                    # int8 / qat_int8 input and output type
    hard_swish_form: Optional[str] = None     # None: the format's policy (formats.py)
    calibration_images: int = 200             # int8 PTQ representative set (training split)
    check_images: int = 64                    # held-out images compared with Keras
    eval_images: int = 0                      # top-1 over this many held-out images (0: off)
    qat_steps: int = 200
    qat_batch_size: int = 32
    qat_learning_rate: float = 1e-4
    overwrite: bool = False
    seed: int = 0

    def validate(self):
        unknown = [f for f in self.formats if f not in FORMATS]
        if unknown or not self.formats:
            raise ExportError(f"unknown format(s) {unknown or list(self.formats)}; choose from "
                              f"{FORMAT_NAMES}")
        if self.io_dtype not in IO_DTYPES:
            raise ExportError(f"io_dtype must be one of {tuple(IO_DTYPES)}, got "
                              f"{self.io_dtype!r}")
        if self.hard_swish_form not in (None,) + HARD_SWISH_FORMS:
            raise ExportError(f"hard_swish_form must be one of {HARD_SWISH_FORMS}, got "
                              f"{self.hard_swish_form!r}")
        if "int8" in self.formats and self.calibration_images < 1:
            raise ExportError("int8 needs calibration_images >= 1 (a representative set)")
        if "qat_int8" in self.formats and (self.qat_steps < 1 or self.qat_batch_size < 1):
            raise ExportError("qat_int8 needs qat_steps >= 1 and qat_batch_size >= 1")
        if self.check_images < 1 or self.eval_images < 0:
            raise ExportError("check_images must be >= 1 and eval_images >= 0")


def default_basename(config: ModelConfig) -> str:
    name = f"mobilenet_v3_{config.name}" + ("_minimalistic" if config.minimalistic else "")
    return f"{name}_{config.alpha:g}_{config.input_shape[0]}"


def to_model_input(images: np.ndarray, include_preprocessing: bool) -> np.ndarray:
    """[-1, 1] images as the exported model wants them ([0, 255] with in-graph rescale)."""
    return ((images + 1.0) * 127.5).astype(np.float32) if include_preprocessing else images


@dataclasses.dataclass
class _Images:
    """The images one export needs, read once: held-out (checks, eval) and calibration."""
    held_out: np.ndarray
    held_out_labels: np.ndarray
    calibration: Optional[np.ndarray]


def _read_images(data: pipeline.DataConfig, config: ExportConfig) -> _Images:
    source = pipeline.open_source(data)          # once: scanning/preparing can be slow
    try:
        held_out, labels = sampling.sample_images(
            source, data.image_size, "eval", max(config.check_images, config.eval_images))
        calibration = sampling.sample_images(
            source, data.image_size, "train", config.calibration_images, config.seed)[0] \
            if "int8" in config.formats else None
    except ValueError as e:
        raise ExportError(str(e)) from None
    return _Images(held_out, labels, calibration)


def _targets(trained: TrainedModel, config: ExportConfig) -> Dict[str, str]:
    base = config.basename or default_basename(trained.config)
    targets = {fmt: os.path.join(config.output_dir, f"{base}_{fmt}.tflite")
               for fmt in config.formats}
    if not config.overwrite:
        existing = [p for p in targets.values() if os.path.exists(p)]
        if existing:
            raise FileExistsError(f"{existing[0]} exists; pass overwrite=True (--overwrite) "
                                  "to replace it")
    return targets


def _convert(trained: TrainedModel, policy: FormatPolicy, form: str, config: ExportConfig,
             data: pipeline.DataConfig, images: _Images):
    """(tflite bytes, the Keras model it is compared with, that model's config)."""
    pre = config.include_preprocessing
    model_config = trained.config.for_export(form, pre, config.classifier_activation)
    io_dtype = IO_DTYPES[config.io_dtype] if policy.integer else tf.float32
    if policy.qat:
        if pre or config.classifier_activation:
            raise ExportError("qat_int8 is exported as logits without in-graph "
                              "preprocessing (either would be a float island in the int8 "
                              "graph; the int8 input scale does the rescale)")
        reference = finetune.qat_finetune_in(
            config.output_dir, model=trained.model,
            config=trained.config.for_export(form, False, None, batch_size=None), data=data,
            steps=config.qat_steps, batch_size=config.qat_batch_size,
            learning_rate=config.qat_learning_rate, seed=config.seed)
        return convert.convert(reference, policy.converter_mode, io_dtype=io_dtype), \
            reference, model_config
    reference = variants.rebuild(trained.model, model_config)
    representative = (lambda: to_model_input(images.calibration, pre)) \
        if policy.calibrated else None
    return convert.convert(reference, policy.converter_mode, representative_images=representative,
                           io_dtype=io_dtype), reference, model_config


def _export_one(trained, fmt, target, config, data, images, log) -> Dict:
    policy = FORMATS[fmt]
    form = config.hard_swish_form or policy.hard_swish_form
    log(f"{fmt}: converting ({form} h-swish)")
    tflite, reference, model_config = _convert(trained, policy, form, config, data, images)
    report = describe(tflite, policy, form, model_config.scaled_arch.hard_swish_count(
        model_config.head.include_top))
    report.update(verify(tflite, reference, policy.reference,
                         to_model_input(images.held_out, config.include_preprocessing),
                         images.held_out_labels, config.check_images, config.eval_images))
    report.update(file=os.path.basename(target), labels_file="labels.txt",
                  model=model_config.to_flat())
    if policy.integer and report["float_tensors_inside"]:
        raise ExportError(f"{fmt}: float tensors inside the int8 graph: "
                          f"{report['float_tensors_inside'][:5]}")
    files.atomic_write(target, tflite, config.overwrite)
    files.atomic_write_json(target[:-len(".tflite")] + ".json", report)
    log(f"{fmt}: wrote {target} ({len(tflite) / 1e6:.2f} MB, "
        f"{report['xnnpack_partitions']} XNNPACK partition(s), top-1 agreement "
        f"{report['agreement']['top1_agreement']:.3f}, max |diff| "
        f"{report['agreement']['max_abs_diff']:.2g})")
    return report


def export(trained: TrainedModel, config: ExportConfig,
           data: Optional[pipeline.DataConfig] = None,
           log: Callable[[str], None] = print) -> Dict[str, Dict]:
    """Writes every requested format; returns {format: report}."""
    config.validate()
    data = data or trained.data
    if data is None:
        raise ExportError("no dataset to calibrate and check on: name one (e.g. "
                          "--dataset=image_folder --image_folder=...)")
    data = dataclasses.replace(data, image_size=trained.config.input_shape[0])
    os.makedirs(config.output_dir, exist_ok=True)
    targets = _targets(trained, config)
    images = _read_images(data, config)
    reports = {fmt: _export_one(trained, fmt, targets[fmt], config, data, images, log)
               for fmt in config.formats}
    files.atomic_write_text(os.path.join(config.output_dir, "labels.txt"),
                            "\n".join(trained.labels) + "\n")
    return reports
