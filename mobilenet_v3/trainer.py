"""The paper's training recipe as a custom tf.distribute loop.

One `TrainConfig` in, a trained model directory out:
  <model_dir>/train_config.json   what was run (a resume must match its model)
  <model_dir>/checkpoints/        tf.train checkpoints: model, optimizer slots, EMA, step, RNG
  <model_dir>/train, eval/        TensorBoard summaries
  <model_dir>/final/              model.keras (EMA weights), model_config.json, labels.txt,
                                  eval.json: what export_tflite.py reads
A custom loop (not `fit`) because checkpoints must come every N steps, a resumed run must
continue at the exact step and example, SIGTERM must save, and the evaluated weights must be
the EMA ones: all awkward to bolt onto `fit` across strategies.
"""

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import tempfile
import time
from typing import Dict, Optional

import numpy as np
import tensorflow as tf
import tf_keras

from mobilenet_v3 import distribution, optimizer as optimizer_lib, schedule as schedule_lib
from mobilenet_v3.data import pipeline
from mobilenet_v3.model import ModelConfig, build_model

PREEMPTED_EXIT_CODE = 143   # 128 + SIGTERM: "terminated, checkpoint saved, resume me"


@dataclasses.dataclass
class TrainConfig:
    model_dir: str
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: pipeline.DataConfig = dataclasses.field(default_factory=pipeline.DataConfig)
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
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError("invalid training settings: " + ", ".join(
                f"{name}={getattr(self, name)!r}" for name in bad))
        if self.strategy not in distribution.STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; choose from "
                             f"{distribution.STRATEGIES}")
        distribution.mixed_precision_policy(self.precision, self.strategy)
        self.data.validate()
        self.optimizer.validate()

    def to_json(self) -> Dict:
        return dataclasses.asdict(self)


def _atomic_write_text(path: str, text: str):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _trained_model_config(config: TrainConfig, num_classes: int) -> ModelConfig:
    """The training model: logits out (the loss applies softmax), classes from the data."""
    return dataclasses.replace(config.model, classes=num_classes, include_top=True,
                               classifier_activation=None, input_shape=(
                                   config.data.image_size, config.data.image_size, 3),
                               include_preprocessing=False)


@contextlib.contextmanager
def _model_building_settings(policy: str):
    """Global Keras settings that layers capture when built, restored afterwards.

    The dtype policy (mixed precision) and tf.random.Generator-backed dropout, whose state
    is a variable we checkpoint so that a resumed run draws the same masks.
    """
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


def _random_generators(model) -> Dict[str, tf.random.Generator]:
    """The dropout layers' tf.random.Generator states, checkpointed for exact resumes."""
    generators = {}
    for layer in model.layers:
        rng = getattr(layer, "_random_generator", None)
        generator = getattr(rng, "_generator", None)
        if isinstance(generator, tf.random.Generator):
            generators[layer.name] = generator
    return generators


class _SigtermFlag:
    """Turns SIGTERM (preemption) into a flag the loop checks between steps."""

    def __init__(self):
        self.raised = False
        self._previous = None

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:          # not the main thread: leave signals alone
            self._previous = None
        return self

    def _handle(self, signum, frame):
        self.raised = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


class Trainer:
    """Builds everything under the strategy; `run()` trains to the end, resumable."""

    def __init__(self, config: TrainConfig, model_fn=build_model):
        """`model_fn(ModelConfig) -> tf_keras.Model` (benchmarks swap in other networks)."""
        config.validate()
        self.config = config
        tf_keras.utils.set_random_seed(config.seed)
        if config.deterministic:
            tf.config.experimental.enable_op_determinism()
        self.strategy = distribution.make_strategy(config.strategy, config.tpu)
        self.is_chief = distribution.is_chief(self.strategy)
        policy = distribution.mixed_precision_policy(config.precision, config.strategy)
        self.policy = policy

        self.source = pipeline.open_source(config.data)
        self.model_config = _trained_model_config(config, self.source.num_classes)
        self.model_config.validate()
        batch = config.global_batch_size
        self.steps_per_epoch = max(1, self.source.num_train // batch)
        self.total_steps = config.train_steps or max(
            1, int(round(config.epochs * self.steps_per_epoch)))
        self.eval_batch_size = config.eval_batch_size or batch
        self._check_batch_fits_replicas()

        with self.strategy.scope():
            with _model_building_settings(policy):
                self.model = model_fn(self.model_config)
            self.learning_rate = schedule_lib.paper_schedule(config.schedule, batch,
                                                             self.steps_per_epoch)
            opt = optimizer_lib.build_optimizer(config.optimizer, self.learning_rate)
            if policy == "mixed_float16":
                opt = tf_keras.mixed_precision.LossScaleOptimizer(opt)
            self.optimizer = opt
            # Create slots and EMA now, so a restore fills them at once.
            optimizer_lib.inner_optimizer(opt).build(self.model.trainable_variables)
            self.loss_fn = tf_keras.losses.CategoricalCrossentropy(
                from_logits=True, label_smoothing=config.label_smoothing,
                reduction=tf_keras.losses.Reduction.NONE)
        self.checkpoint = tf.train.Checkpoint(
            model=self.model, optimizer=self.optimizer, **{
                f"rng_{name}": g for name, g in _random_generators(self.model).items()})
        self._scratch = None
        ckpt_dir = os.path.join(config.model_dir, "checkpoints")
        if not self.is_chief:   # workers must save too (collectives), but somewhere private
            self._scratch = os.path.join(config.model_dir, "workers",
                                         distribution.task_suffix(self.strategy))
            ckpt_dir = self._scratch
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, ckpt_dir, max_to_keep=config.keep_checkpoints)
        self._train_fn = None
        self._eval_fn = None
        self._iterator, self._iterator_step = None, None   # reused while steps line up
        self._writers = {}

    # ---- setup helpers -------------------------------------------------------------------
    def _check_batch_fits_replicas(self):
        replicas = self.strategy.num_replicas_in_sync
        for name, value in (("global_batch_size", self.config.global_batch_size),
                            ("eval_batch_size", self.eval_batch_size)):
            if value % replicas:
                raise ValueError(f"{name}={value} is not divisible by the {replicas} "
                                 "replicas; the per-replica batch must be whole")

    def _check_or_write_run_config(self):
        path = os.path.join(self.config.model_dir, "train_config.json")
        current = dict(self.config.to_json(), trained_model=dataclasses.asdict(self.model_config))
        current = json.loads(json.dumps(current, default=str))
        if os.path.exists(path):
            with open(path) as f:
                previous = json.load(f)
            if previous.get("trained_model") != current["trained_model"]:
                raise ValueError(
                    f"{self.config.model_dir!r} holds a run of a different model "
                    f"({previous.get('trained_model')}); resume with the same model settings "
                    "or use a new --model_dir")
        if self.is_chief:
            os.makedirs(self.config.model_dir, exist_ok=True)
            _atomic_write_text(path, json.dumps(current, indent=2, default=str))

    @property
    def step(self) -> int:
        return int(self.optimizer.iterations.numpy())

    def restore(self) -> int:
        """Restores the newest checkpoint of model_dir, if any; returns the step."""
        latest = tf.train.latest_checkpoint(os.path.join(self.config.model_dir, "checkpoints"))
        if latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        return self.step

    def _datasets(self, start_step: int):
        data, batch = self.config.data, self.config.global_batch_size
        train = self.strategy.distribute_datasets_from_function(
            lambda ctx: pipeline.train_dataset(self.source, data, batch, ctx, start_step))
        return iter(train)

    def eval_dataset(self):
        return self.strategy.distribute_datasets_from_function(
            lambda ctx: pipeline.eval_dataset(self.source, self.config.data,
                                              self.eval_batch_size, ctx))

    # ---- the step functions -------------------------------------------------------------
    def _train_step(self, images, labels, skipped):
        config = self.config
        num_classes = self.model_config.classes
        with tf.GradientTape() as tape:
            logits = tf.cast(self.model(images, training=True), tf.float32)
            per_example = self.loss_fn(tf.one_hot(labels, num_classes), logits)
            loss = tf.nn.compute_average_loss(per_example,
                                              global_batch_size=config.global_batch_size)
            if self.model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
            scaled = loss
            if self.policy == "mixed_float16":
                scaled = self.optimizer.get_scaled_loss(loss)
        variables = self.model.trainable_variables
        grads = tape.gradient(scaled, variables)
        if self.policy == "mixed_float16":
            grads = self.optimizer.get_unscaled_gradients(grads)
        self.optimizer.apply_gradients(zip(grads, variables))
        return tf.stack([loss, *_correct_counts(logits, labels),
                         tf.cast(tf.shape(labels)[0], tf.float32),
                         tf.cast(tf.reduce_sum(skipped), tf.float32)])

    def _build_train_fn(self):
        strategy = self.strategy

        @tf.function
        def train_steps(iterator, num_steps):
            totals = tf.zeros([5])
            for _ in tf.range(num_steps):
                stats = strategy.run(self._train_step, args=next(iterator))
                totals += strategy.reduce(tf.distribute.ReduceOp.SUM, stats, axis=None)
            return totals
        return train_steps

    def _build_eval_fn(self):
        strategy = self.strategy

        def step(images, labels):
            logits = tf.cast(self.model(images, training=False), tf.float32)
            real = labels >= 0
            safe = tf.maximum(labels, 0)
            top1, top5 = _correct_counts(logits, safe, mask=real)
            return tf.stack([top1, top5, tf.reduce_sum(tf.cast(real, tf.float32))])

        @tf.function
        def eval_step(batch):
            return strategy.reduce(tf.distribute.ReduceOp.SUM,
                                   strategy.run(step, args=batch), axis=None)
        return eval_step

    # ---- evaluation ---------------------------------------------------------------------
    def evaluate(self, use_ema: bool = True) -> Dict[str, float]:
        """top-1/top-5 on the held-out set, with the EMA weights unless use_ema=False."""
        if self._eval_fn is None:
            self._eval_fn = self._build_eval_fn()
        with ema_weights(self.model, self.optimizer, enabled=use_ema):
            totals = np.zeros(3)
            for batch in self.eval_dataset():
                totals += self._eval_fn(batch).numpy()
        count = max(totals[2], 1.0)
        return {"top1": float(totals[0] / count), "top5": float(totals[1] / count),
                "examples": int(totals[2]), "skipped": int(self.source.num_eval - totals[2]),
                "ema": bool(use_ema and self.config.optimizer.use_ema), "step": self.step}

    # ---- the loop -----------------------------------------------------------------------
    def train(self, max_steps: Optional[int] = None, stop_flag=None) -> int:
        """Trains from the current step to the end (or `max_steps` more); returns the step."""
        config = self.config
        if self._train_fn is None:
            self._train_fn = self._build_train_fn()
        start = self.step
        end = self.total_steps if max_steps is None else min(self.total_steps,
                                                             start + max_steps)
        if self._iterator is None or self._iterator_step != start:
            self._iterator = self._datasets(start)
        iterator = self._iterator
        writer = self._writer("train")
        window = np.zeros(5)
        window_start, window_time = start, time.perf_counter()
        step = start
        while step < end:
            n = min(config.steps_per_loop, end - step,
                    _to_next(step, config.log_every_steps),
                    _to_next(step, config.checkpoint_every_steps),
                    _to_next(step, config.eval_every_steps) if config.eval_every_steps else
                    end - step)
            window += self._train_fn(iterator, tf.constant(n, tf.int32)).numpy()
            step += n
            self._iterator_step = step
            if not np.isfinite(window[0]):
                raise FloatingPointError(f"loss became {window[0]} at step {step}; lower the "
                                         "learning rate or check the data")
            finished = step == self.total_steps
            if step % config.log_every_steps == 0 or finished:
                self._log(writer, step, window, step - window_start,
                          time.perf_counter() - window_time)
                window[:] = 0
                window_start, window_time = step, time.perf_counter()
            if step % config.checkpoint_every_steps == 0 or finished:
                self.save_checkpoint()
            if config.eval_every_steps and step % config.eval_every_steps == 0 and step < end:
                self._log_eval(self.evaluate())
            if stop_flag is not None and self._agree(stop_flag.raised):
                self.save_checkpoint()
                return step
        return step

    def _agree(self, local: bool) -> bool:
        """True when any worker wants to stop (all workers must stop together)."""
        if self.strategy.extended._in_multi_worker_mode():
            flag = tf.constant(1.0 if local else 0.0)
            value = self.strategy.reduce(
                tf.distribute.ReduceOp.SUM,
                self.strategy.run(lambda: tf.identity(flag)), axis=None)
            return bool(value.numpy() > 0)
        return local

    def save_checkpoint(self):
        if self.manager.latest_checkpoint and self.manager.latest_checkpoint.endswith(
                f"-{self.step}"):
            return
        self.manager.save(checkpoint_number=self.step)

    def _writer(self, name):
        """One summary writer per folder for the trainer's life (no-op on non-chiefs)."""
        if name not in self._writers:
            self._writers[name] = (
                tf.summary.create_file_writer(os.path.join(self.config.model_dir, name))
                if self.is_chief else tf.summary.create_noop_writer())
        return self._writers[name]

    def _log(self, writer, step, window, steps, seconds):
        loss_sum, top1, top5, count, skipped = window
        images_per_sec = count / max(seconds, 1e-9)
        lr = float(self.learning_rate(step - 1))
        values = {"loss": loss_sum / max(steps, 1), "top1": top1 / max(count, 1),
                  "top5": top5 / max(count, 1), "learning_rate": lr,
                  "images_per_sec": images_per_sec, "skipped_files": skipped}
        with writer.as_default(step=step):
            for name, value in values.items():
                tf.summary.scalar(name, value)
        if self.is_chief:
            print(f"step {step}/{self.total_steps}  loss {values['loss']:.4f}  "
                  f"top1 {values['top1']:.3f}  top5 {values['top5']:.3f}  lr {lr:.5g}  "
                  f"{images_per_sec:.1f} img/s" + (f"  skipped {int(skipped)} unreadable "
                                                   "files" if skipped else ""), flush=True)

    def _log_eval(self, result):
        with self._writer("eval").as_default(step=result["step"]):
            tf.summary.scalar("top1", result["top1"])
            tf.summary.scalar("top5", result["top5"])
        if self.is_chief:
            print(f"eval at step {result['step']} ({'EMA' if result['ema'] else 'live'} "
                  f"weights): top1 {result['top1']:.4f}  top5 {result['top5']:.4f}  "
                  f"on {result['examples']} images"
                  + (f" ({result['skipped']} unreadable skipped)" if result["skipped"] else ""),
                  flush=True)

    # ---- the trained model --------------------------------------------------------------
    def save_final(self, result: Dict) -> str:
        """Writes model_dir/final (EMA weights) atomically; returns its path."""
        final = os.path.join(self.config.model_dir, "final")
        target = final if self.is_chief else self._scratch + "_final"
        tmp = f"{target}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        with ema_weights(self.model, self.optimizer):
            self.model.save(os.path.join(tmp, "model.keras"))
        config = dataclasses.asdict(self.model_config)
        config["input_shape"] = list(self.model_config.input_shape)
        with open(os.path.join(tmp, "model_config.json"), "w") as f:
            json.dump(config, f, indent=2)
        with open(os.path.join(tmp, "labels.txt"), "w") as f:
            f.write("\n".join(self.source.class_names or ()) + "\n")
        with open(os.path.join(tmp, "eval.json"), "w") as f:
            json.dump(result, f, indent=2)
        old = f"{target}.old-{os.getpid()}"
        if os.path.exists(target):
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
        if not self.is_chief:
            shutil.rmtree(target, ignore_errors=True)
        return final

    def run(self) -> Dict:
        """Restore, train to the end (or until SIGTERM), evaluate with EMA, save `final/`."""
        self._check_or_write_run_config()
        start = self.restore()
        if self.is_chief:
            print(f"{self.model.name} {self.model_config.alpha} @{self.config.data.image_size} "
                  f"on {self.source.name} ({self.source.num_train} train / "
                  f"{self.source.num_eval} held-out, {self.source.num_classes} classes); "
                  f"{self.strategy.num_replicas_in_sync} replica(s), global batch "
                  f"{self.config.global_batch_size}, {self.total_steps} steps"
                  + (f"; resumed at step {start}" if start else ""), flush=True)
        with _SigtermFlag() as flag:
            step = self.train(stop_flag=flag)
            if flag.raised:
                if self.is_chief:
                    print(f"SIGTERM: checkpoint saved at step {step}; rerun the same command "
                          "to resume", flush=True)
                return {"preempted": True, "step": step}
        result = self.evaluate()
        self._log_eval(result)
        self.save_final(result)
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)
        return result


def _to_next(step: int, every: int) -> int:
    return every - step % every


def _correct_counts(logits, labels, mask=None):
    k = min(5, logits.shape[-1])
    hits = [tf.cast(tf.math.in_top_k(labels, logits, n), tf.float32) for n in (1, k)]
    if mask is not None:
        hits = [h * tf.cast(mask, tf.float32) for h in hits]
    return [tf.reduce_sum(h) for h in hits]


class ema_weights:
    """Context: the model holds the EMA weights inside, its live weights again after."""

    def __init__(self, model, optimizer, enabled: bool = True):
        self.model, self.optimizer = model, optimizer
        self.enabled = enabled
        self._backup = None

    def __enter__(self):
        variables = self.model.trainable_variables
        averages = optimizer_lib.ema_values(self.optimizer, variables) if self.enabled else None
        if averages is not None:
            self._backup = [tf.identity(v) for v in variables]
            for v, a in zip(variables, averages):
                v.assign(a)
        return self.model

    def __exit__(self, *exc):
        if self._backup is not None:
            for v, b in zip(self.model.trainable_variables, self._backup):
                v.assign(b)
            self._backup = None


def train_and_evaluate(config: TrainConfig) -> Dict:
    return Trainer(config).run()
