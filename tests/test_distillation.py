"""QAT by distillation: the loss is the teacher's distribution, zero when the student matches
it, and its gradient moves the student towards the teacher."""

import numpy as np
import tensorflow as tf
import tf_keras

from mobilenet_v3.export.compression.distillation import DistillationTask
from conftest import tiny_train_config


def test_distillation_loss_is_kl_to_the_teacher(tmp_path):
    config = tiny_train_config(tmp_path)
    tf_keras.utils.set_random_seed(0)
    student = tf_keras.Sequential([tf_keras.Input((32, 32, 3)), tf_keras.layers.Flatten(),
                                   tf_keras.layers.Dense(10)])
    twin = tf_keras.models.clone_model(student)
    twin.set_weights(student.get_weights())
    images = tf.random.uniform((4, 32, 32, 3), -1, 1)
    batch = (images, tf.constant([0, 1, 2, 3]), tf.zeros([4], tf.int32))
    same = DistillationTask(config, lambda x: twin(x, training=False))
    loss, metrics = same.train_loss_and_metrics(student, batch)
    assert abs(float(loss)) < 1e-6 and float(metrics["examples"]) == 4
    other = tf_keras.models.clone_model(student)       # different random weights
    task = DistillationTask(config, lambda x: other(x, training=False), temperature=2.0)
    with tf.GradientTape() as tape:
        loss, _ = task.train_loss_and_metrics(student, batch)
    assert float(loss) > 1e-3
    grads = tape.gradient(loss, student.trainable_variables)
    step = [v - 0.05 * g for v, g in zip(student.get_weights(), grads)]
    before = float(loss)
    student.set_weights([np.asarray(w) for w in step])
    after, _ = task.train_loss_and_metrics(student, batch)
    assert float(after) < before


def test_fixed_ranges_runs_the_student_in_inference_mode(tmp_path):
    """fixed_ranges: the student is called with training=False (tfmot's range EMA and dropout
    stay off); without it, a student with dropout differs from its identical teacher."""
    config = tiny_train_config(tmp_path)
    tf_keras.utils.set_random_seed(0)
    student = tf_keras.Sequential([tf_keras.Input((32, 32, 3)), tf_keras.layers.Flatten(),
                                   tf_keras.layers.Dropout(0.9), tf_keras.layers.Dense(10)])
    twin = tf_keras.models.clone_model(student)
    twin.set_weights(student.get_weights())
    images = tf.random.uniform((4, 32, 32, 3), -1, 1)
    batch = (images, tf.constant([0, 1, 2, 3]), tf.zeros([4], tf.int32))
    fixed = DistillationTask(config, lambda x: twin(x, training=False), fixed_ranges=True)
    assert abs(float(fixed.train_loss_and_metrics(student, batch)[0])) < 1e-6
    moving = DistillationTask(config, lambda x: twin(x, training=False))
    assert float(moving.train_loss_and_metrics(student, batch)[0]) > 1e-3
