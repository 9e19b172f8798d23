"""tf.distribute strategies by name (default | mirrored | multi_worker | tpu) and precision.

Also which process is the chief, the one that writes checkpoints, summaries and final/.
"""

import json
import os
from typing import Optional

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def make_strategy(name: str, tpu: Optional[str] = None) -> tf.distribute.Strategy:
    """The strategy; multi_worker reads the cluster from TF_CONFIG, tpu from `tpu`."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError("strategy multi_worker needs TF_CONFIG describing the cluster, "
                             'e.g. {"cluster": {"worker": ["host1:port", "host2:port"]}, '
                             '"task": {"type": "worker", "index": 0}}')
        try:
            json.loads(os.environ["TF_CONFIG"])
        except ValueError as e:
            raise ValueError(f"TF_CONFIG is not valid JSON: {e}") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"unknown strategy {name!r}; choose from {STRATEGIES}")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the one process that writes checkpoints, summaries and the final model."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type in (None, "chief") or (task_type == "worker" and task_id == 0
                                            and "chief" not in resolver.cluster_spec().jobs)


def task_suffix(strategy: tf.distribute.Strategy) -> str:
    """A per-worker name for the throw-away directories that non-chief workers write to."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return "chief"
    return f"{resolver.task_type}_{resolver.task_id}"


def mixed_precision_policy(name: str, strategy_name: str) -> str:
    """'float32', 'mixed_float16' (GPU) or 'mixed_bfloat16' (TPU) for --precision."""
    if name == "auto":
        return "mixed_bfloat16" if strategy_name == "tpu" else "float32"
    if name not in ("float32", "mixed_float16", "mixed_bfloat16"):
        raise ValueError(f"unknown precision {name!r}; choose float32, mixed_float16, "
                         "mixed_bfloat16 or auto")
    return name
