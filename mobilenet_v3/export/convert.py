"""Keras -> TFLite conversion with the settings that keep the graph lean and the build fast.

The model is traced with a fixed batch of 1 (a dynamic batch adds SHAPE/STRIDED_SLICE/PACK
ops), its variables frozen into constants, and the frozen function converted. This gives the
same ops as `from_keras_model` without the variable ops `from_concrete_functions` leaves on an
unfrozen function, and is ~10x faster because it skips `from_keras_model`'s internal Keras
SavedModel export (measured: 2.4 s vs 36 s for Large 0.5 @96).
"""

from typing import Callable, Dict, Iterable, Optional, Tuple

import numpy as np
import tensorflow as tf
import tf_keras
from tensorflow.python.framework.convert_to_constants import (
    convert_variables_to_constants_v2)

from mobilenet_v3.export import calibration as exact_calibration

MODES = ("float32", "float16", "dynamic", "int8")   # see formats.py for the export formats
CALIBRATIONS = ("exact", "converter")   # int8 PTQ activation ranges: see calibration.py


def frozen_function(model: tf_keras.Model, batch_size: int = 1):
    """The model's inference function for a fixed batch, variables folded into constants."""
    shape = (batch_size,) + tuple(model.input_shape[1:])
    if any(d is None for d in shape):
        raise ValueError(f"TFLite export needs a fixed input resolution; model input is "
                         f"{model.input_shape}")
    function = tf.function(lambda image: model(image, training=False))
    concrete = function.get_concrete_function(tf.TensorSpec(shape, tf.float32, name="image"))
    return convert_variables_to_constants_v2(concrete)


def convert(model: tf_keras.Model, fmt: str = "float32",
            representative_images: Optional[Callable[[], Iterable[np.ndarray]]] = None,
            io_dtype=tf.float32, calibration: str = "exact",
            calibration_report: Optional[Dict] = None) -> bytes:
    """Converts a tf_keras model to a TFLite flatbuffer with batch size 1.

    fmt: 'float32'; 'float16' (fp16 weights); 'dynamic' (int8 weights, float activations);
    'int8' (full integer: post-training with `representative_images`, a callable yielding
    single images, or from a QAT model's fake-quant ranges without it).
    io_dtype applies to 'int8' only (tf.float32, tf.int8 or tf.uint8).
    calibration (post-training int8): 'exact' measures every activation range itself
    (calibration.py: the converter's calibrator mis-records tensors whose buffer an in-place op
    reuses); 'converter' keeps the converter's own ranges. `calibration_report`, if given, is
    filled with what the exact calibration corrected.
    """
    if fmt not in MODES:
        raise ValueError(f"format must be one of {MODES}, got {fmt!r}")
    if calibration not in CALIBRATIONS:
        raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {calibration!r}")
    # No trackable_obj: with one the converter exports a SavedModel again (30 s instead of
    # 3 s); the frozen function holds no variables, so the graph path it logs as
    # deprecated is the right one here.
    converter = _converter(model)
    if fmt in ("float16", "dynamic"):
        weight_only(converter, fmt)
    elif fmt == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if representative_images is not None:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if representative_images is not None and calibration == "exact":
            tflite, summary = exact_calibration.convert_int8(converter, representative_images,
                                                             io_dtype)
            if calibration_report is not None:
                calibration_report.update(summary)
            return tflite
        if representative_images is not None:
            def dataset():
                for image in representative_images():
                    yield [np.asarray(image, np.float32)[None]]
            converter.representative_dataset = dataset
        converter.inference_input_type = io_dtype
        converter.inference_output_type = io_dtype
    return converter.convert()


def weight_only(converter: tf.lite.TFLiteConverter, fmt: str) -> tf.lite.TFLiteConverter:
    """Weight-only formats: 'float16' (fp16 weights) or 'dynamic' (int8 weights, float
    activations quantized on the fly by the kernels)."""
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if fmt == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif fmt != "dynamic":
        raise ValueError(f"weight-only formats are float16 and dynamic, got {fmt!r}")
    return converter


def _converter(model: tf_keras.Model) -> tf.lite.TFLiteConverter:
    # No trackable_obj: see convert().
    return tf.lite.TFLiteConverter.from_concrete_functions([frozen_function(model)])


def convert_int8_mixed(model: tf_keras.Model, images, agreement: Callable[[bytes], float],
                       policy, io_dtype=tf.float32) -> Tuple[bytes, Dict]:
    """Post-training int8 with exact ranges, float islands where `agreement` stays below
    `policy.target_agreement` (export/mixed_precision.py). Returns (file, report parts)."""
    from mobilenet_v3.export import mixed_precision
    return mixed_precision.convert(_converter(model), images, agreement, policy, io_dtype)
