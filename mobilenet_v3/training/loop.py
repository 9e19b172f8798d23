"""The training loop: any Task under any tf.distribute strategy, resumable and preemptible.

A custom loop (not `fit`) because checkpoints must come every N steps, a resumed run must
continue at the exact step and example, SIGTERM must save, and the evaluated weights must be
the EMA ones: all awkward to bolt onto `fit` across strategies.

`Trainer` runs the loop; `CompiledSteps` holds its tf.functions and `Progress` writes its lines
and summaries.
"""

import os
import sys
import time
from typing import Dict, Optional

import numpy as np
import tensorflow as tf
import tf_keras

from mobilenet_v3.training import (distribution, ema, optimizer as optimizer_lib,
                                   schedule as schedule_lib)
from mobilenet_v3.training.build_settings import model_building_settings
from mobilenet_v3.training.checkpoints import (PREEMPTED_EXIT_CODE, Checkpoints, SigtermFlag,
                                               any_worker)
from mobilenet_v3.training.classification import ClassificationTask
from mobilenet_v3.training.config import TrainConfig
from mobilenet_v3.training.run_dir import RunDir
from mobilenet_v3.training.task import Task

__all__ = ["PREEMPTED_EXIT_CODE", "Trainer"]


class Trainer:
    """Builds everything under the strategy; `run()` trains to the end, resumable."""

    def __init__(self, config: TrainConfig, task: Optional[Task] = None):
        """`task` defaults to image classification on `config.data`."""
        config.validate()
        self.config = config
        tf_keras.utils.set_random_seed(config.seed)
        if config.deterministic:
            tf.config.experimental.enable_op_determinism()
        self.strategy = distribution.make_strategy(config.strategy, config.tpu)
        self.is_chief = distribution.is_chief(self.strategy)
        self.policy = distribution.mixed_precision_policy(config.precision, config.strategy)
        self.task = task or ClassificationTask(config)
        self.run_dir = RunDir(config.model_dir)
        self.progress = Progress(config.model_dir, self.is_chief)
        batch = config.global_batch_size
        self.steps_per_epoch = max(1, self.task.num_train_examples // batch)
        self.total_steps = config.train_steps or max(
            1, int(round(config.epochs * self.steps_per_epoch)))
        self.unfreeze_step = int(round(config.freeze_backbone_epochs * self.steps_per_epoch))
        _check_batch_fits_replicas(config, self.strategy.num_replicas_in_sync)
        # Pretrained weights are read and checked now, before anything is written, and only
        # for a run that will start at step 0: a resumed run restores its checkpoint.
        self._initializer = (self.task.initializer()
                             if self.run_dir.latest_checkpoint() is None else None)
        self._build(batch)
        # ... and loaded now too: a file that does not fit the built model fails before the
        # run folder holds a record (a corrected rerun then starts cleanly)
        self._init_line = None
        if self._initializer is not None:
            self._init_line = self._initializer(self.model)
            ema.reset_averages(self.model, self.optimizer)
        self._initializer = None
        self.compiled = CompiledSteps(self.strategy, self.task, self.model, self.optimizer,
                                      self.policy)
        self._frozen = False
        self._iterator, self._iterator_step = None, None   # reused while steps line up

    @property
    def model_config(self):
        return self.task.model_config

    def _build(self, batch: int):
        """Model, schedule, optimizer (slots and EMA created now) and the checkpoints."""
        with self.strategy.scope():
            with model_building_settings(self.policy):
                self.model = self.task.build_model()
            self.learning_rate = schedule_lib.paper_schedule(self.config.schedule, batch,
                                                             self.steps_per_epoch,
                                                             self.total_steps)
            opt = optimizer_lib.build_optimizer(self.config.optimizer, self.learning_rate)
            if self.policy == "mixed_float16":
                opt = tf_keras.mixed_precision.LossScaleOptimizer(opt)
            self.optimizer = opt
            # Slots and EMA for every variable that is ever trained, frozen backbone
            # included: tf_keras builds an optimizer once, so variables that became trainable
            # later (at the unfreeze step) would have no slots, and the checkpoint layout
            # would change across the unfreeze point.
            optimizer_lib.inner_optimizer(opt).build(self.model.trainable_variables)
        self.checkpoints = Checkpoints(self.model, self.optimizer, self.run_dir, self.strategy,
                                       self.config.keep_checkpoints)

    @property
    def step(self) -> int:
        return self.checkpoints.step

    def restore(self) -> int:
        """Restores the newest checkpoint of model_dir, if any; returns the step."""
        return self.checkpoints.restore()

    def restore_or_initialize(self) -> int:
        """The newest checkpoint if there is one, else the task's pretrained weights (with the
        EMA restarted from them); returns the step."""
        step = self.checkpoints.restore(self.progress.warn)
        if self._init_line is not None and not step:
            self.progress.say(self._init_line)
        self._init_line = None
        return step

    # ---- freezing -----------------------------------------------------------------------
    def frozen_at(self, step: int) -> bool:
        return step < self.unfreeze_step

    def _set_frozen(self, frozen: bool):
        """Freezes/unfreezes the task's backbone layers; the step function is retraced, since
        the set of trained variables is fixed when it is traced."""
        if frozen == self._frozen:
            return
        for layer in self.task.backbone_layers(self.model):
            layer.trainable = not frozen
        self._frozen = frozen
        self.compiled.retrace_train()

    def save_checkpoint(self):
        self.checkpoints.save()

    # ---- evaluation ---------------------------------------------------------------------
    def evaluate(self, use_ema: bool = True) -> Dict:
        """The task's held-out metrics, with the EMA weights unless use_ema=False."""
        with ema.ema_weights(self.model, self.optimizer, enabled=use_ema):
            values = self.compiled.eval_values()
        return dict(values, ema=bool(use_ema and self.config.optimizer.use_ema),
                    step=self.step)

    # ---- the loop -----------------------------------------------------------------------
    def _next_chunk(self, step: int, end: int) -> int:
        """Steps until the next log, checkpoint, evaluation or the end (at most a loop)."""
        c = self.config
        to_unfreeze = self.unfreeze_step - step if step < self.unfreeze_step else end - step
        return min(c.steps_per_loop, end - step, to_unfreeze, _to_next(step, c.log_every_steps),
                   _to_next(step, c.checkpoint_every_steps),
                   _to_next(step, c.eval_every_steps) if c.eval_every_steps else end - step)

    def _iterator_at(self, start: int):
        if self._iterator is None or self._iterator_step != start:
            self._iterator = iter(self.strategy.distribute_datasets_from_function(
                lambda ctx: self.task.train_dataset(ctx, start)))
        return self._iterator

    def train(self, max_steps: Optional[int] = None, stop_flag=None) -> int:
        """Trains from the current step to the end (or `max_steps` more); returns the step."""
        config = self.config
        start = step = self.step
        end = self.total_steps if max_steps is None else min(self.total_steps,
                                                             start + max_steps)
        iterator = self._iterator_at(start)
        window = _Window(start)
        while step < end:
            n = self._next_chunk(step, end)
            if self.frozen_at(step) != self._frozen:
                if self._frozen:
                    self.progress.say(f"step {step}: backbone unfrozen")
                self._set_frozen(self.frozen_at(step))
            window.add(self.compiled.train(iterator, n))
            step += n
            self._iterator_step = step
            window.check_finite(step)
            finished = step == self.total_steps
            if step % config.log_every_steps == 0 or finished:
                self.progress.train_window(step, self.total_steps, window, self.task,
                                           self.learning_rate)
                window = _Window(step)
            if step % config.checkpoint_every_steps == 0 or finished:
                self.save_checkpoint()
            if config.eval_every_steps and step % config.eval_every_steps == 0 and step < end:
                self.progress.eval_result(self.evaluate(), self.task)
            if stop_flag is not None and any_worker(self.strategy, stop_flag.raised):
                self.save_checkpoint()
                return step
        return step

    # ---- the whole run ------------------------------------------------------------------
    def save_final(self, result: Dict) -> str:
        """Writes model_dir/final (EMA weights) atomically; returns its path."""
        target = None if self.is_chief else self.checkpoints.scratch + "_final"
        self._set_frozen(False)        # final/model.keras is saved with every layer trainable

        def save_model(path):
            with ema.ema_weights(self.model, self.optimizer):
                self.model.save(path)
        written = self.run_dir.write_final(save_model, self.model_config, self.task.labels(),
                                           result, target)
        if not self.is_chief:
            self.run_dir.remove(written)
        return self.run_dir.final

    def run(self) -> Dict:
        """Restore, train to the end (or until SIGTERM), evaluate with EMA, save `final/`."""
        record = dict(self.config.to_record(), trained_model=self.model_config.to_flat())
        self.run_dir.check_and_record(record, write=self.is_chief,
                                      allow_changes=self.config.allow_changed_settings)
        if self.is_chief:
            self.run_dir.clean_leftovers()
        start = self.restore_or_initialize()
        self.progress.say(
            f"{self.model.name} {self.model_config.alpha} {self.task.describe_data()}; "
            f"{self.strategy.num_replicas_in_sync} replica(s), global batch "
            f"{self.config.global_batch_size}, {self.total_steps} steps"
            + (f"; backbone frozen until step {self.unfreeze_step}"
               if self.unfreeze_step else "")
            + (f"; resumed at step {start}" if start else ""))
        with SigtermFlag() as flag:
            step = self.train(stop_flag=flag)
            if flag.raised:
                self.progress.say(f"SIGTERM: checkpoint saved at step {step}; rerun the same "
                                  "command to resume")
                return {"preempted": True, "step": step}
        result = self.evaluate()
        self.progress.eval_result(result, self.task)
        self.save_final(result)
        self.checkpoints.remove_scratch()
        return result


class CompiledSteps:
    """The tf.functions of the loop: `train` runs n training steps (metrics summed over
    replicas), `eval_values` a pass over the held-out data (sums, and logs on the host).

    The training function is traced again after `retrace_train()`: the set of trained
    variables (frozen backbone or not) is fixed when it is traced.
    """

    def __init__(self, strategy: tf.distribute.Strategy, task: Task, model, optimizer,
                 policy: str):
        self.strategy, self.task, self.model, self.optimizer = strategy, task, model, optimizer
        self.policy = policy
        self._train_fn = self._eval_fn = None

    def retrace_train(self):
        self._train_fn = None

    def train(self, iterator, num_steps: int) -> Dict[str, tf.Tensor]:
        """Runs `num_steps` steps on `iterator`; the metric sums over them."""
        if self._train_fn is None:
            self._train_fn = self._build_train_fn()
        return self._train_fn(iterator, tf.constant(num_steps, tf.int32))

    def eval_values(self) -> Dict:
        """The task's reported evaluation values on the held-out data (current weights)."""
        sums, state = self.eval_pass()
        return dict(self.task.reduce_aggregated_logs(state), **self.task.eval_values(sums))

    def eval_pass(self):
        """(metric sums over the held-out data, the task's state after aggregate_logs)."""
        if self._eval_fn is None:
            self._eval_fn = self._build_eval_fn()
        sums = {name: 0.0 for name in self.task.eval_metric_names}
        state = None
        for batch in self.strategy.distribute_datasets_from_function(self.task.eval_dataset):
            step_sums, logs = self._eval_fn(batch)
            for name, value in step_sums.items():
                sums[name] += float(value.numpy())
            state = self.task.aggregate_logs(state, {k: v.numpy() for k, v in logs.items()})
        return sums, state

    def _train_step(self, batch):
        mixed16 = self.policy == "mixed_float16"
        with tf.GradientTape() as tape:
            loss, metrics = self.task.train_loss_and_metrics(self.model, batch)
            if self.model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
            scaled = self.optimizer.get_scaled_loss(loss) if mixed16 else loss
        variables = self.model.trainable_variables
        grads = tape.gradient(scaled, variables)
        if mixed16:
            grads = self.optimizer.get_unscaled_gradients(grads)
        self.optimizer.apply_gradients(zip(grads, variables))
        return dict(metrics, loss=loss)

    def _summed(self, fn, args):
        """Runs `fn` on every replica and sums each named metric over replicas."""
        per_replica = self.strategy.run(fn, args=args)
        return {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                for k, v in per_replica.items()}

    def _build_train_fn(self):
        names = self.task.train_metric_names

        @tf.function
        def train_steps(iterator, num_steps):
            totals = {name: tf.zeros([]) for name in names}
            for _ in tf.range(num_steps):
                stats = self._summed(self._train_step, (next(iterator),))
                totals = {name: totals[name] + stats[name] for name in names}
            return totals
        return train_steps

    def _build_eval_fn(self):
        """Sums reduced over replicas; logs gathered from every replica (other workers'
        too, as the sums are), one row each: the host sees the whole global batch."""
        def replica_step(batch):
            sums, logs = self.task.eval_step(self.model, batch)
            return sums, {k: tf.expand_dims(v, 0) for k, v in logs.items()}

        @tf.function
        def eval_step(batch):
            sums, logs = self.strategy.run(replica_step, args=(batch,))
            return ({k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                     for k, v in sums.items()},
                    {k: self.strategy.gather(v, axis=0) for k, v in logs.items()})
        return eval_step


class Progress:
    """Progress lines on stdout and TensorBoard summaries, for the chief only.

    One summary writer per folder for the trainer's life; non-chief workers write nothing.
    """

    def __init__(self, run_path: str, is_chief: bool):
        self.run_path, self.is_chief = run_path, is_chief
        self._writers = {}

    def writer(self, name: str):
        if name not in self._writers:
            self._writers[name] = (
                tf.summary.create_file_writer(os.path.join(self.run_path, name))
                if self.is_chief else tf.summary.create_noop_writer())
        return self._writers[name]

    def scalars(self, folder: str, step: int, values: Dict[str, float]):
        with self.writer(folder).as_default(step=step):
            for name, value in values.items():
                tf.summary.scalar(name, value)

    def say(self, text: str):
        if self.is_chief:
            print(text, flush=True)

    def warn(self, text: str):
        if self.is_chief:
            print(f"warning: {text}", file=sys.stderr, flush=True)

    def train_line(self, step: int, total: int, task_text: str, lr: float,
                   images_per_sec: float, skipped: float,
                   seconds_left: Optional[float] = None):
        self.say(f"step {step}/{total}  {task_text}  lr {lr:.5g}  {images_per_sec:.1f} img/s"
                 + (f"  ETA {format_duration(seconds_left)}" if seconds_left is not None
                    and step < total else "")
                 + (f"  skipped {int(skipped)} unreadable files" if skipped else ""))

    def eval_line(self, result: Dict, task_text: str):
        self.say(f"eval at step {result['step']} ({'EMA' if result['ema'] else 'live'} "
                 f"weights): {task_text}  on {result['examples']} images"
                 + (f" ({result['skipped']} unreadable skipped)" if result.get("skipped")
                    else ""))

    def eval_result(self, result: Dict, task: Task):
        """The summaries and the line of an evaluation (a Trainer.evaluate result)."""
        numbers = {k: v for k, v in result.items() if isinstance(v, float)}
        self.scalars("eval", result["step"], numbers)
        self.eval_line(result, task.format_values(numbers))

    def train_window(self, step: int, total: int, window: "_Window", task: Task,
                     learning_rate):
        """The summaries and the line of the training steps since the last line."""
        sums, steps = window.sums, step - window.start
        values = task.train_values(sums, steps)
        lr = float(learning_rate(step - 1))
        images_per_sec = sums.get("examples", 0.0) / max(window.seconds(), 1e-9)
        skipped = sums.get("skipped", 0.0)
        self.scalars("train", step, dict(values, learning_rate=lr,
                                         images_per_sec=images_per_sec, skipped_files=skipped))
        # the rate of the last window (the first one includes tracing: it overestimates)
        seconds_left = window.seconds() / max(steps, 1) * (total - step)
        self.train_line(step, total, task.format_values(values), lr, images_per_sec, skipped,
                        seconds_left)


class _Window:
    """Metric sums since the last progress line, and when that window started."""

    def __init__(self, start_step: int):
        self.start, self.sums, self._t0 = start_step, {}, time.perf_counter()

    def add(self, totals):
        for name, value in totals.items():
            self.sums[name] = self.sums.get(name, 0.0) + float(value.numpy())

    def check_finite(self, step: int):
        loss = self.sums.get("loss", 0.0)
        if not np.isfinite(loss):
            raise FloatingPointError(f"loss became {loss} at step {step}; lower the "
                                     "learning rate or check the data")

    def seconds(self) -> float:
        return time.perf_counter() - self._t0


def _check_batch_fits_replicas(config: TrainConfig, replicas: int):
    for name, value in (("global_batch_size", config.global_batch_size),
                        ("eval_batch_size", config.eval_batch_size or config.global_batch_size)):
        if value % replicas:
            raise ValueError(f"{name}={value} is not divisible by the {replicas} "
                             "replicas; the per-replica batch must be whole")


def format_duration(seconds: float) -> str:
    """45s, 12m30s, 3h05m: the time left of a progress line."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _to_next(step: int, every: int) -> int:
    return every - step % every
