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
import sys
import time
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


# Settings a resume must keep (record key -> the train.py flag that sets it).
RESUME_SETTINGS = {"global_batch_size": "batch_size", "seed": "seed",
                   "label_smoothing": "label_smoothing",
                   "freeze_backbone_epochs": "freeze_backbone_epochs",
                   "schedule.base_learning_rate": "base_learning_rate",
                   "schedule.base_batch_size": "base_batch_size",
                   "schedule.warmup_epochs": "warmup_epochs",
                   "schedule.decay_epochs": "decay_epochs", "schedule.decay_rate": "decay_rate",
                   "schedule.kind": "schedule", "schedule.warmup_steps": "warmup_steps",
                   "schedule.warmup_start": "warmup_start", "schedule.poly_power": "poly_power",
                   "optimizer.name": "optimizer",
                   "optimizer.momentum": "momentum", "optimizer.rho": "rmsprop_rho",
                   "optimizer.epsilon": "rmsprop_epsilon", "optimizer.use_ema": "ema",
                   "optimizer.ema_momentum": "ema_momentum",
                   "optimizer.ema_warmup": "ema_warmup",
                   "data.source": "dataset", "data.image_size": "resolution",
                   "data.min_crop_area": "min_crop_area", "data.num_classes": "num_classes",
                   "data.synthetic_train_examples": "synthetic_train_examples",
                   "data.held_out_fraction": "held_out_fraction",
                   "data.class_list": "class_list",
                   "data.imagenet_classes": "imagenet_classes"}
# settings newer than some run folders: a record without them ran with these
RESUME_DEFAULTS = {"schedule.kind": "exponential", "schedule.warmup_start": 0.0,
                   "schedule.poly_power": 0.9, "optimizer.name": "rmsprop"}


def _resume_settings(record: Dict) -> Dict:
    values = {}
    for key, flag in RESUME_SETTINGS.items():
        value = record
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        values[f"--{flag}"] = RESUME_DEFAULTS.get(key) if value is None else value
    return values


def _differences(old: Dict, new: Dict) -> Dict:
    return {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k)}


def _describe(diff: Dict) -> str:
    return ", ".join(f"{k}: {a!r} then, {b!r} now" for k, (a, b) in diff.items())


def _warn(text: str):
    print(f"warning: {text}", file=sys.stderr, flush=True)


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

    def prepare(self):
        """Creates the folder; a clear error when it is a file or cannot be written."""
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise RunFolderError(f"--model_dir {self.path!r} is a file, not a folder")
        try:
            os.makedirs(self.path, exist_ok=True)
            probe = os.path.join(self.path, f".write-test-{os.getpid()}")
            with open(probe, "w"):
                pass
            os.remove(probe)
        except OSError as e:
            raise RunFolderError(f"cannot write to --model_dir {self.path!r}: "
                                 f"{e.strerror or e}") from None

    def check_and_record(self, record: Dict, write: bool, allow_changes: bool = False):
        """Refuses a resume of another model, or (unless `allow_changes`) with other settings
        that decide the examples, the schedule or the optimizer; writes `record` (the chief).
        An overridden record is kept as train_config.<time>.json."""
        record = json.loads(json.dumps(record))    # as the file holds it (tuples: lists)
        previous = self.read_record()
        if previous is not None:
            model_diff = _differences(previous.get("trained_model", {}),
                                      record["trained_model"])
            if model_diff:
                raise ValueError(f"{self.path!r} holds a run of a different model "
                                 f"({_describe(model_diff)}); resume with the same model "
                                 "settings or use a new --model_dir")
            diff = _differences(_resume_settings(previous), _resume_settings(record))
            if diff and not allow_changes:
                raise ValueError(
                    f"{self.path!r} was started with other settings ({_describe(diff)}); a "
                    "resumed run must keep them to continue at the exact next example and on "
                    "the same schedule. Pass --allow_changed_settings to resume anyway, or "
                    "use a new --model_dir")
            if diff and write:
                stamp = time.strftime("%Y%m%d-%H%M%S")
                files.atomic_write_json(os.path.join(self.path, f"train_config.{stamp}.json"),
                                        previous)
        if write:
            self.prepare()
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

    def checkpoint_paths(self) -> List[str]:
        """The kept checkpoints, newest first."""
        state = tf.train.get_checkpoint_state(self.checkpoints)
        if state is None:
            return []
        paths = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
        return [p if os.path.isabs(p) else os.path.join(self.checkpoints, p)
                for p in reversed(paths)]

    def restore_newest_good(self, restore: Callable[[str], None],
                            log: Callable[[str], None]) -> Optional[str]:
        """Restores the newest checkpoint that reads whole; a damaged one (truncated by a
        kill or a full disk) is named and the previous one, kept for this reason, is used."""
        damaged = []
        for path in self.checkpoint_paths():
            try:
                restore(path)
            except (tf.errors.OpError, IndexError, ValueError, AssertionError) as e:
                damaged.append(path)
                log(f"checkpoint {path} is damaged ({type(e).__name__}: "
                    f"{str(e).splitlines()[0][:200]}); trying the one before it")
                continue
            return path
        if damaged:
            raise RunFolderError(f"every checkpoint in {self.checkpoints!r} is damaged "
                                 f"({', '.join(os.path.basename(p) for p in damaged)}); "
                                 "remove them to start over")
        return None

    def clean_leftovers(self):
        """Removes what a killed run left behind: final.tmp-*/final.old-* folders, TF's
        *_temp checkpoint folders and .tmp-* files of interrupted atomic writes."""
        for folder in (self.path, self.checkpoints):
            if not os.path.isdir(folder):
                continue
            for name in os.listdir(folder):
                path = os.path.join(folder, name)
                stale = (name.startswith(("final.tmp-", "final.old-", ".tmp-"))
                         or (folder == self.checkpoints and "_temp" in name))
                if not stale:
                    continue
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.remove(path)

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

    def load_checkpoint_ema(self, log: Callable[[str], None] = None) -> TrainedModel:
        """The newest good checkpoint's EMA weights (its live weights when it kept no EMA)."""
        if self.read_record() is None or not self.latest_checkpoint():
            raise RunFolderError(f"{self.path!r} is not a train.py model_dir: it has neither "
                                 f"final/{MODEL_FILE} nor {CONFIG_FILE} with checkpoints/")
        config = self.model_config()
        model = build_model(config)
        opt = optimizer_lib.restorable_optimizer(self.optimizer_config(), model)
        checkpoint = tf.train.Checkpoint(model=model, optimizer=opt)

        def restore(path):
            checkpoint.restore(path).expect_partial().assert_existing_objects_matched()
        self.restore_newest_good(restore, log or _warn)
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
    labels = read_labels(folder) or [f"class_{i}" for i in range(config.classes)]
    return TrainedModel(model, config, labels)


def read_labels(folder: str) -> List[str]:
    """The non-empty lines of <folder>/labels.txt ([] without one)."""
    path = os.path.join(folder, LABELS_FILE)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line for line in f.read().split("\n") if line]


def load_trained(path: str) -> TrainedModel:
    """A train.py model_dir (final/ or, failing that, the newest checkpoint's EMA weights)
    or a saved .keras/.h5 model with model_config.json beside it."""
    if not os.path.exists(path):
        raise RunFolderError(f"no trained model at {path!r} (expected a train.py --model_dir "
                             "or a .keras file)")
    if not os.path.isdir(path):
        return load_saved_model(path)
    if os.path.exists(os.path.join(path, MODEL_FILE)):    # a convert --output / final/ folder
        return load_saved_model(os.path.join(path, MODEL_FILE))
    run = RunDir(path)
    final = os.path.join(run.final, MODEL_FILE)
    if os.path.exists(final):
        trained = load_saved_model(final)
        trained.data = run.data_config()
        return trained
    return run.load_checkpoint_ema()


def _model_folder(path: str) -> str:
    """The folder holding model.keras + model_config.json for a run folder or a .keras."""
    if os.path.isdir(path):
        final = os.path.join(path, "final")
        return final if os.path.isdir(final) else path
    return os.path.dirname(os.path.abspath(path))


def model_record(path: str) -> Dict:
    """The model_config.json of a trained model (a run folder, its final/, or a .keras file);
    a run without final/ gives its train_config.json's model record."""
    if not os.path.exists(path):
        raise RunFolderError(f"no trained model at {path!r} (expected a train.py --model_dir "
                             "or a .keras file)")
    config_path = os.path.join(_model_folder(path), MODEL_CONFIG_FILE)
    try:
        if os.path.exists(config_path):
            with open(config_path) as f:
                return json.load(f)
        record = RunDir(path).read_record() if os.path.isdir(path) else None
    except (OSError, ValueError) as e:
        raise RunFolderError(f"{config_path}: unreadable ({e})") from None
    if record is None or "trained_model" not in record:
        raise RunFolderError(f"{path!r} is not a trained model: no {MODEL_CONFIG_FILE} and no "
                             f"{CONFIG_FILE} (pass a train.py --model_dir or a .keras file "
                             f"with {MODEL_CONFIG_FILE} beside it)")
    return record["trained_model"]


def recorded_config(path: str) -> ModelConfig:
    """The ModelConfig recorded at `path`: a model_config.json file, a run folder or a
    trained model (train.py --arch, nas.py --seed_arch take any of them)."""
    try:
        if os.path.isfile(path) and path.endswith(".json"):
            with open(path) as f:
                record = json.load(f)
        else:
            record = model_record(path)
        return ModelConfig.from_record(record)
    except (OSError, ValueError) as e:
        raise RunFolderError(f"{path}: not a run folder or model_config.json ({e})") from None


def head_type(path: str) -> Optional[str]:
    """What task a trained model is: the head_type its record names (None: a classifier)."""
    return model_record(path).get("head_type")


def load_head_model(path: str, config_from_flat: Callable[[Dict], object],
                    data_from_record: Callable[[Dict], object]) -> TrainedModel:
    """A trained detector / segmenter: final/model.keras (or a .keras file) with its config
    (`config_from_flat(model_config.json)`), labels and the run's data record."""
    import mobilenet_v3.modeling  # noqa: F401  (registers the custom layers)
    folder = _model_folder(path)
    model_path = path if not os.path.isdir(path) else os.path.join(folder, MODEL_FILE)
    if not os.path.isfile(model_path):
        raise RunFolderError(f"{path!r} has no final/{MODEL_FILE}: export and evaluation of "
                             "detectors and segmenters need a finished run")
    config = config_from_flat(model_record(path))
    try:
        model = tf_keras.models.load_model(model_path, compile=False)
    except Exception as e:
        raise RunFolderError(f"cannot load {model_path!r} as a Keras model: {e}") from None
    labels = read_labels(folder)
    run_path = os.path.dirname(folder) if os.path.basename(folder) == "final" else None
    record = RunDir(run_path).read_record() if run_path else None
    data = data_from_record((record or {}).get("data", {}))
    return TrainedModel(model, config, labels, data)
