"""Reads .tflite flatbuffers with the LiteRT interpreter: ops, delegate partitions, dtypes.

`BUILTIN_WITHOUT_DEFAULT_DELEGATES` shows the model's real ops; the default resolver applies
XNNPACK and shows one DELEGATE node per partition it took.
"""

import collections
from typing import Dict, List, Optional

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType


def interpreter(tflite: bytes, num_threads: Optional[int] = 1, xnnpack: bool = True):
    resolver = OpResolverType.AUTO if xnnpack else \
        OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    it = Interpreter(model_content=tflite, num_threads=num_threads,
                     experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    return it


def op_names(tflite: bytes) -> List[str]:
    """The model's builtin ops in execution order (no delegate applied)."""
    return [op["op_name"] for op in interpreter(tflite, xnnpack=False)._get_ops_details()]


def op_histogram(tflite: bytes) -> Dict[str, int]:
    return dict(collections.Counter(op_names(tflite)))


def xnnpack_partitions(tflite: bytes) -> int:
    """How many pieces XNNPACK cut the graph into (1 = the whole graph runs in XNNPACK)."""
    ops = interpreter(tflite, xnnpack=True)._get_ops_details()
    return sum(1 for op in ops if op["op_name"] == "DELEGATE")


def float_tensors_inside(tflite: bytes) -> List[str]:
    """Names of float tensors other than the graph's inputs and outputs (for int8 graphs)."""
    it = interpreter(tflite, xnnpack=False)
    io = {d["index"] for d in it.get_input_details() + it.get_output_details()}
    return [t["name"] for t in it.get_tensor_details()
            if t["index"] not in io and np.dtype(t["dtype"]).kind == "f"]


_INT32_MAX = 2 ** 31 - 1
_BIASED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")


def saturated_biases(tflite: bytes) -> Dict[str, List[int]]:
    """{op output name: channels} whose int32 bias sits at the int32 limit.

    A bias is stored as round(bias / (input scale * weight scale)); a channel whose weight
    range is ~0 (e.g. a pruned, all-zero channel given a [0, 0] fake-quant range) gets a tiny
    weight scale and its bias clips to +-2^31: the channel's output is then wrong by up to the
    whole bias. The converter avoids this for post-training ranges but not for QAT ones.
    """
    it = interpreter(tflite, xnnpack=False)
    details = {d["index"]: d for d in it.get_tensor_details()}
    found = {}
    for op in it._get_ops_details():
        inputs = [i for i in op["inputs"] if i >= 0]
        if op["op_name"] not in _BIASED_OPS or len(inputs) < 3 or \
                details[inputs[2]]["dtype"] != np.int32:
            continue
        bias = it.get_tensor(inputs[2]).astype(np.int64).reshape(-1)
        channels = np.flatnonzero(np.abs(bias) >= _INT32_MAX - 1)
        if channels.size:
            found[details[op["outputs"][0]]["name"].split(";")[0]] = channels.tolist()
    return found


# float32 preprocessing and a float32 scale leave ties ~1e-5 steps off: still ties
_TIE = 1e-3


def as_input(x: np.ndarray, details: Dict) -> np.ndarray:
    """A float batch in the input tensor's dtype (quantized with its scale for int8/uint8).

    Rounded half up, as a pixel reaches a uint8 file in an app: a [-1, 1] file's input scale is
    2/255 with an integer zero point, so an integer pixel p, preprocessed to p / 127.5 - 1,
    lands exactly between two steps; half up gives back q = p (MediaPipe feeds the pixel
    itself), where numpy's half-to-even and float noise flipped about half of them by one step.
    """
    if np.dtype(details["dtype"]).kind in "iu":
        scale, zero = details["quantization"]
        info = np.iinfo(details["dtype"])
        steps = np.asarray(x, np.float64) / scale + zero
        x = np.clip(np.floor(steps + 0.5 + _TIE), info.min, info.max)
    return x.astype(details["dtype"])


def run(tflite: bytes, images: np.ndarray, num_threads: int = 1) -> np.ndarray:
    """Runs a batch-1 model over `images` one by one; (de)quantizes int8/uint8 I/O."""
    it = interpreter(tflite, num_threads=num_threads)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    results = []
    for image in images:
        it.set_tensor(inp["index"], as_input(image[None], inp))
        it.invoke()
        y = it.get_tensor(out["index"])
        if np.dtype(out["dtype"]).kind in "iu":
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        results.append(y[0])
    return np.stack(results)


def output_ranks(tflite: bytes) -> List[int]:
    """The rank of each output (classifier [1, C]: [2]; segmenter [1, H, W, C]: [4])."""
    it = Interpreter(model_content=tflite,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    return [len(d["shape"]) for d in it.get_output_details()]


def has_op(tflite: bytes, name: str) -> bool:
    return name in op_names(tflite)


def custom_op_options(tflite: bytes, op_name: str) -> dict:
    """The attributes a custom op (e.g. TFLite_Detection_PostProcess) stores in the file
    (its flexbuffer custom options), as a dict."""
    from flatbuffers import flexbuffers
    from tensorflow.lite.tools import flatbuffer_utils
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite))
    for op in model.subgraphs[0].operators:
        if model.operatorCodes[op.opcodeIndex].customCode == op_name.encode():
            return dict(flexbuffers.Loads(bytes(op.customOptions)))
    raise ValueError(f"no {op_name} op in the file")
