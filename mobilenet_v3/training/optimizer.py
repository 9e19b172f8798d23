"""The paper's optimizer: RMSProp with TF's epsilon-inside-sqrt, plus a weight EMA.

tf_keras' RMSprop already puts epsilon inside the square root (TF convention, PAPER.md) and
its built-in EMA keeps the averages as optimizer variables, so they are checkpointed, mirrored
across replicas and restored with the optimizer. The one thing we add is TF-Slim's EMA warm-up
(`tf.train.ExponentialMovingAverage(decay, num_updates=step)`): the decay used at update t is
min(decay, (1 + t) / (10 + t)), so a short run's average is not dominated by the random
initial weights.
"""

import dataclasses

import tensorflow as tf
import tf_keras

from mobilenet_v3.training.ema import ema_decay, inner_optimizer  # noqa: F401 (re-export)


@dataclasses.dataclass
class OptimizerConfig:
    momentum: float = 0.9
    rho: float = 0.9
    epsilon: float = 0.002
    use_ema: bool = True
    ema_momentum: float = 0.9999
    ema_warmup: bool = True      # Slim's num_updates ramp

    def validate(self):
        for name in ("momentum", "rho", "ema_momentum"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0 + 1e-12:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.epsilon <= 0:
            raise ValueError(f"epsilon must be > 0, got {self.epsilon}")


@tf_keras.saving.register_keras_serializable(package="mobilenet_v3")
class RMSpropEMA(tf_keras.optimizers.RMSprop):
    """tf_keras RMSprop whose built-in EMA uses Slim's warm-up of the decay."""

    def __init__(self, *args, ema_warmup: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.ema_warmup = ema_warmup

    def _update_model_variables_moving_average(self, var_list):
        if not self.use_ema:
            return
        decay = ema_decay(self.ema_momentum, self.iterations, self.ema_warmup)

        def update_average(average, var):
            d = tf.cast(decay, average.dtype)
            average.assign(d * average + (1.0 - d) * var)

        for var in var_list:
            average = self._model_variables_moving_average[self._index_dict[self._var_key(var)]]
            self._distribution_strategy.extended.update(
                average, update_average, args=(var,), group=False)

    def get_config(self):
        config = super().get_config()
        config["ema_warmup"] = self.ema_warmup
        return config


def build_optimizer(config: OptimizerConfig, learning_rate) -> RMSpropEMA:
    config.validate()
    return RMSpropEMA(learning_rate=learning_rate, rho=config.rho, momentum=config.momentum,
                      epsilon=config.epsilon, use_ema=config.use_ema,
                      ema_momentum=config.ema_momentum, ema_warmup=config.ema_warmup)


def restorable_optimizer(config: OptimizerConfig, model: tf_keras.Model) -> RMSpropEMA:
    """An optimizer shaped like training's, to restore a checkpoint's slots and EMA into.

    A schedule stands in for the learning rate, as in training, so the optimizer holds no
    learning-rate variable that the checkpoint would lack.
    """
    placeholder = tf_keras.optimizers.schedules.ExponentialDecay(0.0, 1, 1.0)
    optimizer = build_optimizer(config, placeholder)
    optimizer.build(model.trainable_variables)
    return optimizer
