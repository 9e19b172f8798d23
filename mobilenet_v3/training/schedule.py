"""The paper's learning-rate schedule: linear warm-up, then x0.99 every 3 epochs (staircase).

Initial rate 0.1 at a global batch of 4096, scaled linearly with the global batch (paper 6.1.1
with TF-Slim's 5 warm-up epochs). The decay counts from step 0, as in TF-Slim and Model Garden;
during warm-up the rate ramps linearly up to where the decayed schedule stands at its end.
"""

import dataclasses

import tensorflow as tf
import tf_keras


@dataclasses.dataclass
class ScheduleConfig:
    base_learning_rate: float = 0.1    # at `base_batch_size`
    base_batch_size: int = 4096
    warmup_epochs: float = 5.0
    decay_epochs: float = 3.0
    decay_rate: float = 0.99
    staircase: bool = True


def scaled_learning_rate(config: ScheduleConfig, global_batch_size: int) -> float:
    """Linear scaling rule: the rate for `global_batch_size` images per step."""
    return config.base_learning_rate * global_batch_size / config.base_batch_size


@tf_keras.saving.register_keras_serializable(package="mobilenet_v3")
class WarmupExponentialDecay(tf_keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up over `warmup_steps` wrapped around Keras' ExponentialDecay."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float,
                 warmup_steps: int, staircase: bool = True):
        super().__init__()
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = int(decay_steps)
        self.decay_rate = float(decay_rate)
        self.warmup_steps = int(warmup_steps)
        self.staircase = bool(staircase)
        self._decay = tf_keras.optimizers.schedules.ExponentialDecay(
            self.initial_learning_rate, self.decay_steps, self.decay_rate, self.staircase)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        decayed = self._decay(step)
        if self.warmup_steps <= 0:
            return decayed
        warmup_end = self._decay(float(self.warmup_steps))
        warm = warmup_end * step / float(self.warmup_steps)
        return tf.where(step < self.warmup_steps, warm, decayed)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "warmup_steps": self.warmup_steps, "staircase": self.staircase}


def paper_schedule(config: ScheduleConfig, global_batch_size: int,
                   steps_per_epoch: int) -> WarmupExponentialDecay:
    """The schedule for a run with this global batch and epoch length."""
    if global_batch_size < 1 or steps_per_epoch < 1:
        raise ValueError("global_batch_size and steps_per_epoch must be >= 1, got "
                         f"{global_batch_size} and {steps_per_epoch}")
    return WarmupExponentialDecay(
        initial_learning_rate=scaled_learning_rate(config, global_batch_size),
        decay_steps=max(1, round(config.decay_epochs * steps_per_epoch)),
        decay_rate=config.decay_rate,
        warmup_steps=round(config.warmup_epochs * steps_per_epoch),
        staircase=config.staircase)
