"""MnasNet's RNN controller, trained with REINFORCE (a moving-average baseline, an entropy
bonus): an LSTM emits one decision per choice of the search space, each decision's embedding
fed back as the next step's input (Zoph & Le; MnasNet used PPO, REINFORCE is the simpler
policy gradient the issue allows). Sampling is seeded per round, so a resumed search draws
the same networks; the whole state (weights, Adam slots, baseline) is saved and restored.
"""

import dataclasses
import json
import os
from typing import Dict, Optional, Sequence

import numpy as np
import tensorflow as tf
import tf_keras

from mobilenet_v3 import files

STATE_FILE = "controller.json"


@dataclasses.dataclass
class ControllerConfig:
    units: int = 64
    learning_rate: float = 0.005
    entropy_weight: float = 1e-3
    baseline_decay: float = 0.9      # b <- decay * b + (1 - decay) * mean reward
    seed: int = 0

    def validate(self):
        if self.units < 1 or self.learning_rate <= 0 or not 0 <= self.baseline_decay < 1:
            raise ValueError(f"controller: units >= 1, learning_rate > 0 and baseline_decay "
                             f"in [0, 1) needed, got {self}")


class Controller(tf.Module):
    def __init__(self, sizes: Sequence[int], config: ControllerConfig = ControllerConfig()):
        super().__init__(name="controller")
        config.validate()
        self.sizes, self.config = [int(s) for s in sizes], config
        init = tf_keras.initializers.RandomUniform(-0.1, 0.1, seed=config.seed)
        units = config.units
        self.start = tf.Variable(init((1, units)), name="start")
        self.embeddings = [tf.Variable(init((s, units)), name=f"embed_{i}")   # fed back
                           for i, s in enumerate(self.sizes[:-1])]
        self.kernel = tf.Variable(init((2 * units, 4 * units)), name="lstm_kernel")
        self.bias = tf.Variable(tf.zeros(4 * units), name="lstm_bias")
        self.heads = [tf.Variable(init((units, s)), name=f"head_{i}")
                      for i, s in enumerate(self.sizes)]
        self.params = [self.start, self.kernel, self.bias] + self.embeddings + self.heads
        self.optimizer = tf_keras.optimizers.Adam(config.learning_rate)
        self.optimizer.build(self.params)     # its slots exist before any traced step
        self.baseline: Optional[float] = None
        self.updates = 0

    def _lstm(self, x, h, c):
        gates = tf.matmul(tf.concat([x, h], 1), self.kernel) + self.bias
        i, f, g, o = tf.split(gates, 4, axis=1)
        c = tf.sigmoid(f + 1.0) * c + tf.sigmoid(i) * tf.tanh(g)
        return tf.sigmoid(o) * tf.tanh(c), c

    def _walk(self, n: int, actions=None, seed=None):
        """Runs the LSTM over the decisions: samples (seed) or scores given actions. Returns
        actions [n, D], summed log-probabilities [n], summed entropies [n]."""
        units = self.config.units
        x = tf.tile(self.start, [n, 1])
        h = c = tf.zeros(tf.stack([n, units]))
        taken, log_p, entropy = [], tf.zeros([n]), tf.zeros([n])
        for d, size in enumerate(self.sizes):
            h, c = self._lstm(x, h, c)
            logits = tf.matmul(h, self.heads[d])
            if actions is None:
                a = tf.random.stateless_categorical(
                    logits, 1, seed=tf.stack([seed, tf.constant(d, tf.int64)]))[:, 0]
            else:
                a = actions[:, d]
            logp = tf.nn.log_softmax(logits)
            log_p += tf.reduce_sum(tf.one_hot(a, size) * logp, 1)   # log pi(a_d | a_<d)
            entropy += -tf.reduce_sum(tf.exp(logp) * logp, 1)
            taken.append(a)
            if d < len(self.embeddings):
                x = tf.gather(self.embeddings[d], a)
        return tf.stack(taken, 1), log_p, entropy

    @tf.function(reduce_retracing=True)
    def _draw(self, n, seed):
        return self._walk(n, seed=seed)[0]

    @tf.function(reduce_retracing=True)
    def _score(self, actions):
        return self._walk(tf.shape(actions)[0], actions=actions)

    def sample(self, n: int, seed: int) -> np.ndarray:
        """n networks' actions [n, decisions], the same for the same weights and seed."""
        return self._draw(tf.constant(n), tf.constant(seed, tf.int64)).numpy().astype(np.int64)

    def probabilities(self, actions: np.ndarray) -> np.ndarray:
        _, log_p, _ = self._score(tf.constant(np.asarray(actions), tf.int64))
        return np.exp(log_p.numpy())

    @tf.function(reduce_retracing=True)
    def _step(self, actions, advantage):
        with tf.GradientTape() as tape:
            _, log_p, entropy = self._walk(tf.shape(actions)[0], actions=actions)
            loss = -tf.reduce_mean(advantage * log_p) \
                - self.config.entropy_weight * tf.reduce_mean(entropy)
        self.optimizer.apply_gradients(zip(tape.gradient(loss, self.params), self.params))
        return loss, entropy

    def update(self, actions: np.ndarray, rewards: Sequence[float]) -> Dict:
        """One REINFORCE step on a batch of sampled networks and their rewards."""
        actions, rewards = np.asarray(actions), np.asarray(rewards, np.float32)
        mean = float(rewards.mean())
        baseline = mean if self.baseline is None else self.baseline
        advantage = tf.constant(rewards - baseline)
        loss, entropy = self._step(tf.constant(actions, tf.int64), advantage)
        decay = self.config.baseline_decay
        self.baseline = mean if self.baseline is None else decay * baseline + (1 - decay) * mean
        self.updates += 1
        return {"loss": float(loss), "baseline": self.baseline,
                "entropy": float(tf.reduce_mean(entropy))}

    # ---- state --------------------------------------------------------------------------
    def save(self, folder: str):
        """Weights, Adam's slots and the baseline, written as one folder atomically."""
        checkpoint = tf.train.Checkpoint(controller=self, optimizer=self.optimizer)

        def fill(tmp):
            checkpoint.write(os.path.join(tmp, "ckpt"))
            with open(os.path.join(tmp, STATE_FILE), "w") as f:
                json.dump({"baseline": self.baseline, "updates": self.updates,
                           "sizes": self.sizes}, f)
        files.atomic_write_dir(folder, fill)

    def restore(self, folder: str):
        with open(os.path.join(folder, STATE_FILE)) as f:
            state = json.load(f)
        if state["sizes"] != self.sizes:
            raise ValueError(f"{folder}: a controller for another search space")
        tf.train.Checkpoint(controller=self, optimizer=self.optimizer).read(
            os.path.join(folder, "ckpt")).assert_existing_objects_matched()
        self.baseline, self.updates = state["baseline"], state["updates"]
