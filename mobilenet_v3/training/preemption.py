"""Preemption: SIGTERM becomes a flag the loop checks between steps, agreed across workers.

All workers must stop at the same step (their collectives would hang otherwise).
"""

import signal

import tensorflow as tf

PREEMPTED_EXIT_CODE = 143   # 128 + SIGTERM: "terminated, checkpoint saved, resume me"


class SigtermFlag:
    """Context: while inside, SIGTERM sets `raised` instead of killing the process."""

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


def any_worker(strategy: tf.distribute.Strategy, local: bool) -> bool:
    """True when any worker's `local` is True (one tiny all-reduce in multi-worker mode)."""
    if strategy.extended._in_multi_worker_mode():
        flag = tf.constant(1.0 if local else 0.0)
        value = strategy.reduce(tf.distribute.ReduceOp.SUM,
                                strategy.run(lambda: tf.identity(flag)), axis=None)
        return bool(value.numpy() > 0)
    return local
