"""Object detection as a training Task: SSDLite on MobileNetV3 (paper 6.3).

Loss as in the OD API config: sigmoid focal loss (alpha 0.75, gamma 2) over the class slots,
background encoded as all zeros; smooth L1 (delta 1) on matched anchors divided by the code
size; both normalised by the number of matched anchors. Evaluation: COCO mAP @[.5:.95] and
@.5 (pycocotools) on the held-out split, the detections post-processed like the TFLite op.

The eval step is pure TF: a batch's detections and ground truth are logs, which the loop
gathers to the host and `aggregate_logs` feeds to the COCO evaluator (no py_function, so the
step could run on a TPU).
"""

from typing import Callable, Dict, Optional

import tensorflow as tf
import tf_keras

from mobilenet_v3.detection import boxes as box_lib, data as data_lib
from mobilenet_v3.detection.coco_metrics import CocoEvaluator
from mobilenet_v3.modeling.heads.ssdlite import DetectorConfig, SSDLiteConfig, build_ssdlite
from mobilenet_v3.training.config import TrainConfig
from mobilenet_v3.training.task import Task

CALIBRATION_BATCH = 16     # x transfer.HEAD_CALIBRATION_BATCHES images re-estimate a folded BN
FOCAL_ALPHA = 0.75
FOCAL_GAMMA = 2.0


def is_class_layer(name: str) -> bool:
    """The 1x1 class predictors, whose shape depends on the classes (ssd_class{k}_predict)."""
    return name.startswith("ssd_class") and name.endswith("_predict")


def focal_loss_sum(logits, targets, alpha: float = FOCAL_ALPHA, gamma: float = FOCAL_GAMMA):
    """The OD API's weighted_sigmoid_focal loss, summed."""
    ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
    p = tf.sigmoid(logits)
    p_t = targets * p + (1 - targets) * (1 - p)
    weight = targets * alpha + (1 - targets) * (1 - alpha)
    return tf.reduce_sum(weight * tf.pow(1 - p_t, gamma) * ce)


def smooth_l1_sum(predicted, targets, mask):
    """Huber (delta 1) over the 4 codes of matched anchors, summed, divided by the code size."""
    diff = tf.abs(predicted - targets)
    loss = tf.where(diff < 1.0, 0.5 * diff * diff, diff - 0.5)
    return tf.reduce_sum(loss * mask[..., None]) / 4.0


def detection_losses(box_encodings, class_logits, class_targets, box_targets):
    """(classification loss sum, localisation loss sum, matched anchors)."""
    positive = tf.cast(class_targets > 0, tf.float32)
    onehot = tf.one_hot(class_targets, tf.shape(class_logits)[-1]) * positive[..., None]
    return (focal_loss_sum(class_logits, onehot),
            smooth_l1_sum(box_encodings, box_targets, positive), tf.reduce_sum(positive))


class DetectionTask(Task):
    """`config.data` is a DetectionDataConfig; `config.model` the backbone (its classifier
    fields are ignored). `init_backbone(model, config)` is the hook for ImageNet weights."""

    train_metric_names = ("loss", "cls_loss", "box_loss", "matches", "examples", "skipped")
    eval_metric_names = ("examples",)

    def __init__(self, config: TrainConfig,
                 init_backbone: Optional[Callable[[tf_keras.Model, DetectorConfig], None]] = None,
                 ssd: Optional[SSDLiteConfig] = None):
        super().__init__(config)
        self.data = config.data
        self.source = data_lib.open_source(self.data)
        size = self.data.image_size
        model = config.model.replace(include_top=False, input_shape=(size, size, 3),
                                     include_preprocessing=False)
        ssd = ssd or SSDLiteConfig()
        import dataclasses
        ssd = dataclasses.replace(ssd, classes=self.source.num_classes + 1)
        self._config = DetectorConfig(model, ssd)
        self._config.validate()
        self.init_backbone = init_backbone
        self.anchors = tf.constant(box_lib.anchors(self._config))

    @property
    def num_train_examples(self) -> int:
        return self.source.num_train

    @property
    def model_config(self) -> DetectorConfig:
        return self._config

    def build_model(self):
        model = build_ssdlite(self._config)
        if self.init_backbone is not None:   # --init_weights (ImageNet backbone) plugs in here
            self.init_backbone(model, self._config)
        return model

    def initializer(self):
        """--init_weights: a detector (all of it, the class predictors when the classes
        agree) or a classification file (its backbone); training/transfer.py."""
        if not self.config.init_weights:
            return None
        from mobilenet_v3.training import transfer
        batch = min(self.config.global_batch_size, CALIBRATION_BATCH)

        def images():
            data = data_lib.train_dataset(self.source, self.data, self._config, batch,
                                          tf.distribute.InputContext(), 0)
            return (b[0] for b in data.take(transfer.HEAD_CALIBRATION_BATCHES))
        return transfer.head_initializer(self.config.init_weights, "detection", self._config.model,
                                     is_class_layer, images)

    def backbone_layers(self, model):
        from mobilenet_v3.training import transfer
        return transfer.backbone_layers(model)

    def train_dataset(self, input_context, start_step):
        return data_lib.train_dataset(self.source, self.data, self._config,
                                      self.config.global_batch_size, input_context, start_step)

    def eval_dataset(self, input_context):
        c = self.config
        return data_lib.eval_dataset(self.source, self.data,
                                     c.eval_batch_size or c.global_batch_size, input_context)

    def train_loss_and_metrics(self, model, batch):
        images, class_targets, box_targets, skipped = batch
        box_encodings, class_logits = model(images, training=True)
        cls, loc, matches = detection_losses(tf.cast(box_encodings, tf.float32),
                                             tf.cast(class_logits, tf.float32),
                                             class_targets, box_targets)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        norm = tf.maximum(matches, 1.0) * replicas
        loss = (cls + loc) / norm
        return loss, {"cls_loss": cls / norm, "box_loss": loc / norm, "matches": matches,
                      "examples": tf.cast(tf.shape(images)[0], tf.float32),
                      "skipped": tf.cast(tf.reduce_sum(skipped), tf.float32)}

    def eval_step(self, model, batch):
        images, gt_boxes, gt_classes, image_ids, sizes = batch
        box_encodings, class_logits = model(images, training=False)
        boxes, classes, scores, counts = box_lib.postprocess(
            tf.cast(box_encodings, tf.float32), tf.cast(class_logits, tf.float32),
            self.anchors, self._config)
        real = tf.reduce_sum(tf.cast(image_ids >= 0, tf.float32))
        return {"examples": real}, {
            "image_ids": image_ids, "sizes": sizes, "gt_boxes": gt_boxes,
            "gt_classes": gt_classes, "boxes": boxes, "classes": classes, "scores": scores,
            "counts": counts}

    def aggregate_logs(self, state, logs):
        """Rows of every replica side by side: the COCO evaluator takes plain batches."""
        if state is None:
            state = CocoEvaluator(self.source.num_classes)
        flat = {k: v.reshape((-1,) + v.shape[2:]) for k, v in logs.items()}
        state.add(*(flat[k] for k in ("image_ids", "sizes", "gt_boxes", "gt_classes", "boxes",
                                      "classes", "scores", "counts")))
        return state

    def reduce_aggregated_logs(self, state) -> Dict[str, float]:
        if state is None:
            state = CocoEvaluator(self.source.num_classes)
        return state.result()

    def train_values(self, sums: Dict[str, float], steps: int) -> Dict[str, float]:
        steps = max(steps, 1)
        return {"loss": sums["loss"] / steps, "cls_loss": sums["cls_loss"] / steps,
                "box_loss": sums["box_loss"] / steps,
                "matches": sums["matches"] / max(sums["examples"], 1.0)}

    def eval_values(self, sums: Dict[str, float]) -> Dict[str, float]:
        return {"examples": int(sums["examples"])}

    def format_values(self, values: Dict[str, float]) -> str:
        if "loss" in values:
            return (f"loss {values['loss']:.4f}  cls {values['cls_loss']:.4f}  "
                    f"box {values['box_loss']:.4f}  matches/img {values['matches']:.1f}")
        return f"mAP {values['mAP']:.4f}  mAP@.5 {values['mAP50']:.4f}"

    def describe_data(self) -> str:
        s = self.source
        return (f"SSDLite @{self.data.image_size} on {s.name} ({s.num_train} train / "
                f"{s.num_eval} held-out, {s.num_classes} classes, "
                f"{int(self.anchors.shape[0])} anchors)")

    def labels(self):
        return ["background"] + list(self.source.class_names)
