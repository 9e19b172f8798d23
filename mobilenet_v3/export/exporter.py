"""TFLite export of a trained MobileNetV3: every format converted, verified and reported.

`export(trained, config)` writes, per format, `<name>_<format>.tflite`, a JSON report beside it
and `labels.txt`, each atomically; existing files are kept unless `overwrite=True`.

Integer formats are guarded: their top-1 agreement on the check images with the model they
stand for (int8: the float model; qat_int8: the QAT Keras model, which fine-tuning may have
moved away from the float one) must reach `min_int8_agreement`, else the .tflite is not
written under its name (it is kept as `<name>.rejected.tflite` with its report) and `export`
raises `Int8AgreementError` after the other formats are done.
"""

import dataclasses
import hashlib
import json
import os
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from mobilenet_v3 import files
from mobilenet_v3.data import pipeline, sampling
from mobilenet_v3.export import convert, file_state, folding
from mobilenet_v3.export.compression import finetune
from mobilenet_v3.export.formats import FORMAT_NAMES, FORMATS, IO_DTYPES, FormatPolicy
from mobilenet_v3.export.report import describe
from mobilenet_v3.export.verify import verify
from mobilenet_v3.modeling import variants
from mobilenet_v3.modeling.config import HARD_SWISH_FORMS, ModelConfig
from mobilenet_v3.training.run_dir import TrainedModel


class ExportError(ValueError):
    """Bad input to the exporter: a clear message, nothing written."""


class Int8AgreementError(ExportError):
    """An integer file disagreed with its float model too often: it was not written."""


# Top-1 agreement of int8 with float on the check images below which an integer export fails.
# Measured on MobileNetV3-Small with Google's weights, 450 ImageNet photos (benchmark/RESULTS.md):
# good int8 files agree 0.74-0.78 (Google's own uint8 file 0.776; 64-image subsets 0.66-0.86:
# 1001 classes, many photos ambiguous), the file broken by the calibrator bug 0.36 (subsets
# 0.27-0.48). Models with few classes agree far more when sound (10 classes: 0.96-0.98 for
# the CIFAR-10 Large and Small of benchmark/RESULTS.md), so they get a stricter default that
# reports a loss of a few points instead of passing it.
DEFAULT_MIN_INT8_AGREEMENT = 0.6
DEFAULT_MIN_INT8_AGREEMENT_FEW_CLASSES = 0.9
FEW_CLASSES = 100


def default_min_int8_agreement(classes: int) -> float:
    return DEFAULT_MIN_INT8_AGREEMENT if classes > FEW_CLASSES else \
        DEFAULT_MIN_INT8_AGREEMENT_FEW_CLASSES


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
    calibration: str = "exact"                # int8 PTQ ranges: exact | converter (calibration.py)
    min_int8_agreement: Optional[float] = None   # guard (None: the task's default); 0: off
    check_images: int = 64                    # held-out images compared with Keras
    eval_images: int = 0                      # top-1 over this many held-out images (0: off)
    qat_steps: int = 200
    qat_batch_size: int = 32
    qat_learning_rate: float = 1e-6           # RMSProp: 1e-5 already hurts a trained model
    qat_loss: str = "distillation"            # the float model's outputs | labels
    overwrite: bool = False
    seed: int = 0
    max_float_blocks: Optional[int] = None   # int8 detection/segmentation: float islands
    resolution: Optional[Tuple[int, int]] = None   # segmentation: export size HxW

    def validate(self):
        if not [f for f in self.formats if f]:
            raise ExportError(f"no format given: formats (--formats) needs one or more of "
                              f"{', '.join(FORMAT_NAMES)}")
        unknown = [f for f in self.formats if f not in FORMATS]
        if unknown:
            raise ExportError(f"unknown format(s) {unknown}; choose from {FORMAT_NAMES}")
        if self.io_dtype not in IO_DTYPES:
            raise ExportError(f"io_dtype must be one of {tuple(IO_DTYPES)}, got "
                              f"{self.io_dtype!r}")
        if self.hard_swish_form not in (None,) + HARD_SWISH_FORMS:
            raise ExportError(f"hard_swish_form must be one of {HARD_SWISH_FORMS}, got "
                              f"{self.hard_swish_form!r}")
        if self.calibration not in convert.CALIBRATIONS:
            raise ExportError(f"calibration must be one of {convert.CALIBRATIONS}, got "
                              f"{self.calibration!r}")
        if self.min_int8_agreement is not None and not 0.0 <= self.min_int8_agreement <= 1.0:
            raise ExportError(f"min_int8_agreement must be in [0, 1], got "
                              f"{self.min_int8_agreement!r}")
        if ("int8" in self.formats or "qat_int8" in self.formats) and \
                self.calibration_images < 1:
            raise ExportError("int8 and qat_int8 need calibration_images >= 1 (a "
                              "representative set for PTQ ranges / QAT's starting ranges)")
        if self.qat_loss not in finetune.QAT_LOSSES:
            raise ExportError(f"qat_loss must be one of {finetune.QAT_LOSSES}, got "
                              f"{self.qat_loss!r}")
        if "qat_int8" in self.formats and (self.qat_steps < 1 or self.qat_batch_size < 1):
            raise ExportError("qat_int8 needs qat_steps >= 1 and qat_batch_size >= 1")
        if self.check_images < 1 or self.eval_images < 0:
            raise ExportError("check_images must be >= 1 and eval_images >= 0")
        if self.max_float_blocks is not None and self.max_float_blocks < 0:
            raise ExportError("max_float_blocks must be >= 0")


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
            if any(FORMATS[f].calibrated or FORMATS[f].qat for f in config.formats) else None
    except ValueError as e:
        raise ExportError(str(e)) from None
    return _Images(held_out, labels, calibration)


def settings_of(trained: TrainedModel, fmt: str, config: ExportConfig) -> Dict:
    """What decides a format's file: the export settings and a fingerprint of the weights.
    A re-run with the same settings reuses a complete file instead of refusing it."""
    digest = hashlib.sha256()
    for w in trained.model.get_weights():
        digest.update(np.ascontiguousarray(w).tobytes())
    fields = {k: v for k, v in dataclasses.asdict(config).items()
              if k not in ("output_dir", "formats", "basename", "overwrite", "eval_images",
                           "max_float_blocks", "resolution")}
    return json.loads(json.dumps({"format": fmt, "model": trained.config.to_flat(),
                                  "weights_sha256": digest.hexdigest(), **fields}, default=str))


def _targets(trained: TrainedModel, config: ExportConfig) -> Dict[str, str]:
    base = config.basename or default_basename(trained.config)
    return {fmt: os.path.join(config.output_dir, f"{base}_{fmt}.tflite")
            for fmt in config.formats}


def _plan(trained, config, targets) -> Dict[str, Optional[Dict]]:
    """{format: the reusable earlier report or None}; an existing file made with other
    settings is refused unless overwrite."""
    plan = {}
    for fmt, target in targets.items():
        settings = settings_of(trained, fmt, config)
        plan[fmt], ours = (None, True) if config.overwrite else \
            file_state.earlier(target, settings)
        if not ours:
            raise FileExistsError(f"{target} exists and was made from another model or with "
                                  "other settings; pass overwrite=True (--overwrite) to "
                                  "replace it")
    return plan


def _remove_stale_temporaries(folder: str):
    """.tmp-* files left by an export that was killed while writing."""
    for name in os.listdir(folder):
        if name.startswith(".tmp-") and os.path.isfile(os.path.join(folder, name)):
            os.remove(os.path.join(folder, name))


@dataclasses.dataclass
class _Converted:
    tflite: bytes
    reference: object                 # the Keras model the file is compared with
    model_config: ModelConfig
    float_reference: object = None    # integer formats: the float model the file stands for
    calibration: Optional[Dict] = None


def _convert(trained: TrainedModel, policy: FormatPolicy, form: str, config: ExportConfig,
             data: pipeline.DataConfig, images: _Images) -> _Converted:
    pre = config.include_preprocessing
    model_config = trained.config.for_export(form, pre, config.classifier_activation)
    io_dtype = IO_DTYPES[config.io_dtype] if policy.integer else tf.float32
    try:
        if policy.qat:
            if pre or config.classifier_activation:
                raise ExportError("qat_int8 is exported as logits without in-graph "
                                  "preprocessing (either would be a float island in the int8 "
                                  "graph; the int8 input scale does the rescale)")
            reference = finetune.qat_finetune_in(
                config.output_dir, model=trained.model,
                config=trained.config.for_export(form, False, None, batch_size=None),
                data=data, steps=config.qat_steps, batch_size=config.qat_batch_size,
                learning_rate=config.qat_learning_rate, seed=config.seed,
                loss=config.qat_loss,
                calibration_images=images.calibration)
            float_model = variants.rebuild(trained.model, model_config.replace(
                hard_swish_form="fused"))
            return _Converted(convert.convert(reference, policy.converter_mode,
                                              io_dtype=io_dtype),
                              reference, model_config, float_model)
        reference = folding.rebuild(trained.model, model_config)
    except folding.FoldingError as e:
        raise ExportError(f"{policy.name}: {e}") from None
    calibration = {"method": config.calibration} if policy.calibrated else None
    representative = (lambda: to_model_input(images.calibration, pre)) \
        if policy.calibrated else None
    tflite = convert.convert(reference, policy.converter_mode,
                             representative_images=representative, io_dtype=io_dtype,
                             calibration=config.calibration, calibration_report=calibration)
    if calibration is not None and "widened" in calibration:
        calibration["widened"] = sorted(calibration["widened"])   # names only in the report
    return _Converted(tflite, reference, model_config,
                      reference if policy.integer else None, calibration)


def _guard(report: Dict, policy: FormatPolicy, config: ExportConfig) -> Dict:
    checked = report["agreement"] if policy.qat else report["agreement_with_float"]
    agreement = checked["top1_agreement"]
    return {"min_top1_agreement": config.min_int8_agreement, "top1_agreement": agreement,
            "compared_with": checked["reference"], "images": checked["images"],
            "verdict": "pass" if agreement >= config.min_int8_agreement else "FAIL"}


def _export_one(trained, fmt, target, config, data, images, log) -> Dict:
    policy = FORMATS[fmt]
    form = config.hard_swish_form or policy.form_for(trained.config.include_top)
    log(f"{fmt}: converting ({form} h-swish)")
    converted = _convert(trained, policy, form, config, data, images)
    tflite, model_config = converted.tflite, converted.model_config
    report = describe(tflite, policy, form, model_config.scaled_arch.hard_swish_count(
        model_config.head.include_top))
    report.update(verify(tflite, converted.reference, policy.reference,
                         to_model_input(images.held_out, config.include_preprocessing),
                         images.held_out_labels, config.check_images, config.eval_images,
                         float_reference=converted.float_reference))
    report.update(file=os.path.basename(target), labels_file="labels.txt",
                  model=model_config.to_flat())
    if converted.calibration is not None:
        report["calibration"] = {**converted.calibration,
                                 "images": int(len(images.calibration))}
    if policy.integer and report["float_tensors_inside"]:
        raise ExportError(f"{fmt}: float tensors inside the int8 graph: "
                          f"{report['float_tensors_inside'][:5]}")
    if policy.integer and report["saturated_biases"]:
        raise ExportError(f"{fmt}: int32 biases clipped at the int32 limit (their weight "
                          f"scale is ~0): {dict(list(report['saturated_biases'].items())[:3])}")
    line = (f"{fmt}: {{}} {target} ({len(tflite) / 1e6:.2f} MB, "
            f"{report['xnnpack_partitions']} XNNPACK partition(s), top-1 agreement "
            f"{report['agreement']['top1_agreement']:.3f}, max |diff| "
            f"{report['agreement']['max_abs_diff']:.2g}")
    if policy.integer:
        report["guard"] = guard = _guard(report, policy, config)
        line += (f"; with the float model {report['agreement_with_float']['top1_agreement']:.3f}"
                 f" on {guard['images']} images; guard {guard['verdict']} (min "
                 f"{config.min_int8_agreement:g} vs {guard['compared_with']})")
        if guard["verdict"] != "pass":
            # Nothing at the target name: the rejected file is kept beside it for inspection.
            rejected = file_state.write_rejected(target, tflite, report)
            log(line.format("REJECTED, kept as") .replace(target, rejected) + ")")
            return report
    report.update(written=True, export_settings=settings_of(trained, fmt, config),
                  sha256=file_state.sha256(tflite),
                  replaces_sha256=file_state.current_sha256(target))
    # The report first: a kill before the file leaves a report whose file a rerun redoes.
    files.atomic_write_json(file_state.report_path(target), report)
    files.atomic_write(target, tflite, True)
    log(line.format("wrote") + ")")
    return report


def _guard_failures(reports: Dict[str, Dict], config: ExportConfig) -> Optional[str]:
    failed = {fmt: r for fmt, r in reports.items() if r.get("guard", {}).get("verdict") == "FAIL"}
    if not failed:
        return None
    parts = [f"{fmt}: top-1 agreement with {r['guard']['compared_with']} "
             f"{r['guard']['top1_agreement']:.3f} on {r['guard']['images']} check images is "
             f"below --min_int8_agreement={config.min_int8_agreement:g}"
             for fmt, r in failed.items()]
    kept = ", ".join(r["file"] for r in failed.values())
    return ("; ".join(parts) + f". Not written under its name; kept as {kept} with its "
            "report for inspection. Quantization lost the float model's decisions: try "
            "calibration 'exact', another h-swish form or more calibration images, or lower "
            "min_int8_agreement (--min_int8_agreement=0 turns the guard off).")


def export(trained: TrainedModel, config: ExportConfig,
           data: Optional[pipeline.DataConfig] = None,
           log: Callable[[str], None] = print) -> Dict[str, Dict]:
    """Writes every requested format; returns {format: report}."""
    config.validate()
    if config.min_int8_agreement is None:
        config = dataclasses.replace(config, min_int8_agreement=default_min_int8_agreement(
            trained.config.classes))
    data = data or trained.data
    if data is None:
        raise ExportError("no dataset to calibrate and check on: name one (e.g. "
                          "--dataset=image_folder --image_folder=...)")
    data = dataclasses.replace(data, image_size=trained.config.input_shape[0])
    try:
        os.makedirs(config.output_dir, exist_ok=True)
        _remove_stale_temporaries(config.output_dir)
    except OSError as e:
        raise ExportError(f"cannot write to output_dir {config.output_dir!r}: "
                          f"{e.strerror or e}") from None
    targets = _targets(trained, config)
    plan = _plan(trained, config, targets)
    # Labels first: a killed export never leaves files without their labels.
    files.atomic_write_text(os.path.join(config.output_dir, "labels.txt"),
                            "\n".join(trained.labels) + "\n")
    todo = [fmt for fmt in config.formats if plan[fmt] is None]
    images = _read_images(data, config) if todo else None
    reports = {}
    for fmt in config.formats:
        if plan[fmt] is not None:
            log(f"{fmt}: {targets[fmt]} is complete with the same settings; kept")
            reports[fmt] = plan[fmt]
        else:
            reports[fmt] = _export_one(trained, fmt, targets[fmt], config, data, images, log)
    failure = _guard_failures(reports, config)
    if failure:
        raise Int8AgreementError(failure)
    return reports
