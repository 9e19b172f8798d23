"""Semantic segmentation as a training Task: LR-ASPP / R-ASPP on MobileNetV3 (paper 6.4).

Loss: softmax cross-entropy per pixel, averaged over the pixels that are not ignored (255).
Evaluation: each step's k x k confusion matrix over non-ignored pixels is a log that the loop
gathers to the host, where the matrices of every replica and batch are summed (int64, exact);
mIoU = mean over classes present (in labels or predictions) of TP / (TP + FP + FN). The paper
trains from scratch; `--init_weights` starts from DeepLab's files or a classifier's backbone
(training/transfer.py).
"""

from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from mobilenet_v3.modeling.heads.lraspp import (SegHeadConfig, SegmenterConfig,
                                                build_segmenter)
from mobilenet_v3.segmentation import data as data_lib
from mobilenet_v3.training.config import TrainConfig
from mobilenet_v3.training.task import Task

IGNORE = data_lib.IGNORE
CALIBRATION_BATCH = 8      # x transfer.HEAD_CALIBRATION_BATCHES images re-estimate a folded BN
CLASS_LAYERS = ("seg_logits", "seg_logits_high", "seg_logits_low")


def is_class_layer(name: str) -> bool:
    """The convs to the classes, whose shape depends on them."""
    return name in CLASS_LAYERS


def pixel_loss_sum(logits, masks):
    """(cross-entropy summed over valid pixels, number of valid pixels)."""
    valid = tf.not_equal(masks, IGNORE)
    labels = tf.where(valid, masks, 0)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    valid = tf.cast(valid, tf.float32)
    return tf.reduce_sum(ce * valid), tf.reduce_sum(valid)


def confusion_matrix(logits, masks, classes: int, dtype=tf.float32):
    """[classes, classes] counts (rows: true class, columns: predicted), ignored pixels out."""
    predicted = tf.reshape(tf.argmax(logits, -1, output_type=tf.int32), [-1])
    true = tf.reshape(tf.cast(masks, tf.int32), [-1])
    valid = tf.not_equal(true, IGNORE)
    return tf.math.confusion_matrix(tf.boolean_mask(true, valid),
                                    tf.boolean_mask(predicted, valid),
                                    num_classes=classes, dtype=dtype)


def iou_from_confusion(matrix: np.ndarray) -> np.ndarray:
    """Per-class IoU; NaN for a class absent from both labels and predictions."""
    matrix = np.asarray(matrix, np.float64)
    tp = np.diag(matrix)
    union = matrix.sum(0) + matrix.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(matrix: np.ndarray) -> float:
    iou = iou_from_confusion(matrix)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0


class SegmentationTask(Task):
    """`config.data` is a SegmentationDataConfig; `config.model` the backbone (its classifier
    fields are ignored; output_stride 16 unless set)."""

    train_metric_names = ("loss", "correct", "pixels", "examples", "skipped")

    def __init__(self, config: TrainConfig, seg: Optional[SegHeadConfig] = None):
        super().__init__(config)
        self.data = config.data
        self.source = data_lib.open_source(self.data)
        size = self.data.image_size
        model = config.model.replace(include_top=False, input_shape=(size, size, 3),
                                     include_preprocessing=False)
        import dataclasses
        seg = dataclasses.replace(seg or SegHeadConfig(), classes=self.source.num_classes)
        self._config = SegmenterConfig(model, seg)
        self._config.validate()

    @property
    def num_train_examples(self) -> int:
        return self.source.num_train

    @property
    def model_config(self) -> SegmenterConfig:
        return self._config

    def build_model(self):
        return build_segmenter(self._config)

    def backbone_layers(self, model):
        return [layer for layer in model.layers if not layer.name.startswith("seg_")]

    def initializer(self):
        """--init_weights: a segmenter (all of it, the logits when the classes agree) or a
        classification file (its backbone); training/transfer.py."""
        if not self.config.init_weights:
            return None
        from mobilenet_v3.training import transfer
        batch = min(self.config.global_batch_size, CALIBRATION_BATCH)

        def images():
            data = data_lib.train_dataset(self.source, self.data, batch,
                                          tf.distribute.InputContext(), 0)
            return (b[0] for b in data.take(transfer.HEAD_CALIBRATION_BATCHES))
        return transfer.head_initializer(self.config.init_weights, "segmentation",
                                     self._config.model, is_class_layer, images)

    def train_dataset(self, input_context, start_step):
        return data_lib.train_dataset(self.source, self.data, self.config.global_batch_size,
                                      input_context, start_step)

    def eval_dataset(self, input_context):
        c = self.config
        return data_lib.eval_dataset(self.source, self.data,
                                     c.eval_batch_size or c.global_batch_size, input_context)

    def train_loss_and_metrics(self, model, batch):
        images, masks, skipped = batch
        logits = tf.cast(model(images, training=True), tf.float32)
        ce, valid = pixel_loss_sum(logits, masks)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        # this replica's share of the global mean over valid pixels (equal shares assumed)
        loss = ce / tf.maximum(valid, 1.0) / replicas
        correct = tf.reduce_sum(tf.cast(
            tf.equal(tf.argmax(logits, -1, output_type=tf.int32), masks), tf.float32)
            * tf.cast(tf.not_equal(masks, IGNORE), tf.float32))
        return loss, {"correct": correct, "pixels": valid,
                      "examples": tf.cast(tf.shape(images)[0], tf.float32),
                      "skipped": tf.cast(tf.reduce_sum(skipped), tf.float32)}

    def eval_step(self, model, batch):
        """int32 counts: float32 would stop counting exactly past 2**24 pixels a batch."""
        images, masks, real = batch
        logits = tf.cast(model(images, training=False), tf.float32)
        matrix = confusion_matrix(logits, masks, self._config.classes, tf.int32)
        return {"examples": tf.reduce_sum(tf.cast(real, tf.float32))}, {"confusion": matrix}

    def aggregate_logs(self, state, logs):
        matrix = logs["confusion"].astype(np.int64).sum(axis=0)     # over replicas
        return matrix if state is None else state + matrix

    def reduce_aggregated_logs(self, state) -> Dict[str, float]:
        k = self._config.classes
        matrix = np.zeros([k, k], np.int64) if state is None else state
        iou = iou_from_confusion(matrix)
        values = {"mIoU": mean_iou(matrix),
                  "pixel_accuracy": float(np.trace(matrix) / max(matrix.sum(), 1.0))}
        for name, v in zip(self.labels(), iou):
            values[f"IoU/{name}"] = float(v) if np.isfinite(v) else float("nan")
        return values

    def train_values(self, sums: Dict[str, float], steps: int) -> Dict[str, float]:
        return {"loss": sums["loss"] / max(steps, 1),
                "pixel_accuracy": sums["correct"] / max(sums["pixels"], 1.0)}

    def eval_values(self, sums: Dict[str, float]) -> Dict[str, float]:
        return {"examples": int(sums["examples"])}

    def format_values(self, values: Dict[str, float]) -> str:
        if "loss" in values:
            return f"loss {values['loss']:.4f}  pixel acc {values['pixel_accuracy']:.4f}"
        return f"mIoU {values['mIoU']:.4f}  pixel acc {values['pixel_accuracy']:.4f}"

    def describe_data(self) -> str:
        s, c = self.source, self._config
        return (f"{c.seg.head} (output stride {c.model.backbone.output_stride}"
                f"{', RF2' if c.model.backbone.rf2 else ''}) @{self.data.image_size} on "
                f"{s.name} ({s.num_train} train / {s.num_eval} held-out, {s.num_classes} "
                "classes)")

    def labels(self) -> List[str]:
        return list(self.source.class_names)
