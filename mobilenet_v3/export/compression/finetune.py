"""QAT fine-tuning: tfmot's fake-quantized copy of a trained model, trained with our loop.

The target is the float model's own outputs by default (distillation.py: QAT on a subset of
the classes must not cost the others), or the labels (`loss='labels'`).

A short constant-rate run on the training data, without EMA (fake-quant ranges move too).
Before the first step every fake-quant range is calibrated (qat.calibrate_ranges): tfmot
starts them at [-6, 6] and moves them with decay 0.999, far too slowly for a short run.
BN is frozen (inference mode, moving statistics, gamma/beta fixed), the usual QAT fine-tuning
practice: with batch statistics the QAT model computes another function than the float model
and the int8 file (which folds the moving statistics), and imported weights whose BN was
folded into the conv (Google's TFLite files: identity BN with placeholder statistics) lose
everything at the first step (measured: loss ln(1001), top-1 0).
"""

import tempfile
import shutil
from typing import Optional

import numpy as np

import tf_keras

from mobilenet_v3.data import pipeline
from mobilenet_v3.export import folding
from mobilenet_v3.export.compression import qat
from mobilenet_v3.export.compression.distillation import DistillationTask
from mobilenet_v3.modeling.config import ModelConfig
from mobilenet_v3.training import optimizer as optimizer_lib
from mobilenet_v3.training.classification import ClassificationTask
from mobilenet_v3.training.config import TrainConfig
from mobilenet_v3.training.loop import Trainer
from mobilenet_v3.training.schedule import ScheduleConfig


QAT_LOSSES = ("distillation", "labels")


def qat_finetune(model: tf_keras.Model, config: ModelConfig, data: pipeline.DataConfig,
                 steps: int, batch_size: int, learning_rate: float, seed: int,
                 work_dir: str,
                 calibration_images: Optional[np.ndarray] = None,
                 loss: str = "distillation",
                 fixed_ranges: bool = False) -> tf_keras.Model:
    """The QAT model after `steps` steps; `config` is the (batch-free) graph to quantize.

    `calibration_images` ([-1, 1], as the model takes them): the fake-quant ranges start from
    the float model's ranges over them instead of tfmot's [-6, 6]. `loss`: 'distillation'
    (the float model's outputs are the target: distillation.py) or 'labels' (cross-entropy).
    `fixed_ranges` (distillation only): the calibrated activation ranges do not move.
    """
    if loss not in QAT_LOSSES:
        raise ValueError(f"qat loss must be one of {QAT_LOSSES}, got {loss!r}")
    if fixed_ranges and loss != "distillation":
        raise ValueError("fixed_ranges needs loss='distillation'")
    train_config = TrainConfig(
        model_dir=work_dir, model=config, data=data,
        schedule=ScheduleConfig(base_learning_rate=learning_rate, base_batch_size=batch_size,
                                warmup_epochs=0.0, decay_rate=1.0),
        optimizer=optimizer_lib.OptimizerConfig(use_ema=False),
        global_batch_size=batch_size, train_steps=steps, log_every_steps=max(1, steps // 4),
        checkpoint_every_steps=steps, seed=seed)

    teacher = {}

    def model_fn(_):
        float_model = folding.rebuild(model, config)
        teacher["model"] = folding.rebuild(model, config)   # its own copy: never trained
        quantized = qat.quantize_model(float_model)
        qat.freeze_batch_norm(quantized)
        if calibration_images is not None:
            qat.calibrate_ranges(quantized, float_model, calibration_images)
        return quantized
    with qat.quantize_scope():
        if loss == "labels":
            task = ClassificationTask(train_config, model_fn=model_fn)
        else:
            task = DistillationTask(
                train_config, lambda images: teacher["model"](images, training=False),
                fixed_ranges=fixed_ranges, model_fn=model_fn)
        trainer = Trainer(train_config, task)
        trainer.train()
    qat.floor_weight_ranges(trainer.model)     # after the last step: see its docstring
    return trainer.model


def qat_finetune_in(output_dir: str, **kwargs) -> tf_keras.Model:
    """qat_finetune with a throw-away run folder inside `output_dir`."""
    work = tempfile.mkdtemp(prefix=".qat-", dir=output_dir)
    try:
        return qat_finetune(work_dir=work, **kwargs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
