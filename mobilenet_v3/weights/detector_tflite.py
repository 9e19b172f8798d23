"""A float detector .tflite (ours, or an OD API `model.tflite`) read back into our SSDLite.

A converted file has BN folded into the conv biases (and, usually, the SE gate's +3 into the
excite conv's bias, as `tflite_file` reads it), and its tensor names are whatever the
converter made of the graph's. So the file's convs are matched to the detector's conv layers by
the layer their names point at where they do (`name_hint`: our layer names, the OD API's
scopes), else by kind and kernel shape in execution order, written with identity BN carrying
the folded bias, and the result is verified: the model must reproduce the file's own box encodings (and class
scores, when the classes are the file's) that feed its post-processing op, on a test image,
or nothing is kept. Integer files are refused: their weights are rounded, no model reproduces
them exactly. Fine-tuning from such a file re-estimates the BN statistics (training/transfer.py).
"""

from typing import Callable, Dict, List, Optional

import numpy as np
import tf_keras

from mobilenet_v3.weights import tflite_file
from mobilenet_v3.weights.assign import GATE_OFFSET
from mobilenet_v3.weights.errors import ArchitectureMismatchError, CorruptWeightsError

POSTPROCESS_OP = "TFLite_Detection_PostProcess"
TOLERANCE = 1e-3          # of the largest |value| of an output: float32 rounding is ~1e-6


def is_detector_file(path: str) -> bool:
    if not path.lower().endswith(".tflite"):
        return False
    try:
        with open(path, "rb") as f:
            return POSTPROCESS_OP.encode() in f.read()
    except OSError:
        return False


def _conv_layers(model: tf_keras.Model):
    """(layer, kind, Keras kernel shape, the BN after it or None) in model order."""
    by_name = {layer.name: layer for layer in model.layers}
    out = []
    for layer in model.layers:
        if isinstance(layer, tf_keras.layers.DepthwiseConv2D):
            kind, shape = "depthwise", tuple(layer.depthwise_kernel.shape)
        elif isinstance(layer, tf_keras.layers.Conv2D):
            kind, shape = "conv", tuple(layer.kernel.shape)
        else:
            continue
        bn = by_name.get(layer.name + "_bn")       # every BN is named after its conv
        bn = bn if isinstance(bn, tf_keras.layers.BatchNormalization) else None
        out.append((layer, kind, shape, bn))
    return out


def _interpreter(path: str):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    try:
        it = Interpreter(model_path=path, experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType
                         .BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        it.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise CorruptWeightsError(f"{path!r} is not a readable TFLite file: "
                                  f"{str(e).splitlines()[0]}") from None
    return it


def _integer_weights(path: str):
    """The name of the first conv weight stored as integers (int8 / dynamic files), or None."""
    it = _interpreter(path)
    details = {t["index"]: t for t in it.get_tensor_details()}
    producer = {o: op for op in it._get_ops_details() for o in op["outputs"]}
    for op in it._get_ops_details():
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            index = op["inputs"][1]
            source = producer.get(index)
            if source is not None and source["op_name"] == "DEQUANTIZE":
                index = source["inputs"][0]
            if np.dtype(details[index]["dtype"]).kind in "iu":
                return details[index]["name"]
    return None


def file_facts(path: str) -> Dict:
    """Input size and class slots of a detector file (the op's num_classes + background)."""
    from mobilenet_v3.analysis.tflite_inspect import custom_op_options
    with open(path, "rb") as f:
        options = custom_op_options(f.read(), POSTPROCESS_OP)
    shape = _interpreter(path).get_input_details()[0]["shape"]
    return {"size": (int(shape[1]), int(shape[2])), "slots": int(options["num_classes"]) + 1}


def _file_outputs(path: str, image: np.ndarray):
    """The post-processing op's inputs (box encodings, class scores) for `image`."""
    it = _interpreter(path)
    op = [o for o in it._get_ops_details() if o["op_name"] == POSTPROCESS_OP][0]
    detail = it.get_input_details()[0]
    if detail["dtype"] != np.float32:
        raise CorruptWeightsError(f"{path!r} has a {np.dtype(detail['dtype']).name} input: "
                                  "only float detector files import exactly")
    it.set_tensor(detail["index"], image.astype(np.float32))
    it.invoke()
    return [np.array(it.get_tensor(i)) for i in op["inputs"][:2]]


def load(model: tf_keras.Model, path: str,
         is_class_layer: Callable[[str], bool] = lambda name: False) -> Dict:
    """Writes the file's weights into `model` (built by build_ssdlite), verified; returns a
    summary. Class layers of another shape stay as built (another dataset's classes)."""
    integer = _integer_weights(path)
    if integer:
        raise CorruptWeightsError(f"{path!r} has integer weights ({integer!r}): only float "
                                  "detector files (float32 / float16) import exactly")
    source = tflite_file.read(path)
    targets = _conv_layers(model)
    names = {layer.name for layer, _, _, _ in targets}
    hinted = {}                   # layer name -> entry, where the file's names say which
    groups: Dict[tuple, List] = {}
    for entry in source.entries:
        layer = name_hint(entry.name, names)
        if layer is not None and layer not in hinted:
            hinted[layer] = entry
        else:
            groups.setdefault((entry.kind, entry.shape), []).append(entry)
    new, plan = [], []
    for layer, kind, shape, bn in targets:
        entry = hinted.pop(layer.name, None)
        if entry is not None and (entry.kind, entry.shape) == (kind, shape):
            plan.append((layer, bn, entry))
            continue
        if entry is not None:                 # a misleading name: match it by shape instead
            groups.setdefault((entry.kind, entry.shape), []).append(entry)
        queue = groups.get((kind, shape))
        if not queue:
            if is_class_layer(layer.name):
                new.append(layer.name)
                continue
            raise ArchitectureMismatchError(
                f"{path!r}: no conv of kernel {shape} ({kind}) left in the file for "
                f"{layer.name!r} of {model.name!r}: first layer that disagrees (another "
                "architecture, head or classes?)")
        plan.append((layer, bn, queue.pop(0)))
    left = [e for queue in groups.values() for e in queue] + list(hinted.values())
    if left and not new:
        raise ArchitectureMismatchError(f"{path!r} has {len(left)} conv(s) no layer of "
                                        f"{model.name!r} takes, first {left[0].name!r} "
                                        f"{left[0].shape}")
    before = model.get_weights()
    for layer, bn, entry in plan:
        kernel = entry.kernel.astype(np.float32)
        bias = np.zeros(entry.shape[-1], np.float32) if entry.bias is None else entry.bias
        if layer.name.endswith("_se_excite"):
            bias = bias + ((entry.added_constant - GATE_OFFSET) if entry.added_constant
                           is not None else -GATE_OFFSET)
        if bn is not None:
            (layer.depthwise_kernel if hasattr(layer, "depthwise_kernel") else layer.kernel) \
                .assign(kernel)
            eps = float(bn.epsilon)
            ones = np.ones_like(bias)
            bn.set_weights([ones, bias, np.zeros_like(bias), ones * (1.0 - eps)])
        else:
            layer.set_weights([kernel, bias.astype(np.float32)])
    _verify(model, path, compare_classes=not new, restore=before)
    return {"tensors": len(plan), "new_layers": new, "bn_folded": True}


def name_hint(tensor_name: str, layers) -> Optional[str]:
    """The layer a weight tensor's name points at: our layer names (files we export name
    their tensors after the Keras layers) or the OD API's scopes (BoxPredictor_k/...,
    FeatureExtractor/MobilenetV3/...), the longest scope first; None when it names none."""
    from mobilenet_v3.weights.official_ssdlite import layer_of_scope
    for name in tensor_name.split(";"):
        parts = name.split("/")
        for part in parts:
            if part in layers:
                return part
        for end in range(len(parts), 0, -1):
            layer = layer_of_scope("/".join(parts[:end]))
            if layer in layers:
                return layer
    return None


def _verify(model, path: str, compare_classes: bool, restore) -> None:
    image = np.random.RandomState(0).uniform(-1, 1, (1,) + tuple(model.input_shape[1:]))
    want_boxes, want_scores = _file_outputs(path, image)
    boxes, logits = (t.numpy() for t in model(image.astype(np.float32), training=False))
    checks = [("box encodings", boxes, want_boxes)]
    if compare_classes:
        checks.append(("class scores", 1.0 / (1.0 + np.exp(-logits)), want_scores))
    for what, ours, theirs in checks:
        if ours.shape != theirs.shape or np.abs(ours - theirs).max() > \
                TOLERANCE * max(1.0, np.abs(theirs).max()):
            model.set_weights(restore)
            diff = np.abs(ours - theirs).max() if ours.shape == theirs.shape else "shape"
            raise ArchitectureMismatchError(
                f"{path!r}: its weights placed by shape do not reproduce its {what} (largest "
                f"difference {diff}): the file's layout is not this detector's; nothing loaded")
