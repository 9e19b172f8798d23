"""Mixed int8: the few blocks whose activations one int8 scale cannot hold stay in float.

Why: int8 gives each activation tensor one scale. Real trained networks have outlier channels
(Google's SSDLite-MobileNetV3-Small COCO weights: stem channel 9 reaches |x| ~470 while the
median channel stays near 4; bneck7/8 depthwise channels ~100-180), so the range set by the
outliers leaves every other channel one or two levels and the int8 detector finds nothing
(0.0 mAP). Better ranges cannot help (the outliers are real values) and equalising channels
across layers changes h-swish's output. XNNPACK, though, runs float and int8 ops in the same
partition (QUANTIZE / DEQUANTIZE at the borders), so a graph with a few float islands stays one
fast piece. Which blocks need float is a property of the weights, so it is measured per model:

1. the pure int8 file is scored against the float model with the task's agreement; at or above
   the target it is the answer;
2. each block (the table rows: stem, bneck1..15, lastconv, and the head's layers, grouped by
   the layer names of modeling/naming.py) is quantized alone, every other block float (a
   float block keeps all its activation tensors float: each tensor's producer and consumers
   go on the quantizer's node denylist), and its harm, 1 - agreement, measured;
3. the k most harmful blocks stay float, k = 1, 2, ... until the agreement reaches the target
   or `max_float_blocks`; the best file seen is kept.
Blocks are ranked by what their quantization does to the file's agreement, not by a proxy:
on DeepLab's segmenter a per-tensor int8 noise score picked 13 tensors that gained 3 points,
and the gain of floating one block inside an otherwise int8 graph is buried under the other
blocks' noise (every block but the stem gained < 1 point).
The quantizer is the converter's own MLIR quantizer with its `denylisted_nodes` option (what
tf.lite.experimental.QuantizationDebugger uses for the same purpose).
"""

import dataclasses
import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from tensorflow.lite.tools import flatbuffer_utils

from mobilenet_v3.export import calibration as exact


@dataclasses.dataclass(frozen=True)
class MixedPolicy:
    """When and how far an int8 export may keep tensors in float."""
    target_agreement: float            # the task's agreement the int8 file must reach
    max_float_blocks: int = 8          # the most blocks kept in float
    enabled: bool = True               # False: pure int8 always


def _graph(calibrated: bytes):
    model = flatbuffer_utils.convert_bytearray_to_object(calibrated)
    graph = model.subgraphs[0]
    names = [t.name.decode() for t in graph.tensors]
    producer, consumers = {}, {}
    for k, op in enumerate(graph.operators):
        for i in op.outputs:
            producer[int(i)] = k
        for i in op.inputs:
            if i >= 0:
                consumers.setdefault(int(i), []).append(k)
    return graph, names, producer, consumers


def nodes_for(calibrated: bytes, tensor_names: Sequence[str]) -> List[str]:
    """The quantizer node names (op output names) that keep these tensors in float: each
    tensor's producer and all its consumers."""
    graph, names, producer, consumers = _graph(calibrated)
    index = {n: i for i, n in enumerate(names)}
    ops = set()
    for name in tensor_names:
        i = index[name]
        if i in producer:
            ops.add(producer[i])
        ops.update(consumers.get(i, []))
    return sorted({names[int(graph.operators[k].outputs[0])] for k in ops})


_BLOCK = re.compile(r"^(ssd_[a-z]+\d+|seg_[a-z]+\d*|[a-z]+\d*)")


def block_of(tensor_name: str) -> str:
    """'model/bneck7_depthwise_act/mul;...' -> 'bneck7'; 'model/ssd_box0_dw/...' -> 'ssd_box0'."""
    first = tensor_name.split(";")[0]
    parts = first.split("/")
    layer = parts[1] if len(parts) > 1 else parts[0]
    match = _BLOCK.match(layer)
    return match.group(1) if match else layer


def blocks(calibrated: bytes) -> Dict[str, List[str]]:
    """{block: its activation tensors (those with a calibration range)}, in graph order; the
    graph's input and outputs belong to no block (the blocks next to them cover them)."""
    model = flatbuffer_utils.convert_bytearray_to_object(calibrated)
    graph = model.subgraphs[0]
    names = [t.name.decode() for t in graph.tensors]
    io = {int(i) for i in list(graph.inputs) + list(graph.outputs)}
    found: Dict[str, List[str]] = {}
    for i in sorted(exact._recorded(model)):        # pylint: disable=protected-access
        if i not in io:
            found.setdefault(block_of(names[i]), []).append(names[i])
    return found


@dataclasses.dataclass
class MixedResult:
    tflite: bytes
    float_blocks: List[str]
    float_tensors: List[str]
    agreement: float
    steps: List[Dict]                   # the search's history

    def report(self) -> Dict:
        return {"float_blocks": self.float_blocks, "float_tensors": self.float_tensors,
                "agreement": self.agreement, "search": self.steps}


def search(calibrated: bytes, quantize: Callable[[Optional[List[str]]], bytes],
           agreement: Callable[[bytes], float], policy: MixedPolicy) -> MixedResult:
    """Pure int8 if it reaches the target, else the blocks whose own quantization hurts most
    stay float (module docstring). `quantize(denylisted_nodes)` makes a file;
    `agreement(file)` scores it against the float model."""
    tflite = quantize(None)
    score = agreement(tflite)
    steps: List[Dict] = [{"float_blocks": [], "agreement": score}]
    if not policy.enabled or score >= policy.target_agreement:
        return MixedResult(tflite, [], [], score, steps)
    groups = blocks(calibrated)

    def with_float(chosen):
        tensors = [t for b in chosen for t in groups[b]]
        return quantize(nodes_for(calibrated, tensors)), tensors
    # Each block's own harm: the agreement when it alone is int8 and every other block float.
    harm = {}
    for name in groups:
        file, _ = with_float([b for b in groups if b != name])
        harm[name] = 1.0 - agreement(file)
        steps.append({"int8_block": name, "agreement": 1.0 - harm[name]})
    best = (score, tflite, [], [])
    ranked = sorted(harm, key=lambda b: -harm[b])
    for k in range(1, min(policy.max_float_blocks, len(ranked)) + 1):
        chosen = ranked[:k]
        file, tensors = with_float(chosen)
        value = agreement(file)
        steps.append({"float_blocks": list(chosen), "agreement": value})
        if value > best[0]:
            best = (value, file, list(chosen), tensors)
        if value >= policy.target_agreement:
            break
    return MixedResult(best[1], best[2], best[3], best[0], steps)


def convert(converter, images: Sequence[np.ndarray], agreement: Callable[[bytes], float],
            policy: MixedPolicy, io_dtype,
            keep_float: Optional[Callable[[bytes], List[str]]] = None) -> Tuple[bytes, Dict]:
    """A configured converter's int8 file: exact ranges, then `search`. `keep_float(calibrated)`
    names tensors that stay float in every file (a task's float-by-design tail).
    Returns (file, {"calibration": ..., "mixed": ...})."""
    import tensorflow as tf
    images = [np.asarray(x, np.float32) for x in images]
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    calibrated, summary = exact.calibrate(converter, images, io_dtype)
    fixed = nodes_for(calibrated, keep_float(calibrated)) if keep_float else []

    def quantize(nodes):
        chosen = sorted(set(nodes or []) | set(fixed))
        return exact.quantize(converter, calibrated, io_dtype, chosen or None)
    result = search(calibrated, quantize, agreement, policy)
    summary = dict(summary, widened=sorted(summary["widened"]))
    return result.tflite, {"calibration": summary, "mixed": result.report()}
