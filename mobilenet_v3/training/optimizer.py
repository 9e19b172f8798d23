"""The paper's optimizer: RMSProp with TF's epsilon-inside-sqrt, plus a weight EMA; SGD with
momentum for the OD API's and DeepLab's recipes.

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


OPTIMIZERS = ("rmsprop", "momentum")


@dataclasses.dataclass
class OptimizerConfig:
    """name 'rmsprop' (the paper's) or 'momentum' (SGD with momentum: the OD API's
    momentum_optimizer for SSDLite, DeepLab's train.py); rho and epsilon are RMSProp's."""
    name: str = "rmsprop"
    momentum: float = 0.9
    rho: float = 0.9
    epsilon: float = 0.002
    use_ema: bool = True
    ema_momentum: float = 0.9999
    ema_warmup: bool = True      # Slim's num_updates ramp

    def validate(self):
        if self.name not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.name!r}")
        for name in ("momentum", "rho", "ema_momentum"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0 + 1e-12:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.epsilon <= 0:
            raise ValueError(f"epsilon must be > 0, got {self.epsilon}")


class SlimEMA:
    """Mixin: a tf_keras optimizer whose built-in EMA uses Slim's warm-up of the decay."""

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


@tf_keras.saving.register_keras_serializable(package="mobilenet_v3")
class RMSpropEMA(SlimEMA, tf_keras.optimizers.RMSprop):
    """tf_keras RMSprop whose built-in EMA uses Slim's warm-up of the decay."""


@tf_keras.saving.register_keras_serializable(package="mobilenet_v3")
class MomentumEMA(SlimEMA, tf_keras.optimizers.SGD):
    """tf_keras SGD with momentum and Slim's EMA warm-up. Keras accumulates v = m v - lr g;
    TF1's MomentumOptimizer (OD API, DeepLab) a = m a + g, w -= lr a: the same while the rate
    is constant, and within the rate's relative change per step otherwise."""


def build_optimizer(config: OptimizerConfig, learning_rate):
    config.validate()
    ema = dict(use_ema=config.use_ema, ema_momentum=config.ema_momentum,
               ema_warmup=config.ema_warmup)
    if config.name == "momentum":
        return MomentumEMA(learning_rate=learning_rate, momentum=config.momentum, **ema)
    return RMSpropEMA(learning_rate=learning_rate, rho=config.rho, momentum=config.momentum,
                      epsilon=config.epsilon, **ema)


def restorable_optimizer(config: OptimizerConfig, model: tf_keras.Model):
    """An optimizer shaped like training's, to restore a checkpoint's slots and EMA into.

    A schedule stands in for the learning rate, as in training, so the optimizer holds no
    learning-rate variable that the checkpoint would lack.
    """
    placeholder = tf_keras.optimizers.schedules.ExponentialDecay(0.0, 1, 1.0)
    optimizer = build_optimizer(config, placeholder)
    optimizer.build(model.trainable_variables)
    return optimizer
