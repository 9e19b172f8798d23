"""Training checkpoints: what is saved (model, optimizer slots and EMA, dropout RNG) and where;
and preemption: SIGTERM becomes a flag the loop checks between steps, agreed across workers.

The chief saves into the run folder; other workers must save too (the save is collective) but
into a private scratch folder that is removed at the end. All workers must stop at the same
step after SIGTERM (their collectives would hang otherwise).
"""

import os
import signal
import sys
import threading
from typing import Callable, Optional

import tensorflow as tf

from mobilenet_v3.training import distribution
from mobilenet_v3.training.build_settings import random_generators
from mobilenet_v3.training.run_dir import RunDir

PREEMPTED_EXIT_CODE = 143   # 128 + SIGTERM: "terminated, checkpoint saved, resume me"
STALL_GRACE_SECONDS = 120.0  # a step still running this long after SIGTERM is abandoned


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


class SigtermFlag:
    """Context: while inside, SIGTERM sets `raised` instead of killing the process.

    The loop sees the flag between steps. A step that never returns (an input pipeline that
    stalls) would hold SIGTERM off forever, because Python runs signal handlers only between
    bytecodes: a watcher thread, woken through the signal wakeup fd even while the main thread
    is inside TensorFlow, exits the process with PREEMPTED_EXIT_CODE after `grace_seconds`
    (the last checkpoint is kept; nothing new is saved).
    """

    def __init__(self, grace_seconds: float = STALL_GRACE_SECONDS):
        self.raised = False
        self.grace_seconds = grace_seconds
        self._previous = None
        self._done = threading.Event()
        self._pipe = None

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:          # not the main thread: leave signals alone
            self._previous = None
            return self
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        self._pipe = (read_fd, write_fd, signal.set_wakeup_fd(write_fd))
        threading.Thread(target=self._watch, args=(read_fd,), daemon=True).start()
        return self

    def _handle(self, signum, frame):
        self.raised = True

    def _watch(self, read_fd):
        while True:
            try:
                data = os.read(read_fd, 64)
            except OSError:
                return
            if not data or self._done.is_set():
                return
            if signal.SIGTERM in data:
                self.raised = True
                if not self._done.wait(self.grace_seconds):
                    print(f"SIGTERM: the current step did not finish within "
                          f"{self.grace_seconds:g} s (a stalled input pipeline?); exiting "
                          "without a new checkpoint, the last one is kept", file=sys.stderr,
                          flush=True)
                    os._exit(PREEMPTED_EXIT_CODE)

    def __exit__(self, *exc):
        self._done.set()
        if self._pipe is not None:
            read_fd, write_fd, previous_fd = self._pipe
            signal.set_wakeup_fd(previous_fd)
            os.close(write_fd)
            os.close(read_fd)
            self._pipe = None
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def any_worker(strategy: tf.distribute.Strategy, local: bool) -> bool:
    """True when any worker's `local` is True (one tiny all-reduce in multi-worker mode)."""
    if strategy.extended._in_multi_worker_mode():
        flag = tf.constant(1.0 if local else 0.0)
        value = strategy.reduce(tf.distribute.ReduceOp.SUM,
                                strategy.run(lambda: tf.identity(flag)), axis=None)
        return bool(value.numpy() > 0)
    return local
