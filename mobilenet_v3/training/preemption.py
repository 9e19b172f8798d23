"""Preemption: SIGTERM becomes a flag the loop checks between steps, agreed across workers.

All workers must stop at the same step (their collectives would hang otherwise).
"""

import os
import signal
import sys
import threading

import tensorflow as tf

PREEMPTED_EXIT_CODE = 143   # 128 + SIGTERM: "terminated, checkpoint saved, resume me"
STALL_GRACE_SECONDS = 120.0  # a step still running this long after SIGTERM is abandoned


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
