"""Global Keras settings that layers capture when they are built, and the dropout RNG state.

Mixed precision is a build-time policy; dropout draws from tf.random.Generators whose state
is checkpointed, so a resumed run draws the same masks.
"""

import contextlib
from typing import Dict

import tensorflow as tf
import tf_keras


@contextlib.contextmanager
def model_building_settings(policy: str):
    """Builds inside use `policy` and Generator-backed dropout; both restored afterwards."""
    previous_policy = tf_keras.mixed_precision.global_policy()
    previous_rng = tf_keras.backend.experimental.is_tf_random_generator_enabled()
    tf_keras.mixed_precision.set_global_policy(policy)
    tf_keras.backend.experimental.enable_tf_random_generator()
    try:
        yield
    finally:
        tf_keras.mixed_precision.set_global_policy(previous_policy)
        if not previous_rng:
            tf_keras.backend.experimental.disable_tf_random_generator()


def random_generators(model) -> Dict[str, tf.random.Generator]:
    """The dropout layers' tf.random.Generator states, checkpointed for exact resumes."""
    generators = {}
    for layer in model.layers:
        rng = getattr(layer, "_random_generator", None)
        generator = getattr(rng, "_generator", None)
        if isinstance(generator, tf.random.Generator):
            generators[layer.name] = generator
    return generators
