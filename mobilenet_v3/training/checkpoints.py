"""Training checkpoints: what is saved (model, optimizer slots and EMA, dropout RNG) and where.

The chief saves into the run folder; other workers must save too (the save is collective) but
into a private scratch folder that is removed at the end.
"""

from typing import Callable, Optional

import tensorflow as tf

from mobilenet_v3.training import distribution
from mobilenet_v3.training.build_settings import random_generators
from mobilenet_v3.training.run_dir import RunDir


class Checkpoints:
    def __init__(self, model, optimizer, run_dir: RunDir, strategy, keep: int):
        self.optimizer, self.run_dir = optimizer, run_dir
        self.checkpoint = tf.train.Checkpoint(
            model=model, optimizer=optimizer,
            **{f"rng_{name}": g for name, g in random_generators(model).items()})
        self.scratch: Optional[str] = None
        folder = run_dir.checkpoints
        if not distribution.is_chief(strategy):
            self.scratch = folder = run_dir.worker_scratch(distribution.task_suffix(strategy))
        self.manager = tf.train.CheckpointManager(self.checkpoint, folder, max_to_keep=keep)

    @property
    def step(self) -> int:
        return int(self.optimizer.iterations.numpy())

    def restore(self, log: Callable[[str], None] = print) -> int:
        """Restores the run folder's newest good checkpoint, if any; returns the step."""
        self.run_dir.restore_newest_good(
            lambda path: self.checkpoint.restore(path).assert_existing_objects_matched(), log)
        return self.step

    def save(self):
        """Saves at the current step unless that step is saved already."""
        latest = self.manager.latest_checkpoint
        if not (latest and latest.endswith(f"-{self.step}")):
            self.manager.save(checkpoint_number=self.step)

    def remove_scratch(self):
        if self.scratch:
            self.run_dir.remove(self.scratch)
