"""The model variables of a TF1 training checkpoint (OD API, DeepLab): EMA shadows preferred,
optimizer slots and global_step left out."""

from typing import Dict, Sequence, Set

import numpy as np

from mobilenet_v3.weights.errors import CorruptWeightsError, NotMobileNetV3Error

EMA_SUFFIX = "/ExponentialMovingAverage"
OPTIMIZER_SLOTS = ("/Momentum", "/RMSProp", "/RMSProp_1", "/Adam", "/Adam_1")


def variable_names(prefix: str) -> Set[str]:
    """Every variable name in the checkpoint's index (no values are read); empty if unreadable."""
    import tensorflow as tf
    try:
        return set(tf.train.load_checkpoint(prefix).get_variable_to_shape_map())
    except (tf.errors.OpError, ValueError):
        return set()


def is_model_variable(name: str, scopes: Sequence[str]) -> bool:
    return name.startswith(tuple(scopes)) and not name.endswith(OPTIMIZER_SLOTS) \
        and not name.endswith(EMA_SUFFIX)


def read(prefix: str, scopes: Sequence[str], origin: str = "") -> Dict[str, np.ndarray]:
    """{variable name: float32 array} of the variables under `scopes`, in name order."""
    import tensorflow as tf
    origin = origin or prefix
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as e:
        raise CorruptWeightsError(f"{origin!r} is not a readable TF checkpoint: "
                                  f"{str(e).splitlines()[0]}") from None
    names = set(reader.get_variable_to_shape_map())
    out = {}
    for name in sorted(n for n in names if is_model_variable(n, scopes)):
        key = name + EMA_SUFFIX if name + EMA_SUFFIX in names else name
        try:
            out[name] = np.asarray(reader.get_tensor(key), np.float32)
        except tf.errors.OpError as e:
            raise CorruptWeightsError(f"{origin!r}: cannot read {key!r} (no or truncated "
                                      f".data file?): {str(e).splitlines()[0]}") from None
    if not out:
        raise NotMobileNetV3Error(f"{origin!r} has no variables under {', '.join(scopes)}")
    return out
