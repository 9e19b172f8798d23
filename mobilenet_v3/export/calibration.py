"""Post-training int8 calibration with exact activation ranges.

Why not the converter's own calibration: TFLite's calibrator (tensorflow/lite/tools/optimize/
calibration/calibrator.cc) logs every op's inputs again *after* the op has run, and the
interpreter's arena planner lets an elementwise op (ADD, MUL, ...) write its output into the
buffer of an input that has no other consumer. The logged range of such an input is then the
union of its own values and the op's output (tensorflow/tensorflow issue 127842). In
MobileNetV3 that hits, in TF 2.21:
  * the x/6 tensor of the 'unfused' h-swish (x/6) * ReLU6(x+3): its range became x's range
    (the h-swish output overwrote it), 4-6x coarser than x/6 needs; this alone took the
    official Small from 67.8% to 32.4% top-1 (agreement with float 0.36);
  * the projection output of every residual block (the sum overwrote it): 10-30% coarser;
  * the ReLU6(x+3) gate of a folded h-swish x * ReLU6(x+3) (the product overwrote it).

Here the float model is calibrated by the converter as usual (`_experimental_calibrate_only`,
the path tf.lite.experimental.QuantizationDebugger uses), then every recorded range is replaced
by the true min/max over the same images, measured by LiteRT with
`experimental_preserve_all_tensors` (no buffer sharing), and the model is quantized by the same
MLIR quantizer the converter calls. With unchanged ranges this path gives the converter's file
(tests/test_int8_calibration.py).
"""

from typing import Callable, Dict, Iterable, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from tensorflow.lite.python.convert import deduplicate_readonly_buffers, mlir_quantize
from tensorflow.lite.tools import flatbuffer_utils


def calibrated_float_model(converter: tf.lite.TFLiteConverter) -> bytes:
    """The converter's float model with its calibrator's min/max on every activation."""
    converter._experimental_calibrate_only = True   # pylint: disable=protected-access
    try:
        return converter.convert()
    finally:
        converter._experimental_calibrate_only = False   # pylint: disable=protected-access


def _recorded(model) -> Dict[int, Tuple[float, float]]:
    """{tensor index: (min, max)} of subgraph 0's tensors that carry calibration stats."""
    ranges = {}
    for i, tensor in enumerate(model.subgraphs[0].tensors):
        q = tensor.quantization
        if q is not None and q.min is not None and len(q.min) == 1:
            ranges[i] = (float(q.min[0]), float(q.max[0]))
    return ranges


def measure_ranges(calibrated: bytes, images: Iterable[np.ndarray],
                   indices: Iterable[int]) -> Dict[int, Tuple[float, float]]:
    """True (min, max) of each tensor in `indices` over `images` (single images, no batch)."""
    it = Interpreter(model_content=calibrated, experimental_preserve_all_tensors=True,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    indices = list(indices)
    low = dict.fromkeys(indices, np.inf)
    high = dict.fromkeys(indices, -np.inf)
    seen = 0
    for image in images:
        it.set_tensor(inp["index"], np.asarray(image, np.float32)[None])
        it.invoke()
        seen += 1
        for i in indices:
            values = it.get_tensor(i)
            low[i] = min(low[i], float(values.min()))
            high[i] = max(high[i], float(values.max()))
    if not seen:
        raise ValueError("calibration needs at least one image")
    return {i: (low[i], high[i]) for i in indices}


def with_exact_ranges(calibrated: bytes, images: Iterable[np.ndarray]) -> Tuple[bytes, Dict]:
    """(`calibrated` with every recorded range replaced by the measured one, a summary).

    The summary lists the tensors whose recorded range was wider than their values by more
    than 1%: the ones the calibrator's buffer-sharing bug touched.
    """
    model = flatbuffer_utils.convert_bytearray_to_object(calibrated)
    recorded = _recorded(model)
    measured = measure_ranges(calibrated, images, recorded)
    tensors = model.subgraphs[0].tensors
    widened = {}
    for i, (low, high) in measured.items():
        old_low, old_high = recorded[i]
        if (old_high - old_low) > 1.01 * (high - low) + 1e-6:
            widened[tensors[i].name.decode()] = {
                "recorded": [old_low, old_high], "measured": [low, high]}
        tensors[i].quantization.min = np.array([low], np.float32)
        tensors[i].quantization.max = np.array([high], np.float32)
    summary = {"tensors": len(measured), "corrected": len(widened), "widened": widened}
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), summary


def quantize(converter: tf.lite.TFLiteConverter, calibrated: bytes, io_dtype,
             denylisted_nodes: Optional[Sequence[str]] = None) -> bytes:
    """What converter.convert() does with a calibrated model (MLIR quantizer, buffer dedup);
    `denylisted_nodes` (op output names) stay float (export/mixed_precision.py)."""
    quantized = mlir_quantize(
        calibrated,
        converter._experimental_disable_per_channel,   # pylint: disable=protected-access
        input_data_type=io_dtype, output_data_type=io_dtype,
        denylisted_nodes=list(denylisted_nodes) if denylisted_nodes else None)
    return deduplicate_readonly_buffers(quantized)


def calibrate(converter: tf.lite.TFLiteConverter, images: Sequence[np.ndarray],
              io_dtype) -> Tuple[bytes, Dict]:
    """(the converter's float model with exact ranges, summary), ready for `quantize`."""
    converter.representative_dataset = lambda: ([x[None]] for x in images)
    converter.inference_input_type = io_dtype
    converter.inference_output_type = io_dtype
    calibrated, summary = with_exact_ranges(calibrated_float_model(converter), images)
    summary.update(method="exact", images=len(images))
    return calibrated, summary


def convert_int8(converter: tf.lite.TFLiteConverter,
                 representative_images: Callable[[], Iterable[np.ndarray]],
                 io_dtype) -> Tuple[bytes, Dict]:
    """Full-integer PTQ of a configured converter, calibrated with exact ranges."""
    images = [np.asarray(x, np.float32) for x in representative_images()]
    calibrated, summary = calibrate(converter, images, io_dtype)
    return quantize(converter, calibrated, io_dtype), summary
