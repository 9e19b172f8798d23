"""A classifier for the one exporter (task_export.py): each format's graph, its check against
the Keras model it stands for, and QAT.

Formats: float32, float16, dynamic, int8 (post-training, exact calibration by default) and
qat_int8 (fine-tuned with fake quantization, export/compression/finetune.py). A file is scored
by its top-1 agreement with the model it stands for: the float model, or for qat_int8 the QAT
Keras model (fine-tuning may move it away from the float one; its agreement with the float
model is in the report too). int8 may keep float blocks when pure int8 falls below the guard
(`max_float_blocks`; off by default: on the real networks measured, pure int8 of the folded
graph keeps the float model's top-1, benchmark/RESULTS.md).
"""

import dataclasses
from typing import Dict, Optional

import numpy as np

from mobilenet_v3.analysis import tflite_inspect
from mobilenet_v3.data import pipeline, sampling
from mobilenet_v3.export import convert, folding, task_export
from mobilenet_v3.export.compression import finetune
from mobilenet_v3.export.errors import ExportError
from mobilenet_v3.export.formats import FORMAT_NAMES, FORMATS, IO_DTYPES
from mobilenet_v3.export.report import hard_swish_check
from mobilenet_v3.export.verify import verify
from mobilenet_v3.modeling import variants

# What of an ExportConfig decides a classifier's files besides the shared settings.
SETTINGS = ("include_preprocessing", "classifier_activation", "io_dtype", "hard_swish_form",
            "calibration", "qat_steps", "qat_batch_size", "qat_learning_rate", "qat_loss")


ACTIVATIONS = ("auto", "none", "softmax", None)     # None: as 'none' (logits)


def activation_for(config, fmt: str) -> Optional[str]:
    """The classifier's output activation in `fmt` (`config`: an export.ExportConfig):
    'softmax' or None (logits)."""
    if config.classifier_activation == "auto":
        return None if FORMATS[fmt].qat else "softmax"
    return "softmax" if config.classifier_activation == "softmax" else None


def to_model_input(images: np.ndarray, include_preprocessing: bool) -> np.ndarray:
    """[-1, 1] images as the exported model wants them ([0, 255] with in-graph rescale)."""
    return ((images + 1.0) * 127.5).astype(np.float32) if include_preprocessing else images


@dataclasses.dataclass
class Images:
    """The images one export needs, read once: held-out (checks, eval) and calibration."""
    held_out: np.ndarray
    held_out_labels: np.ndarray
    calibration: Optional[np.ndarray]


def read_images(data: pipeline.DataConfig, config) -> Images:
    source = pipeline.open_source(data)          # once: scanning/preparing can be slow
    try:
        held_out, labels = sampling.sample_images(
            source, data.image_size, "eval", max(config.check_images, config.eval_images))
        calibration = sampling.sample_images(
            source, data.image_size, "train", config.calibration_images, config.seed)[0] \
            if any(FORMATS[f].calibrated or FORMATS[f].qat for f in config.formats) else None
    except ValueError as e:
        raise ExportError(str(e)) from None
    return Images(held_out, labels, calibration)


def adapter(trained, config, data: pipeline.DataConfig, images: Images
            ) -> task_export.TaskAdapter:
    """`trained`: a run_dir.TrainedModel; `config`: an export.ExportConfig."""
    pre = config.include_preprocessing
    inputs = to_model_input(images.held_out, pre)
    made = {}                # format -> (the Keras model it stands for, the float model)

    def form_of(fmt):
        return config.hard_swish_form or FORMATS[fmt].form_for(trained.config.include_top)

    def model_config(fmt):
        return trained.config.for_export(form_of(fmt), pre, activation_for(config, fmt))

    def rebuilt(fmt):
        try:
            return folding.rebuild(trained.model, model_config(fmt))
        except folding.FoldingError as e:
            raise ExportError(f"{fmt}: {e}") from None

    def float_file(fmt):
        made[fmt] = (rebuilt(fmt), None)
        return convert.convert(made[fmt][0], fmt)

    def int8_file(agreement, policy):
        reference = rebuilt("int8")
        made["int8"] = (reference, None)
        io_dtype = IO_DTYPES[config.io_dtype]
        calibration = to_model_input(images.calibration, pre)
        if config.calibration == "converter":
            tflite = convert.convert(reference, "int8", lambda: iter(calibration), io_dtype,
                                     calibration="converter")
            return tflite, {"calibration": {"method": "converter",
                                            "images": int(len(calibration))}}
        return convert.convert_int8_mixed(reference, calibration, agreement, policy, io_dtype)

    def qat_file():
        form = form_of("qat_int8")
        reference = finetune.qat_finetune_in(
            config.output_dir, model=trained.model,
            config=trained.config.for_export(form, False, None, batch_size=None), data=data,
            steps=config.qat_steps, batch_size=config.qat_batch_size,
            learning_rate=config.qat_learning_rate, seed=config.seed, loss=config.qat_loss,
            calibration_images=images.calibration)
        float_model = variants.rebuild(trained.model, model_config("qat_int8").replace(
            hard_swish_form="fused"))
        made["qat_int8"] = (reference, float_model)
        return convert.convert(reference, "int8", io_dtype=IO_DTYPES[config.io_dtype]), {}

    def score(tflite, fmt):
        reference, float_model = made[fmt]
        checked = verify(tflite, reference, "", inputs, images.held_out_labels,
                         config.check_images, float_reference=float_model)
        result = dict(checked["agreement"], reference="the QAT Keras model"
                      if FORMATS[fmt].qat else "the float Keras model")
        if float_model is not None:
            result["with_float"] = dict(checked["agreement_with_float"])
        return result

    def facts(tflite, fmt):
        form, exported = form_of(fmt), model_config(fmt)
        found = {"model": exported.to_flat(), "hard_swish_form": form,
                 "hard_swish": hard_swish_check(tflite, form, exported.scaled_arch
                                                .hard_swish_count(exported.head.include_top))}
        if config.eval_images:
            predicted = tflite_inspect.run(tflite, inputs[:config.eval_images]).argmax(-1)
            found["eval"] = {"images": int(len(predicted)), "top1": float(np.mean(
                predicted == images.held_out_labels[:config.eval_images]))}
        return found

    def card(fmt):
        c = trained.config
        name = f"MobileNetV3-{c.name.capitalize()}" + (" minimalistic" if c.minimalistic else "")
        return {"name": f"{name} {c.alpha:g} {c.input_shape[0]}x{c.input_shape[1]} classifier",
                "description": f"Image classification into {c.classes} classes "
                               f"({'background + ' if c.classes == 1001 else ''}"
                               f"{'ImageNet' if c.classes in (1000, 1001) else 'the run'}'s "
                               f"labels)",
                "scores": "probabilities" if activation_for(config, fmt) else "logits",
                "input_range": (0.0, 255.0) if pre else (-1.0, 1.0)}

    return task_export.TaskAdapter(
        "classification", trained.config.to_flat(), trained.model.get_weights(),
        float_file=float_file, int8_file=int8_file, score=score, value_key="top1_agreement",
        formats=FORMAT_NAMES, qat_file=qat_file, facts=facts, card=card)


def settings(config) -> Dict:
    return {name: getattr(config, name) for name in SETTINGS}
