"""Training: a Task (what is learned) run by a strategy-generic loop (how), into a run folder.

Entry: `Trainer(TrainConfig(...)).run()`; train.py maps flags onto TrainConfig.
"""

from mobilenet_v3.training.config import TrainConfig
from mobilenet_v3.training.loop import PREEMPTED_EXIT_CODE, Trainer

__all__ = ["PREEMPTED_EXIT_CODE", "TrainConfig", "Trainer"]
