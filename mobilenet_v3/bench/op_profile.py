"""Per-op-type time of a .tflite model on the host, by timing every op on its own.

LiteRT's Python API has no op profiler, so each operator is cut out into a one-op model (its
non-constant inputs become the model's inputs, its weights stay) and timed with the same
interpreter settings; times are summed per op type. The sum is compared with the whole
model's time: the gap is what isolation changes (tensors that stay in cache, delegate
partition boundaries).
"""

import collections
import time
from typing import Dict

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from ai_edge_litert.tools import flatbuffer_utils


def _min_ms(interpreter, warmup: int, runs: int) -> float:
    for _ in range(warmup):
        interpreter.invoke()
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        interpreter.invoke()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return float(min(samples))


def _randomize_inputs(interpreter, rng):
    for d in interpreter.get_input_details():
        dtype = np.dtype(d["dtype"])
        if dtype.kind == "f":
            data = rng.uniform(-1, 1, d["shape"]).astype(dtype)
        else:
            info = np.iinfo(dtype)
            data = rng.randint(info.min, info.max + 1, d["shape"]).astype(dtype)
        interpreter.set_tensor(d["index"], data)


def op_type_times(tflite: bytes, threads: int = 1, warmup: int = 3,
                  runs: int = 20) -> Dict[str, Dict[str, float]]:
    """{op type: {"ms": summed min time, "count": ops}}, plus "_total" for the whole model."""
    rng = np.random.RandomState(0)
    model = flatbuffer_utils.convert_bytearray_to_object(tflite)
    graph = model.subgraphs[0]
    operators = list(graph.operators)
    inputs, outputs = list(graph.inputs), list(graph.outputs)

    def constant(tensor_index):
        buffer = model.buffers[graph.tensors[tensor_index].buffer]
        return buffer.data is not None and len(buffer.data) > 0

    result = collections.defaultdict(lambda: {"ms": 0.0, "count": 0})
    try:
        for op in operators:
            graph.operators = [op]
            graph.inputs = [t for t in op.inputs if t >= 0 and not constant(t)]
            graph.outputs = list(op.outputs)
            one_op = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
            it = Interpreter(model_content=one_op, num_threads=threads)
            it.allocate_tensors()
            _randomize_inputs(it, rng)
            name = flatbuffer_utils.opcode_to_name(model, op.opcodeIndex)
            result[name]["ms"] += _min_ms(it, warmup, runs)
            result[name]["count"] += 1
    finally:
        graph.operators, graph.inputs, graph.outputs = operators, inputs, outputs
    whole = Interpreter(model_content=tflite, num_threads=threads)
    whole.allocate_tensors()
    _randomize_inputs(whole, rng)
    ordered = dict(sorted(result.items(), key=lambda kv: -kv[1]["ms"]))
    ordered["_total"] = {"ms": _min_ms(whole, warmup, runs), "count": len(operators)}
    return ordered
