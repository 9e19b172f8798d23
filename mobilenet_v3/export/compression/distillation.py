"""QAT by distillation: the fake-quantized model learns the float model's outputs, not labels.

Why: QAT on a user's subset of classes with cross-entropy on labels pulls every logit of the
classes the data lacks down (the labels never name them), so the int8 file loses the classes
it did not see (measured: Google's Small fine-tuned on 150 of its 1001 classes scored 73.6% on
photos of all classes, below the 74.2% of plain int8). With the float model as the teacher the
target is the network's own full output distribution on every image, whatever its label, so
quantization-aware training only repairs what quantization broke. The loss is Hinton's:
KL(softmax(teacher / T) || softmax(student / T)) * T^2, averaged over the global batch.

`fixed_ranges`: the student runs in inference mode (its fake-quant activation ranges stay
where calibration put them, no dropout; BN is frozen either way), so only the weights learn.
In training mode tfmot moves every range toward each batch's min/max (EMA, decay 0.999): on a
subset of the classes the ranges shrink toward that subset's activations.
"""

from typing import Callable

import tensorflow as tf

from mobilenet_v3.training.classification import ClassificationTask


class DistillationTask(ClassificationTask):
    """ClassificationTask whose training loss is the teacher's distribution (labels only
    feed the reported top-1). `teacher(images)` gives logits (a frozen model, or a function
    that calls one built later under the loop's strategy scope); it is never trained."""

    def __init__(self, config, teacher: Callable[[tf.Tensor], tf.Tensor],
                 temperature: float = 1.0, fixed_ranges: bool = False, **kwargs):
        super().__init__(config, **kwargs)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.teacher = teacher
        self.temperature = float(temperature)
        self.fixed_ranges = bool(fixed_ranges)

    def train_loss_and_metrics(self, model, batch):
        images, labels, skipped = batch
        logits = tf.cast(model(images, training=not self.fixed_ranges), tf.float32)
        target = tf.stop_gradient(tf.cast(self.teacher(images), tf.float32))
        t = self.temperature
        teacher_p = tf.nn.softmax(target / t)
        per_example = tf.reduce_sum(
            teacher_p * (tf.nn.log_softmax(target / t) - tf.nn.log_softmax(logits / t)),
            axis=-1) * (t * t)
        return self.averaged(per_example), self.step_metrics(logits, labels, skipped)
