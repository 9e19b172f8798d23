"""Progress lines on stdout and TensorBoard summaries, for the chief only.

One summary writer per folder for the trainer's life; non-chief workers write nothing.
"""

import os
import sys
from typing import Dict

import tensorflow as tf


class Progress:
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
                   images_per_sec: float, skipped: float):
        self.say(f"step {step}/{total}  {task_text}  lr {lr:.5g}  {images_per_sec:.1f} img/s"
                 + (f"  skipped {int(skipped)} unreadable files" if skipped else ""))

    def eval_line(self, result: Dict, task_text: str):
        self.say(f"eval at step {result['step']} ({'EMA' if result['ema'] else 'live'} "
                 f"weights): {task_text}  on {result['examples']} images"
                 + (f" ({result['skipped']} unreadable skipped)" if result.get("skipped")
                    else ""))
