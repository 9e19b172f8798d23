"""Learning-rate schedules: the paper's (linear warm-up, then x0.99 every 3 epochs, staircase),
the OD API's cosine and DeepLab's poly (`ScheduleConfig.kind`).

Initial rate 0.1 at a global batch of 4096, scaled linearly with the global batch (paper 6.1.1
with TF-Slim's 5 warm-up epochs). The decay counts from step 0, as in TF-Slim and Model Garden;
during warm-up the rate ramps linearly up to where the decayed schedule stands at its end.
"""

import dataclasses
import math
from typing import Optional

import tensorflow as tf
import tf_keras


KINDS = ("exponential", "cosine", "poly")


@dataclasses.dataclass
class ScheduleConfig:
    """kind: 'exponential' (the paper's), 'cosine' (the OD API's cosine_decay_learning_rate:
    0.5 * base * (1 + cos(pi * t / total)) after warm-up) or 'poly' (DeepLab's:
    base * (1 - t / total) ** poly_power). Warm-up is linear from `warmup_start` x the rate
    where it ends (the OD API's warmup_learning_rate / learning_rate_base; 0 for the paper);
    `warmup_steps` overrides `warmup_epochs` (the OD API and DeepLab count steps)."""
    base_learning_rate: float = 0.1    # at `base_batch_size`
    base_batch_size: int = 4096
    warmup_epochs: float = 5.0
    decay_epochs: float = 3.0
    decay_rate: float = 0.99
    staircase: bool = True
    kind: str = "exponential"
    warmup_steps: Optional[int] = None
    warmup_start: float = 0.0
    poly_power: float = 0.9

    def validate(self):
        if self.kind not in KINDS:
            raise ValueError(f"schedule must be one of {KINDS}, got {self.kind!r}")
        if not 0.0 <= self.warmup_start <= 1.0:
            raise ValueError(f"warmup_start must be in [0, 1], got {self.warmup_start}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.poly_power <= 0:
            raise ValueError(f"poly_power must be > 0, got {self.poly_power}")


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


@tf_keras.saving.register_keras_serializable(package="mobilenet_v3")
class WarmupDecayToZero(tf_keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from `warmup_start` x `learning_rate` over `warmup_steps` w, then to 0:
    cosine as the OD API's cosine_decay_with_warmup, 0.5 * rate * (1 + cos(pi * (t - w) /
    (total - w))); poly as DeepLab's get_model_learning_rate (polynomial_decay of t - w over
    total - w), rate * (1 - (t - w) / (total - w)) ** power. DeepLab holds its slow-start
    rate constant (slow_start_burnin_type 'none'; its recipes use no slow start); ours ramps."""

    def __init__(self, kind: str, learning_rate: float, total_steps: int, warmup_steps: int,
                 warmup_start: float = 0.0, poly_power: float = 0.9):
        super().__init__()
        self.kind, self.learning_rate = str(kind), float(learning_rate)
        self.total_steps, self.warmup_steps = max(1, int(total_steps)), int(warmup_steps)
        self.warmup_start, self.poly_power = float(warmup_start), float(poly_power)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        after = tf.maximum(step - float(self.warmup_steps), 0.0)
        span = float(max(1, self.total_steps - self.warmup_steps))
        progress = tf.clip_by_value(after / span, 0.0, 1.0)
        if self.kind == "cosine":
            decayed = 0.5 * self.learning_rate * (1.0 + tf.cos(math.pi * progress))
        else:
            decayed = self.learning_rate * tf.pow(1.0 - progress, self.poly_power)
        if self.warmup_steps <= 0:
            return decayed
        start = self.warmup_start * self.learning_rate
        warm = start + (self.learning_rate - start) * step / float(self.warmup_steps)
        return tf.where(step < self.warmup_steps, warm, decayed)

    def get_config(self):
        return {"kind": self.kind, "learning_rate": self.learning_rate,
                "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
                "warmup_start": self.warmup_start, "poly_power": self.poly_power}


def paper_schedule(config: ScheduleConfig, global_batch_size: int, steps_per_epoch: int,
                   total_steps: Optional[int] = None):
    """The schedule for a run with this global batch, epoch length and length (`total_steps`:
    needed by the cosine and poly schedules)."""
    if global_batch_size < 1 or steps_per_epoch < 1:
        raise ValueError("global_batch_size and steps_per_epoch must be >= 1, got "
                         f"{global_batch_size} and {steps_per_epoch}")
    config.validate()
    warmup = config.warmup_steps if config.warmup_steps is not None else round(
        config.warmup_epochs * steps_per_epoch)
    rate = scaled_learning_rate(config, global_batch_size)
    if config.kind != "exponential":
        if not total_steps:
            raise ValueError(f"the {config.kind} schedule needs the run's total steps")
        return WarmupDecayToZero(config.kind, rate, total_steps, warmup, config.warmup_start,
                                 config.poly_power)
    if config.warmup_start:
        raise ValueError("warmup_start is for the cosine and poly schedules (the paper's "
                         "warm-up starts at 0)")
    return WarmupExponentialDecay(
        initial_learning_rate=rate,
        decay_steps=max(1, round(config.decay_epochs * steps_per_epoch)),
        decay_rate=config.decay_rate, warmup_steps=warmup, staircase=config.staircase)
