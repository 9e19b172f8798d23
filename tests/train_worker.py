"""One worker of a multi-worker test run: trains with the real Trainer under TF_CONFIG and
dumps its final weights so the test can compare workers. Not a test module itself."""

import sys

import numpy as np

from mobilenet_v3.training import optimizer as optimizer_lib
from mobilenet_v3.data import pipeline
from mobilenet_v3 import ModelConfig
from mobilenet_v3.training import Trainer
from mobilenet_v3.training.schedule import ScheduleConfig

from conftest import tiny_train_config


def main(model_dir: str, out: str):
    config = tiny_train_config(
        model_dir, model=ModelConfig.from_flat(name="small", alpha=0.35),
        data=pipeline.DataConfig(image_size=32, synthetic_train_examples=256,
                                 synthetic_eval_examples=32),
        schedule=ScheduleConfig(), optimizer=optimizer_lib.OptimizerConfig(ema_momentum=0.9),
        global_batch_size=16, train_steps=6, checkpoint_every_steps=3, log_every_steps=2,
        strategy="multi_worker", seed=5)
    trainer = Trainer(config)
    result = trainer.run()
    np.savez(out, step=trainer.step, replicas=trainer.strategy.num_replicas_in_sync,
             top1=result["top1"], *[w.numpy() for w in trainer.model.weights])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
