"""Reads the conv weights of a .tflite file (float, float16 or uint8/int8 quantized) with LiteRT.

Weights are dequantized per tensor or per channel; BN is folded in such files (bias = BN bias).
"""

from typing import Dict, List, Optional

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from mobilenet_v3.weights.errors import CorruptWeightsError
from mobilenet_v3.weights.source import Entry, SourceWeights

WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def dequantize(values: np.ndarray, detail: Dict) -> np.ndarray:
    """Float values of a constant tensor (integers via its per-tensor/per-channel scales)."""
    if values.dtype.kind == "f":
        return values.astype(np.float32)
    params = detail["quantization_parameters"]
    scales, zero_points = params["scales"], params["zero_points"]
    if scales.size == 0:
        raise CorruptWeightsError(f"integer tensor {detail['name']!r} has no quantization scale")
    shape = [1] * values.ndim
    if scales.size > 1:
        shape[params["quantized_dimension"]] = -1
    real = (values.astype(np.float64) - zero_points.reshape(shape)) * scales.reshape(shape)
    return real.astype(np.float32)


class _Graph:
    """Tensors and ops of one interpreter, with producer/consumer look-ups."""

    def __init__(self, path: str):
        try:
            self.it = Interpreter(
                model_path=path,
                experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
            self.it.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise CorruptWeightsError(f"{path!r} is not a readable TFLite file: "
                                      f"{str(e).splitlines()[0]}") from None
        self.details = {t["index"]: t for t in self.it.get_tensor_details()}
        self.ops = self.it._get_ops_details()
        self.producer = {o: op for op in self.ops for o in op["outputs"]}
        self.consumers: Dict[int, List[Dict]] = {}
        for op in self.ops:
            for i in op["inputs"]:
                self.consumers.setdefault(i, []).append(op)

    def constant(self, index: int) -> np.ndarray:
        """A constant tensor's float value (through a DEQUANTIZE op if there is one)."""
        op = self.producer.get(index)
        if op is not None:
            if op["op_name"] != "DEQUANTIZE":
                raise CorruptWeightsError(f"weight tensor {self.details[index]['name']!r} is "
                                          f"computed by {op['op_name']}, not stored")
            index = op["inputs"][0]
        return dequantize(np.array(self.it.get_tensor(index)), self.details[index])

    def added_constant(self, output: int) -> Optional[float]:
        """x in `ADD(output, x)` when the only consumer of `output` adds a scalar constant."""
        users = self.consumers.get(output, [])
        if len(users) != 1 or users[0]["op_name"] != "ADD":
            return None
        other = [i for i in users[0]["inputs"] if i != output]
        if len(other) != 1 or other[0] in self.producer:
            return None
        value = self.constant(other[0])
        return float(value.reshape(-1)[0]) if value.size == 1 else None


def _entry(graph: _Graph, op: Dict) -> Entry:
    inputs = op["inputs"]
    weights = graph.constant(inputs[1])
    bias = graph.constant(inputs[2]) if len(inputs) > 2 and inputs[2] >= 0 else None
    name = graph.details[inputs[1]]["name"]
    if op["op_name"] == "CONV_2D":          # (out, kh, kw, in) -> (kh, kw, in, out)
        kind, kernel = "conv", weights.transpose(1, 2, 3, 0)
    elif op["op_name"] == "DEPTHWISE_CONV_2D":   # (1, kh, kw, c) -> (kh, kw, c, 1)
        kind, kernel = "depthwise", weights[0][..., None]
    else:                                    # (out, in) -> 1x1 conv (1, 1, in, out)
        kind, kernel = "conv", weights.T[None, None]
    return Entry(kind=kind, kernel=kernel, bias=bias, bn=None, name=name,
                 added_constant=graph.added_constant(op["outputs"][0]))


def read(path: str, origin: Optional[str] = None) -> SourceWeights:
    """All CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED weights in execution order.

    BN is folded into the biases and the converter may have folded the SE gate's +3 into the
    excite conv's bias: an explicit ADD of a constant after a conv is recorded instead.
    """
    graph = _Graph(path)
    entries = [_entry(graph, op) for op in graph.ops if op["op_name"] in WEIGHT_OPS]
    return SourceWeights(entries=entries, origin=origin or path, fmt="tflite",
                         bn_folded=True, gate_folded=True)
