"""SSDLite -> TFLite with the TFLite_Detection_PostProcess custom op, as TF's SSD exports.

The exported graph: image [1, H, W, 3] in [-1, 1] -> backbone + SSDLite head -> sigmoid scores
-> TFLite_Detection_PostProcess (decodes boxes against constant center-size anchors with the
10/10/5/5 scales; fast NMS with one class per box, or per-class NMS when the config's
per_class_nms) -> boxes clipped to [0, 1] [1, K, 4] (ymin, xmin, ymax, xmax, normalised),
classes [1, K] (0-based, background excluded), scores [1, K], count [1].
The op is produced the way the OD API's export_tflite_graph_lib_tf2 does it: an empty
tf.function whose `experimental_implements` signature the converter legalises to the op.
LiteRT resolves it as a builtin custom op, so no extra library is needed.
"""

import contextlib
import tempfile
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tf_keras
from tensorflow.python.framework.convert_to_constants import (
    convert_variables_to_constants_v2)

from mobilenet_v3.analysis import tflite_inspect
from mobilenet_v3.detection import boxes as box_lib
from mobilenet_v3.export import folding, mixed_precision
from mobilenet_v3.export.convert import weight_only
from mobilenet_v3.export.formats import HEAD_FORMATS as FORMATS
from mobilenet_v3.modeling.heads.ssdlite import DetectorConfig, build_ssdlite

POSTPROCESS_OP = "TFLite_Detection_PostProcess"
OUTPUTS = ("boxes", "classes", "scores", "count")


def inference_model(trained: tf_keras.Model, config: DetectorConfig,
                    hard_swish_form: str) -> tf_keras.Model:
    """The trained weights in a batch-1 graph with the chosen h-swish form, [-1, 1] input
    ('folded': the 1/6 moved into the next convs' kernels, export/folding.py)."""
    graph = config.replace(batch_size=1, hard_swish_form=hard_swish_form,
                           include_preprocessing=False, weight_decay=0.0)
    model = build_ssdlite(graph)
    model.set_weights(trained.get_weights())
    if hard_swish_form == "folded":
        folding.fold_weights(model)
    return model


def _signature(config: DetectorConfig) -> str:
    ssd = config.ssd
    y, x, h, w = ssd.box_scales
    attrs = [("max_detections", "i", ssd.max_detections), ("max_classes_per_detection", "i", 1),
             ("detections_per_class", "i", ssd.max_detections),
             ("use_regular_nms", "b", "true" if ssd.per_class_nms else "false"),
             ("nms_score_threshold", "f", ssd.score_threshold),
             ("nms_iou_threshold", "f", ssd.iou_threshold), ("y_scale", "f", y),
             ("x_scale", "f", x), ("h_scale", "f", h), ("w_scale", "f", w),
             ("num_classes", "i", ssd.classes - 1)]
    text = [f'name: "{POSTPROCESS_OP}"']
    for key, kind, value in attrs:
        value = f"{value:e}" if kind == "f" else value
        text.append(f'attr {{ key: "{key}" value {{ {kind}: {value} }} }}')
    return " ".join(text)


class _DetectorModule(tf.Module):
    def __init__(self, model: tf_keras.Model, config: DetectorConfig):
        super().__init__()
        self.model = model
        corners = box_lib.anchors(config)
        yc, xc = (corners[:, 0] + corners[:, 2]) / 2, (corners[:, 1] + corners[:, 3]) / 2
        h, w = corners[:, 2] - corners[:, 0], corners[:, 3] - corners[:, 1]
        self.anchors = np.stack([yc, xc, h, w], -1).astype(np.float32)

        @tf.function(experimental_implements=_signature(config))
        def postprocess(box_encodings, class_predictions, anchors):  # noqa: ARG001
            zero = tf.constant(0.0, tf.float32)
            return zero, zero, zero, zero
        self.postprocess = postprocess

    def network(self, image):
        """image -> (box encodings, sigmoid class scores with the background slot)."""
        box_encodings, logits = self.model(image, training=False)
        return box_encodings, tf.sigmoid(logits)


@contextlib.contextmanager
def _converter(model: tf_keras.Model, config: DetectorConfig):
    """A converter of the detector graph (network + post-processing op), batch 1."""
    module = _DetectorModule(model, config)
    # The network is frozen like export.convert (no SavedModel round trip: ~20x faster); the
    # post-processing composite is added after freezing, which would inline it.
    shape = [1] + list(config.input_shape)
    network = tf.function(lambda image: module.network(image)).get_concrete_function(
        tf.TensorSpec(shape, tf.float32, "image"))
    network = convert_variables_to_constants_v2(network)

    holder = tf.Module()
    holder.postprocess = module.postprocess

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, "image")])
    def detect(image):
        box_encodings, scores = network(image)
        boxes, classes, scores, count = holder.postprocess(box_encodings, scores,
                                                           tf.constant(module.anchors))
        # the op does not clip: boxes past the image edge would reach the app (and the
        # evaluator) as they are
        return tf.clip_by_value(boxes, 0.0, 1.0), classes, scores, count
    holder.detect = detect
    # The converter legalises `implements` composites when it imports a SavedModel; this one
    # holds no variables, so writing it is quick. It is read at each convert().
    with tempfile.TemporaryDirectory() as folder:
        tf.saved_model.save(holder, folder, signatures={"serving_default": detect})
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        converter.allow_custom_ops = True
        yield converter


def convert(model: tf_keras.Model, config: DetectorConfig, fmt: str = "float32",
            representative_images: Optional[Callable[[], Iterable[np.ndarray]]] = None
            ) -> bytes:
    """float32, float16, dynamic, or pure int8 (exact calibration, float I/O, no float op but
    the post-processing) .tflite with the custom op. `convert_int8` is the exporter's int8."""
    if fmt not in FORMATS:
        raise ValueError(f"detector formats are {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "int8":
        if representative_images is None:
            raise ValueError("int8 export needs representative images")
        images = [np.asarray(x, np.float32) for x in representative_images()]
        return convert_int8(model, config, images, None,
                            mixed_precision.MixedPolicy(1.0, enabled=False))[0]
    with _converter(model, config) as converter:
        if fmt != "float32":
            weight_only(converter, fmt)
        return outputs_in_detection_order(converter.convert())


def convert_int8(model: tf_keras.Model, config: DetectorConfig, images: Sequence[np.ndarray],
                 agreement: Optional[Callable[[bytes], float]],
                 policy: mixed_precision.MixedPolicy,
                 io_dtype=tf.float32) -> Tuple[bytes, Dict]:
    """int8 with exact ranges; tensors int8 cannot hold stay float while the file's
    agreement is below `policy.target_agreement` (export/mixed_precision.py).
    Returns (file, {"calibration": ..., "mixed": ...})."""
    with _converter(model, config) as converter:
        tflite, report = mixed_precision.convert(converter, images, agreement or (lambda _: 1.0),
                                                 policy, io_dtype, keep_float=after_postprocess)
    return outputs_in_detection_order(tflite), report


def ops_after_postprocess(ops) -> List[Dict]:
    """The ops (interpreter op details) fed, directly or not, by the post-processing op."""
    made = {int(i) for op in ops if op["op_name"] == POSTPROCESS_OP for i in op["outputs"]}
    after: List[Dict] = []
    while True:
        downstream = [op for op in ops if op["op_name"] != POSTPROCESS_OP and op not in after
                      and made & {int(i) for i in op["inputs"]}]
        if not downstream:
            return after
        after += downstream
        made |= {int(i) for op in downstream for i in op["outputs"]}


def after_postprocess(tflite: bytes) -> List[str]:
    """Names of the tensors the ops after the post-processing op make (the boxes' clip): they
    stay float, or int8 would round the box coordinates to 1/256 of the image."""
    it = tflite_inspect.interpreter(tflite, xnnpack=False)
    names = {t["index"]: t["name"] for t in it.get_tensor_details()}
    return [names[int(i)] for op in ops_after_postprocess(it._get_ops_details())
            for i in op["outputs"]]
def outputs_in_detection_order(tflite: bytes) -> bytes:
    """The file with its outputs as the post-processing op gives them: boxes, classes, scores,
    count (TFLite's detection convention: the OD API's TF1 files, and what MediaPipe and the
    Task Library assume without metadata). The converter orders a SavedModel signature's
    outputs its own way (here scores, boxes, count, classes); the signature keeps the names."""
    from tensorflow.lite.tools import flatbuffer_utils
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite))
    graph = model.subgraphs[0]
    ops = [op for op in graph.operators if model.operatorCodes[op.opcodeIndex].customCode
           == POSTPROCESS_OP.encode()]
    if len(ops) != 1:
        raise ValueError(f"expected one {POSTPROCESS_OP} op, found {len(ops)}")
    wanted = [int(i) for i in ops[0].outputs]
    outputs = [int(i) for i in graph.outputs]
    clipped = [i for i in outputs if i not in wanted]       # the boxes, clipped after the op
    if len(clipped) == 1 and wanted[0] not in outputs:
        wanted[0] = clipped[0]
    if sorted(wanted) != sorted(outputs):
        raise ValueError(f"the file's outputs are not the {POSTPROCESS_OP} op's")
    graph.outputs = np.array(wanted, np.int32)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def postprocess_options(tflite: bytes) -> Dict:
    """The post-processing op's attributes as the file stores them (max_detections,
    num_classes, use_regular_nms, nms_iou_threshold, the box scales, ...)."""
    return tflite_inspect.custom_op_options(tflite, POSTPROCESS_OP)


def output_tensors(it, op) -> List[int]:
    """Tensor indices of boxes (clipped), classes, scores, count: the op's outputs with its
    boxes replaced by the clip's, in any file, reordered (outputs_in_detection_order) or not
    (the mixed int8 search scores files straight from the converter)."""
    outputs = [int(i) for i in op["outputs"]]
    extra = [d["index"] for d in it.get_output_details() if d["index"] not in outputs]
    if len(extra) == 1:
        outputs[0] = int(extra[0])
    return outputs


def run(tflite: bytes, images: np.ndarray, num_threads: int = 1) -> List[Dict[str, np.ndarray]]:
    """Runs the file over `images` one by one; the op's four outputs by name, batch dropped."""
    it = tflite_inspect.interpreter(tflite, num_threads=num_threads)
    op = [o for o in it._get_ops_details() if o["op_name"] == POSTPROCESS_OP]
    if len(op) != 1:
        raise ValueError(f"expected one {POSTPROCESS_OP} op in the file, found {len(op)}")
    outputs = output_tensors(it, op[0])
    inp = it.get_input_details()[0]
    results = []
    for image in images:
        it.set_tensor(inp["index"], tflite_inspect.as_input(image[None], inp))
        it.invoke()
        values = [it.get_tensor(i)[0] for i in outputs]
        results.append(dict(zip(OUTPUTS, values)))
    return results


def keras_detections(model: tf_keras.Model, config: DetectorConfig, images: np.ndarray):
    """The Keras model's detections, post-processed like the op (detection.boxes)."""
    anchors = tf.constant(box_lib.anchors(config))
    out = []
    for i in range(0, len(images), 16):
        enc, logits = model(images[i:i + 16], training=False)
        b, c, s, n = (t.numpy() for t in box_lib.postprocess(enc, logits, anchors, config))
        out += [{"boxes": b[r], "classes": c[r], "scores": s[r], "count": n[r]}
                for r in range(len(b))]
    return out


def _iou(a, b):
    y0, x0 = np.maximum(a[0], b[0]), np.maximum(a[1], b[1])
    y1, x1 = np.minimum(a[2], b[2]), np.minimum(a[3], b[3])
    inter = max(y1 - y0, 0) * max(x1 - x0, 0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def agreement(ours: List[Dict], reference: List[Dict], min_score: float = 0.3) -> Dict:
    """How many of the reference's detections above `min_score` the file finds (same class,
    best IoU), and how far their boxes (normalised coordinates) and scores are apart."""
    found, total, box_diff, score_diff, ious = 0, 0, 0.0, 0.0, []
    for o, r in zip(ours, reference):
        n_o = int(o["count"])
        for k in range(int(r["count"])):
            if r["scores"][k] < min_score:
                continue
            total += 1
            candidates = [j for j in range(n_o) if int(o["classes"][j]) == int(r["classes"][k])]
            if not candidates:
                continue
            j = max(candidates, key=lambda j: _iou(o["boxes"][j], r["boxes"][k]))
            overlap = _iou(o["boxes"][j], r["boxes"][k])
            ious.append(overlap)
            if overlap >= 0.5:
                found += 1
                box_diff = max(box_diff, float(np.abs(o["boxes"][j] - r["boxes"][k]).max()))
                score_diff = max(score_diff, float(abs(o["scores"][j] - r["scores"][k])))
    return {"images": len(ours), "reference_detections": total, "min_score": min_score,
            "found": found, "recall": found / total if total else 1.0,
            "max_box_diff": box_diff, "max_score_diff": score_diff,
            "mean_iou": float(np.mean(ious)) if ious else None}
