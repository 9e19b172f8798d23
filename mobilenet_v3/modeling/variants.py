"""The same trained weights in another graph form (h-swish form, batch, I/O, head activation).

Variants of one ModelConfig differ in no weight, so a rebuild plus a weight copy is exact.
"""

import tf_keras

from mobilenet_v3.modeling.builders import build_model
from mobilenet_v3.modeling.config import ModelConfig


def rebuild(model: tf_keras.Model, config: ModelConfig) -> tf_keras.Model:
    """`config`'s network carrying `model`'s weights."""
    variant = build_model(config)
    variant.set_weights(model.get_weights())
    return variant
