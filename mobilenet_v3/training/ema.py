"""The weight EMA: TF-Slim's decay warm-up, reading the averages, swapping them in.

The averages themselves are tf_keras' built-in ones (optimizer variables, `use_ema=True`).
"""

from typing import List, Optional

import tensorflow as tf


def ema_decay(ema_momentum: float, update_index, warmup: bool = True):
    """The decay applied at update `update_index` (0-based)."""
    if not warmup:
        return tf.constant(ema_momentum, tf.float32)
    t = tf.cast(update_index, tf.float32)
    return tf.minimum(tf.constant(ema_momentum, tf.float32), (1.0 + t) / (10.0 + t))


def inner_optimizer(optimizer):
    """The optimizer under a LossScaleOptimizer (mixed float16), or itself."""
    return getattr(optimizer, "inner_optimizer", optimizer)


def ema_values(optimizer, variables) -> Optional[List[tf.Tensor]]:
    """The EMA of each of `variables` (None when the optimizer keeps no EMA or is unbuilt).

    Reads the built-in averages that tf_keras keeps per variable (`use_ema=True`).
    """
    opt = inner_optimizer(optimizer)
    averages = getattr(opt, "_model_variables_moving_average", None)
    if not opt.use_ema or not averages:
        return None
    return [averages[opt._index_dict[opt._var_key(v)]] for v in variables]


def averaged_variables(model, optimizer) -> List[tf.Variable]:
    """The model's variables that the optimizer keeps slots and an EMA for.

    The optimizer is built on every variable that is ever trained, so this includes a
    frozen backbone (trainable=False for now), which `model.trainable_variables` would not.
    """
    opt = inner_optimizer(optimizer)
    index = getattr(opt, "_index_dict", None)
    if not index:
        return list(model.trainable_variables)
    return [v for v in model.variables if opt._var_key(v) in index]


def reset_averages(model, optimizer) -> bool:
    """Sets the EMA to the current weights (after importing pretrained weights)."""
    variables = averaged_variables(model, optimizer)
    averages = ema_values(optimizer, variables)
    if averages is None:
        return False
    for v, a in zip(variables, averages):
        a.assign(v)
    return True


def assign_ema(model, optimizer) -> bool:
    """Copies the EMA into the model's weights for good; False when there is no EMA."""
    variables = averaged_variables(model, optimizer)
    averages = ema_values(optimizer, variables)
    if averages is None:
        return False
    for v, a in zip(variables, averages):
        v.assign(a)
    return True


class ema_weights:
    """Context: the model holds the EMA weights inside, its live weights again after."""

    def __init__(self, model, optimizer, enabled: bool = True):
        self.model, self.optimizer = model, optimizer
        self.enabled = enabled
        self._backup = None

    def __enter__(self):
        if self.enabled:
            self._variables = averaged_variables(self.model, self.optimizer)
            backup = [tf.identity(v) for v in self._variables]
            if assign_ema(self.model, self.optimizer):
                self._backup = backup
        return self.model

    def __exit__(self, *exc):
        if self._backup is not None:
            for v, b in zip(self._variables, self._backup):
                v.assign(b)
            self._backup = None
