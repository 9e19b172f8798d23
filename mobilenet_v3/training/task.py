"""A Task says what is learned (Model Garden's base_task): data, model, loss, named metrics.

The loop (loop.py) says how: strategy, optimizer, checkpoints, progress. A new head (detection,
segmentation) is a new Task, not an edit to the loop.
"""

import abc
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf
import tf_keras

from mobilenet_v3.modeling.config import ModelConfig
from mobilenet_v3.training.config import TrainConfig

Metrics = Dict[str, tf.Tensor]
Logs = Dict[str, tf.Tensor]


class Task(abc.ABC):
    """Step metrics are per-replica SUMS keyed by name; the loop adds them up over replicas
    and steps. Training metrics must include "examples" (images/s) and "skipped" (unreadable
    files dropped by the input pipeline); the loop adds "loss" (with regularisation).

    What is not a scalar sum (a confusion matrix, a batch's detections for COCO) an eval step
    returns as logs; the loop brings them to the host after each step for `aggregate_logs`,
    and `reduce_aggregated_logs` turns the pass's state into reported values (Model Garden's
    base_task). The step stays pure TF, so it runs under any strategy, TPU included.
    """

    train_metric_names: Tuple[str, ...] = ("loss", "examples", "skipped")
    eval_metric_names: Tuple[str, ...] = ("examples",)

    def __init__(self, config: TrainConfig):
        self.config = config

    @property
    @abc.abstractmethod
    def num_train_examples(self) -> int:
        """Examples per epoch (sets steps per epoch and the schedule)."""

    @property
    @abc.abstractmethod
    def model_config(self) -> ModelConfig:
        """The network as trained (recorded in the run folder and final/)."""

    @abc.abstractmethod
    def build_model(self) -> tf_keras.Model:
        """Called under the strategy scope and the mixed-precision policy."""

    @abc.abstractmethod
    def train_dataset(self, input_context: tf.distribute.InputContext,
                      start_step: int) -> tf.data.Dataset:
        """Per-replica training batches from `start_step` on (resumes at the exact example)."""

    @abc.abstractmethod
    def eval_dataset(self, input_context: tf.distribute.InputContext) -> tf.data.Dataset:
        """One pass over the held-out data, per-replica batches."""

    @abc.abstractmethod
    def train_loss_and_metrics(self, model, batch) -> Tuple[tf.Tensor, Metrics]:
        """(this replica's share of the global mean loss, step metric sums), under the tape."""

    def eval_metrics(self, model, batch) -> Metrics:
        """Metric sums of one evaluation batch (for a task without logs)."""
        raise NotImplementedError(f"{type(self).__name__} overrides neither eval_metrics nor "
                                  "eval_step")

    def eval_step(self, model, batch) -> Tuple[Metrics, Logs]:
        """(metric sums, logs) of one evaluation batch; logs are tensors of any shape, each
        replica's with the same shape (they are gathered over replicas)."""
        return self.eval_metrics(model, batch), {}

    def aggregate_logs(self, state: Any, logs: Dict[str, np.ndarray]) -> Any:
        """On the host after each eval step: the new state from `state` (None at the start of
        a pass) and the step's logs as numpy arrays, one row per replica (leading axis)."""
        return state

    def reduce_aggregated_logs(self, state: Any) -> Dict[str, float]:
        """The reported values of a pass's aggregated state, added to `eval_values`."""
        return {}

    @abc.abstractmethod
    def train_values(self, sums: Dict[str, float], steps: int) -> Dict[str, float]:
        """Reported training values (e.g. mean loss, top-1) from sums over `steps` steps."""

    @abc.abstractmethod
    def eval_values(self, sums: Dict[str, float]) -> Dict[str, float]:
        """Reported evaluation values from the sums of one pass."""

    @abc.abstractmethod
    def format_values(self, values: Dict[str, float]) -> str:
        """The task's part of a progress line, e.g. "loss 0.5  top1 0.812"."""

    def initializer(self) -> Optional[Callable[[tf_keras.Model], str]]:
        """Pretrained weights for a run that starts at step 0, or None (random init).

        Called before anything is written and only when model_dir has no checkpoint, so it
        should read and check its files now (errors surface early) and return a function
        that loads them into the built model and returns a line for the log. A resumed run
        restores its checkpoint instead and never calls it.
        """
        return None

    def backbone_layers(self, model) -> List[tf_keras.layers.Layer]:
        """The layers `freeze_backbone_epochs` freezes (trainable=False)."""
        return []

    def describe_data(self) -> str:
        return ""

    def labels(self) -> List[str]:
        return []
