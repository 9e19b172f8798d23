"""Everything that defines one training run, as plain data (train.py maps flags onto it).

Sub-configs: the model (modeling.config), the data (any task's), the schedule and the optimizer.
"""

import dataclasses
import json
from typing import Dict, Optional, Protocol

from mobilenet_v3.data import pipeline
from mobilenet_v3.modeling.config import ModelConfig
from mobilenet_v3.training import distribution, optimizer as optimizer_lib, schedule as schedule_lib


class DataSettings(Protocol):
    """What training needs of a task's data config: the classifier's pipeline.DataConfig,
    detection's DetectionDataConfig, segmentation's SegmentationDataConfig, or another task's.
    A dataclass (train_config.json records its fields) that checks itself; the task reads the
    rest."""
    source: str
    image_size: int
    seed: int

    def validate(self) -> None:
        ...


@dataclasses.dataclass
class TrainConfig:
    model_dir: str
    model: ModelConfig = ModelConfig()
    data: DataSettings = dataclasses.field(default_factory=pipeline.DataConfig)
    schedule: schedule_lib.ScheduleConfig = dataclasses.field(
        default_factory=schedule_lib.ScheduleConfig)
    optimizer: optimizer_lib.OptimizerConfig = dataclasses.field(
        default_factory=optimizer_lib.OptimizerConfig)
    global_batch_size: int = 4096
    epochs: float = 350.0
    train_steps: Optional[int] = None       # overrides epochs
    label_smoothing: float = 0.1
    eval_batch_size: Optional[int] = None   # default: the training batch
    eval_every_steps: int = 0               # 0: only at the end
    checkpoint_every_steps: int = 1000
    keep_checkpoints: int = 5
    log_every_steps: int = 100
    steps_per_loop: int = 1                 # steps per tf.function call (raise on TPU)
    strategy: str = "default"
    tpu: Optional[str] = None
    precision: str = "auto"                 # float32 | mixed_float16 | mixed_bfloat16 | auto
    seed: int = 0
    deterministic: bool = False             # TF op determinism: bit-identical reruns
    allow_changed_settings: bool = False    # resume although batch/seed/schedule/... differ
    init_weights: Optional[str] = None      # pretrained weights for a run's step 0 (transfer.py)
    freeze_backbone_epochs: float = 0.0     # backbone frozen (BN in inference mode) until then

    def validate(self):
        checks = {
            "global_batch_size": self.global_batch_size >= 1,
            "epochs": self.epochs > 0,
            "train_steps": self.train_steps is None or self.train_steps >= 1,
            "label_smoothing": 0.0 <= self.label_smoothing < 1.0,
            "eval_batch_size": self.eval_batch_size is None or self.eval_batch_size >= 1,
            "eval_every_steps": self.eval_every_steps >= 0,
            "checkpoint_every_steps": self.checkpoint_every_steps >= 1,
            "keep_checkpoints": self.keep_checkpoints >= 1,
            "log_every_steps": self.log_every_steps >= 1,
            "steps_per_loop": self.steps_per_loop >= 1,
            "freeze_backbone_epochs": self.freeze_backbone_epochs >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError("invalid training settings: " + ", ".join(
                f"{name}={getattr(self, name)!r}" for name in bad))
        if self.strategy not in distribution.STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; choose from "
                             f"{distribution.STRATEGIES}")
        distribution.mixed_precision_policy(self.precision, self.strategy)
        if self.freeze_backbone_epochs > 0 and not self.init_weights:
            raise ValueError("freeze_backbone_epochs needs init_weights: a randomly "
                             "initialised backbone is not worth freezing")
        self.data.validate()
        self.optimizer.validate()
        self.schedule.validate()

    def to_record(self) -> Dict:
        """JSON-able, with the model flat: the layout train_config.json has always had."""
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        record["model"] = self.model.to_flat()
        for name in ("data", "schedule", "optimizer"):
            record[name] = dataclasses.asdict(record[name])
        return json.loads(json.dumps(record, default=str))
