"""The run folder (train.py's --model_dir): the one module that reads and writes its layout.

  train_config.json   what was run (a resume must match its model)
  checkpoints/        tf.train checkpoints: model, optimizer slots, EMA, step, dropout RNG
  train/, eval/       TensorBoard summaries
  final/              model.keras (EMA weights), model_config.json, labels.txt, eval.json
  workers/<task>/     non-chief workers' throw-away checkpoints (collectives need them)
"""

import dataclasses
import json
import os
import shutil
from typing import Callable, Dict, List, Optional

import tensorflow as tf
import tf_keras

from mobilenet_v3 import files
from mobilenet_v3.data import pipeline
from mobilenet_v3.modeling.builders import build_model
from mobilenet_v3.modeling.config import ModelConfig
from mobilenet_v3.training import ema, optimizer as optimizer_lib

CONFIG_FILE = "train_config.json"
MODEL_FILE = "model.keras"
MODEL_CONFIG_FILE = "model_config.json"
LABELS_FILE = "labels.txt"
EVAL_FILE = "eval.json"


class RunFolderError(ValueError):
    """A path that is not (or not a usable) run folder or saved model: a clear message."""


@dataclasses.dataclass
class TrainedModel:
    """A trained network plus what describes it (from a run folder or a .keras file)."""
    model: tf_keras.Model
    config: ModelConfig
    labels: List[str]
    data: Optional[pipeline.DataConfig] = None     # the training data, if known


class RunDir:
    """Paths and records of one run folder."""

    def __init__(self, path: str):
        self.path = path
        self.config_path = os.path.join(path, CONFIG_FILE)
        self.checkpoints = os.path.join(path, "checkpoints")
        self.final = os.path.join(path, "final")

    def summaries(self, name: str) -> str:
        return os.path.join(self.path, name)

    def worker_scratch(self, task: str) -> str:
        return os.path.join(self.path, "workers", task)

    # ---- the run record ---------------------------------------------------------------
    def read_record(self) -> Optional[Dict]:
        if not os.path.exists(self.config_path):
            return None
        with open(self.config_path) as f:
            return json.load(f)

    def check_and_record(self, record: Dict, write: bool):
        """Refuses a resume of another model; writes `record` (the chief only)."""
        previous = self.read_record()
        if previous is not None and previous.get("trained_model") != record["trained_model"]:
            raise ValueError(
                f"{self.path!r} holds a run of a different model "
                f"({previous.get('trained_model')}); resume with the same model settings "
                "or use a new --model_dir")
        if write:
            os.makedirs(self.path, exist_ok=True)
            files.atomic_write_json(self.config_path, record)

    def model_config(self) -> ModelConfig:
        return ModelConfig.from_record(self._require_record()["trained_model"])

    def data_config(self) -> Optional[pipeline.DataConfig]:
        record = self.read_record()
        if record is None:
            return None
        known = {f.name for f in dataclasses.fields(pipeline.DataConfig)}
        return pipeline.DataConfig(**{k: v for k, v in record.get("data", {}).items()
                                      if k in known})

    def optimizer_config(self) -> optimizer_lib.OptimizerConfig:
        return optimizer_lib.OptimizerConfig(**self._require_record().get("optimizer", {}))

    def _require_record(self) -> Dict:
        record = self.read_record()
        if record is None:
            raise RunFolderError(f"{self.path!r} has no {CONFIG_FILE}")
        return record

    # ---- checkpoints and the final model ------------------------------------------------
    def latest_checkpoint(self) -> Optional[str]:
        return tf.train.latest_checkpoint(self.checkpoints)

    def write_final(self, save_model: Callable[[str], None], model_config: ModelConfig,
                    labels, result: Dict, target: Optional[str] = None) -> str:
        """Writes final/ (or `target`) as one atomic folder swap; returns its path."""
        target = target or self.final

        def fill(folder):
            save_model(os.path.join(folder, MODEL_FILE))
            with open(os.path.join(folder, MODEL_CONFIG_FILE), "w") as f:
                json.dump(model_config.to_flat(), f, indent=2)
            with open(os.path.join(folder, LABELS_FILE), "w") as f:
                f.write("\n".join(labels or ()) + "\n")
            with open(os.path.join(folder, EVAL_FILE), "w") as f:
                json.dump(result, f, indent=2)
        files.atomic_write_dir(target, fill)
        return target

    def remove(self, path: str):
        shutil.rmtree(path, ignore_errors=True)

    def load_checkpoint_ema(self) -> TrainedModel:
        """The newest checkpoint's EMA weights (its live weights when it kept no EMA)."""
        latest = self.latest_checkpoint()
        if self.read_record() is None or not latest:
            raise RunFolderError(f"{self.path!r} is not a train.py model_dir: it has neither "
                                 f"final/{MODEL_FILE} nor {CONFIG_FILE} with checkpoints/")
        config = self.model_config()
        model = build_model(config)
        opt = optimizer_lib.restorable_optimizer(self.optimizer_config(), model)
        try:
            tf.train.Checkpoint(model=model, optimizer=opt).restore(latest).expect_partial() \
                .assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as e:
            raise RunFolderError(f"checkpoint {latest!r} does not match the model in "
                                 f"{CONFIG_FILE}: {e}") from None
        ema.assign_ema(model, opt)
        return TrainedModel(model, config, [f"class_{i}" for i in range(config.classes)],
                            self.data_config())


def load_saved_model(path: str) -> TrainedModel:
    """A saved .keras/.h5 model with model_config.json (and labels.txt) beside it."""
    folder = os.path.dirname(os.path.abspath(path))
    config_path = os.path.join(folder, MODEL_CONFIG_FILE)
    if not os.path.exists(config_path):
        raise RunFolderError(f"{path!r} has no {MODEL_CONFIG_FILE} beside it; export needs "
                             "the ModelConfig it was built from (train.py writes one)")
    with open(config_path) as f:
        config = ModelConfig.from_record(json.load(f))
    try:
        model = tf_keras.models.load_model(path, compile=False)
    except Exception as e:
        raise RunFolderError(f"cannot load {path!r} as a Keras model: {e}") from None
    labels_path = os.path.join(folder, LABELS_FILE)
    labels = open(labels_path).read().split("\n") if os.path.exists(labels_path) else []
    labels = [l for l in labels if l] or [f"class_{i}" for i in range(config.classes)]
    return TrainedModel(model, config, labels)


def load_trained(path: str) -> TrainedModel:
    """A train.py model_dir (final/ or, failing that, the newest checkpoint's EMA weights)
    or a saved .keras/.h5 model with model_config.json beside it."""
    if not os.path.exists(path):
        raise RunFolderError(f"no trained model at {path!r} (expected a train.py --model_dir "
                             "or a .keras file)")
    if not os.path.isdir(path):
        return load_saved_model(path)
    run = RunDir(path)
    final = os.path.join(run.final, MODEL_FILE)
    if os.path.exists(final):
        trained = load_saved_model(final)
        trained.data = run.data_config()
        return trained
    return run.load_checkpoint_ema()
