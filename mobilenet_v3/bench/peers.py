"""The peer every benchmark compares against: keras.applications' MobileNetV3, built alike.

Random weights, no in-graph preprocessing: the same inputs and graph boundaries as ours.
"""

NAMES = ("large", "small")


def keras_mobilenet_v3(name: str, input_shape, alpha: float = 1.0, **kwargs):
    """keras.applications' MobileNetV3 with random weights and no in-graph preprocessing."""
    if name not in NAMES:
        raise ValueError(f"unknown MobileNetV3 {name!r}; choose from {NAMES}")
    import tf_keras
    builder = {"large": tf_keras.applications.MobileNetV3Large,
               "small": tf_keras.applications.MobileNetV3Small}[name]
    return builder(input_shape=tuple(input_shape), alpha=alpha, weights=None,
                   include_preprocessing=False, **kwargs)
