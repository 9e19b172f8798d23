"""The structural part of every export report: ops, XNNPACK partitions, I/O tensors, size, and
(classifiers) whether h-swish took the form the format asks for.

What a user needs to know about a .tflite before running it on a phone; the same keys for
every task (export/task_export.py adds agreement, guard and settings).
"""

from typing import Dict

import numpy as np

from mobilenet_v3.analysis import tflite_inspect


def tensor_info(details: Dict) -> Dict:
    scale, zero = details["quantization"]
    info = {"name": details["name"], "shape": details["shape"].tolist(),
            "dtype": np.dtype(details["dtype"]).name}
    if scale:
        info["quantization"] = {"scale": float(scale), "zero_point": int(zero)}
    return info


def describe(tflite: bytes, fmt: str) -> Dict:
    """Format, size, op histogram, XNNPACK partitions and I/O tensors of any task's file."""
    it = tflite_inspect.interpreter(tflite)
    return {"format": fmt, "size_bytes": len(tflite),
            "op_histogram": tflite_inspect.op_histogram(tflite),
            "xnnpack_partitions": tflite_inspect.xnnpack_partitions(tflite),
            "inputs": [tensor_info(d) for d in it.get_input_details()],
            "outputs": [tensor_info(d) for d in it.get_output_details()]}


_EXPECTED = {
    "fused": "one HARD_SWISH op per h-swish",
    "unfused": "none: ADD(+RELU6) and two MULs per h-swish, all in XNNPACK",
    "folded": "none: ADD(+RELU6) and one MUL per h-swish (its 1/6 is in the next conv's "
              "kernel), all in XNNPACK",
}


def hard_swish_check(tflite: bytes, form: str, sites: int) -> Dict:
    """Whether the file's h-swish took `form` at each of the `sites` activations."""
    hs_ops = tflite_inspect.op_histogram(tflite).get("HARD_SWISH", 0)
    return {"activations": sites, "HARD_SWISH_ops": hs_ops,
            "single_op_each": hs_ops == sites,
            "as_expected": hs_ops == (sites if form == "fused" else 0),
            "expected": _EXPECTED[form]}
