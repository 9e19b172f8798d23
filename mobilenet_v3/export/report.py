"""The structural part of an export report: ops, XNNPACK partitions, h-swish, tensor dtypes.

What a user needs to know about a .tflite before running it on a phone.
"""

from typing import Dict

import numpy as np

from mobilenet_v3.analysis import tflite_inspect
from mobilenet_v3.export.formats import FormatPolicy


def tensor_info(details: Dict) -> Dict:
    scale, zero = details["quantization"]
    info = {"name": details["name"], "shape": details["shape"].tolist(),
            "dtype": np.dtype(details["dtype"]).name}
    if scale:
        info["quantization"] = {"scale": float(scale), "zero_point": int(zero)}
    return info


_EXPECTED = {
    "fused": "one HARD_SWISH op per h-swish",
    "unfused": "none: ADD(+RELU6) and two MULs per h-swish, all in XNNPACK",
    "folded": "none: ADD(+RELU6) and one MUL per h-swish (its 1/6 is in the next conv's "
              "kernel), all in XNNPACK",
}


def describe(tflite: bytes, policy: FormatPolicy, form: str, sites: int) -> Dict:
    """Ops, partitions, whether h-swish took the expected form, I/O tensors, size."""
    histogram = tflite_inspect.op_histogram(tflite)
    it = tflite_inspect.interpreter(tflite)
    hs_ops = histogram.get("HARD_SWISH", 0)
    report = {
        "format": policy.name, "size_bytes": len(tflite), "hard_swish_form": form,
        "op_histogram": histogram, "xnnpack_partitions": tflite_inspect.xnnpack_partitions(tflite),
        "hard_swish": {"activations": sites, "HARD_SWISH_ops": hs_ops,
                       "single_op_each": hs_ops == sites,
                       "as_expected": hs_ops == (sites if form == "fused" else 0),
                       "expected": _EXPECTED[form]},
        "inputs": [tensor_info(d) for d in it.get_input_details()],
        "outputs": [tensor_info(d) for d in it.get_output_details()],
    }
    if policy.integer:
        report["float_tensors_inside"] = tflite_inspect.float_tensors_inside(tflite)
        report["saturated_biases"] = tflite_inspect.saturated_biases(tflite)
    return report
