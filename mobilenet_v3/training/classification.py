"""Image classification: the paper's ImageNet task (label-smoothed cross-entropy, top-1/5).

Data from data.pipeline (synthetic, image folder, tfds ImageNet); the network from modeling.
"""

from typing import Callable, Dict

import tensorflow as tf
import tf_keras

from mobilenet_v3.data import pipeline
from mobilenet_v3.modeling.builders import build_model
from mobilenet_v3.modeling.config import ModelConfig
from mobilenet_v3.training.config import TrainConfig
from mobilenet_v3.training import transfer
from mobilenet_v3.training.task import Task

CALIBRATION_BATCH, CALIBRATION_BATCHES = 64, 4    # BN statistics of BN-folded imports


def correct_counts(logits, labels, mask=None):
    """(top-1 hits, top-5 hits) summed over the batch; `mask` drops padding."""
    k = min(5, logits.shape[-1])
    hits = [tf.cast(tf.math.in_top_k(labels, logits, n), tf.float32) for n in (1, k)]
    if mask is not None:
        hits = [h * tf.cast(mask, tf.float32) for h in hits]
    return [tf.reduce_sum(h) for h in hits]


class ClassificationTask(Task):
    """`model_fn(ModelConfig) -> model` may swap in another network (benchmarks, QAT)."""

    train_metric_names = ("loss", "top1", "top5", "examples", "skipped")
    eval_metric_names = ("top1", "top5", "examples")

    def __init__(self, config: TrainConfig,
                 model_fn: Callable[[ModelConfig], tf_keras.Model] = build_model):
        super().__init__(config)
        self.source = pipeline.open_source(config.data)
        self._model_config = config.model.for_training(self.source.num_classes,
                                                       config.data.image_size)
        self._model_config.validate()
        self.model_fn = model_fn
        self.loss_fn = tf_keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=config.label_smoothing,
            reduction=tf_keras.losses.Reduction.NONE)

    @property
    def num_train_examples(self) -> int:
        return self.source.num_train

    @property
    def model_config(self) -> ModelConfig:
        return self._model_config

    def build_model(self):
        return self.model_fn(self._model_config)

    def initializer(self):
        """--init_weights: backbone (+ head conv) imported, logits new unless the classes
        agree; read and checked against the run's architecture now (transfer.py)."""
        if not self.config.init_weights:
            return None
        source = transfer.read_source(self.config.init_weights, self._model_config)

        def initialize(model):
            summary = transfer.initialize(model, self._model_config, source)
            if summary["bn_folded"]:      # identity BN: give it statistics (transfer.py)
                batch = min(self.config.global_batch_size, CALIBRATION_BATCH)
                data = pipeline.train_dataset(self.source, self.config.data, batch,
                                              tf.distribute.InputContext(), 0)
                summary["calibration_images"] = batch * CALIBRATION_BATCHES
                summary["restandardized"] = transfer.restandardize_batch_norm(
                    model, transfer.backbone_layers(model),
                    (images for images, _, _ in data.take(CALIBRATION_BATCHES)))
            return transfer.describe(summary)
        return initialize

    def backbone_layers(self, model):
        return transfer.backbone_layers(model)

    def train_dataset(self, input_context, start_step):
        return pipeline.train_dataset(self.source, self.config.data,
                                      self.config.global_batch_size, input_context, start_step)

    def eval_dataset(self, input_context):
        config = self.config
        return pipeline.eval_dataset(self.source, config.data,
                                     config.eval_batch_size or config.global_batch_size,
                                     input_context)

    def train_loss_and_metrics(self, model, batch):
        images, labels, skipped = batch
        logits = tf.cast(model(images, training=True), tf.float32)
        per_example = self.loss_fn(tf.one_hot(labels, self._model_config.classes), logits)
        return self.averaged(per_example), self.step_metrics(logits, labels, skipped)

    def averaged(self, per_example):
        """This replica's share of the global mean loss."""
        return tf.nn.compute_average_loss(per_example,
                                          global_batch_size=self.config.global_batch_size)

    @staticmethod
    def step_metrics(logits, labels, skipped):
        top1, top5 = correct_counts(logits, labels)
        return {"top1": top1, "top5": top5,
                "examples": tf.cast(tf.shape(labels)[0], tf.float32),
                "skipped": tf.cast(tf.reduce_sum(skipped), tf.float32)}

    def eval_metrics(self, model, batch):
        images, labels = batch
        logits = tf.cast(model(images, training=False), tf.float32)
        real = labels >= 0
        top1, top5 = correct_counts(logits, tf.maximum(labels, 0), mask=real)
        return {"top1": top1, "top5": top5,
                "examples": tf.reduce_sum(tf.cast(real, tf.float32))}

    def train_values(self, sums: Dict[str, float], steps: int) -> Dict[str, float]:
        count = max(sums["examples"], 1)
        return {"loss": sums["loss"] / max(steps, 1), "top1": sums["top1"] / count,
                "top5": sums["top5"] / count}

    def eval_values(self, sums: Dict[str, float]) -> Dict[str, float]:
        count = max(sums["examples"], 1.0)
        return {"top1": float(sums["top1"] / count), "top5": float(sums["top5"] / count),
                "examples": int(sums["examples"]),
                "skipped": int(self.source.num_eval - sums["examples"])}

    def format_values(self, values: Dict[str, float]) -> str:
        if "loss" in values:
            return (f"loss {values['loss']:.4f}  top1 {values['top1']:.3f}  "
                    f"top5 {values['top5']:.3f}")
        return f"top1 {values['top1']:.4f}  top5 {values['top5']:.4f}"

    def describe_data(self) -> str:
        s = self.source
        return (f"@{self.config.data.image_size} on {s.name} ({s.num_train} train / "
                f"{s.num_eval} held-out, {s.num_classes} classes)")

    def labels(self):
        return list(self.source.class_names or ())
