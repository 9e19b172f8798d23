"""TFLite export of a trained classifier: ExportConfig (what export_tflite.py's flags give
every task), the classification guard's defaults, and `export`, which hands the classifier to
the one exporter of all tasks (task_export.py) through its adapter (classification.py).

`export(trained, config)` writes, per format, `<name>_<format>.tflite`, a JSON report beside it
and `labels.txt`, each atomically; existing files are kept unless `overwrite=True`. Integer
files below the guard (top-1 agreement with the model they stand for) are kept only as
`<name>.rejected.tflite` and `export` raises `Int8AgreementError` after the other formats.
"""

import dataclasses
from typing import Callable, Dict, Optional, Sequence, Tuple

from mobilenet_v3.data import pipeline
from mobilenet_v3.export import classification, convert, task_export
from mobilenet_v3.export.classification import ACTIVATIONS
from mobilenet_v3.export.classification import to_model_input  # noqa: F401  (public API)
from mobilenet_v3.export.compression import finetune
from mobilenet_v3.export.errors import ExportError, Int8AgreementError
from mobilenet_v3.export.formats import FORMAT_NAMES, FORMATS, IO_DTYPES
from mobilenet_v3.modeling.config import HARD_SWISH_FORMS, ModelConfig
from mobilenet_v3.training.run_dir import TrainedModel

__all__ = ["ExportConfig", "ExportError", "Int8AgreementError", "default_basename",
           "default_min_int8_agreement", "export", "to_model_input"]

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
    # auto: probabilities (softmax) in every format but qat_int8 (logits); none; softmax
    classifier_activation: Optional[str] = "auto"
    # int8 / qat_int8 input and output type: uint8 is what MediaPipe Tasks take
    io_dtype: str = "uint8"
    metadata: bool = True                     # TFLite metadata for app runtimes
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
    nms: Optional[str] = None                 # detection: 'fast' | 'per_class' (None: the model's)

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
        if self.classifier_activation not in ACTIVATIONS:
            raise ExportError(f"classifier_activation must be one of {ACTIVATIONS}, got "
                              f"{self.classifier_activation!r}")
        if "qat_int8" in self.formats and (self.include_preprocessing or
                                           self.classifier_activation == "softmax"):
            raise ExportError("qat_int8 is exported as logits without in-graph preprocessing "
                              "(either would be a float island in the int8 graph; the int8 "
                              "input scale does the rescale)")
        if self.check_images < 1 or self.eval_images < 0:
            raise ExportError("check_images must be >= 1 and eval_images >= 0")
        if self.max_float_blocks is not None and self.max_float_blocks < 0:
            raise ExportError("max_float_blocks must be >= 0")


def default_basename(config: ModelConfig) -> str:
    name = f"mobilenet_v3_{config.name}" + ("_minimalistic" if config.minimalistic else "")
    return f"{name}_{config.alpha:g}_{config.input_shape[0]}"


def export(trained: TrainedModel, config: ExportConfig,
           data: Optional[pipeline.DataConfig] = None,
           log: Callable[[str], None] = print, source: Optional[str] = None
           ) -> Dict[str, Dict]:
    """Writes every requested format; returns {format: report} (task_export's schema).
    `source`: the model's path, recorded in each file's provenance."""
    config.validate()
    data = data or trained.data
    if data is None:
        raise ExportError("no dataset to calibrate and check on: name one (e.g. "
                          "--dataset=image_folder --image_folder=...)")
    data = dataclasses.replace(data, image_size=trained.config.input_shape[0])
    images = classification.read_images(data, config)
    options = task_export.options_from(
        config, default_basename(trained.config),
        default_min_int8_agreement(trained.config.classes), max_float_blocks=0,
        extra_settings=classification.settings(config), source=source)
    return task_export.export(classification.adapter(trained, config, data, images),
                              trained.labels, images.calibration, options, log)
