"""Convergence on real photos: MobileNetV3-Small on CIFAR-10 JPEGs for a fixed epoch budget.

Trains with the library's Trainer (the paper's recipe: RMSProp, label smoothing, L2, dropout,
EMA; Inception crop with a larger minimum area for 32-pixel images, upsampled to
--resolution) on an image folder, holds out --held_out_fraction of every class, and reports
held-out top-1 of the EMA weights and the wall time. Not a test: it takes minutes.

    python benchmark/cifar10_convergence.py [--data=../shared/datasets/cifar10/train]
        [--epochs=6] [--resolution=64] [--batch=128]
"""

import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("data", os.path.join(ROOT, "..", "shared", "datasets", "cifar10", "train"),
                    "Image folder <root>/<class>/*.jpg.")
flags.DEFINE_enum("model", "small", ["large", "small"], "Which network.")
flags.DEFINE_float("alpha", 1.0, "Width multiplier.")
flags.DEFINE_integer("resolution", 64, "Training/eval resolution (CIFAR is 32x32).")
flags.DEFINE_integer("batch", 128, "Global batch size.")
flags.DEFINE_float("epochs", 6, "Epoch budget.")
flags.DEFINE_float("base_learning_rate", 0.4, "Rate at batch 4096 (scaled linearly).")
flags.DEFINE_float("held_out_fraction", 0.1, "Held-out fraction of every class.")
flags.DEFINE_float("ema_momentum", 0.999, "EMA decay (the paper's 0.9999 spans ~30 of "
                   "these epochs).")
flags.DEFINE_string("model_dir", None, "Where to train (default: a fresh temp folder).")


def main(argv):
    del argv
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    from mobilenet_v3.training import optimizer as optimizer_lib
    from mobilenet_v3.data import pipeline
    from mobilenet_v3 import ModelConfig
    from mobilenet_v3.training.schedule import ScheduleConfig
    from mobilenet_v3.training import TrainConfig, Trainer

    if not os.path.isdir(FLAGS.data):
        print(f"no image folder at {FLAGS.data}; pass --data=<root>/<class>/*.jpg")
        return 1
    model_dir = FLAGS.model_dir or tempfile.mkdtemp(prefix="cifar10-")
    config = TrainConfig(
        model_dir=model_dir,
        model=ModelConfig.from_flat(name=FLAGS.model, alpha=FLAGS.alpha, weight_decay=1e-5),
        data=pipeline.DataConfig(source="image_folder", image_folder=FLAGS.data,
                                 held_out_fraction=FLAGS.held_out_fraction,
                                 image_size=FLAGS.resolution, min_crop_area=0.25),
        schedule=ScheduleConfig(base_learning_rate=FLAGS.base_learning_rate,
                                warmup_epochs=1, decay_epochs=1, decay_rate=0.85),
        optimizer=optimizer_lib.OptimizerConfig(ema_momentum=FLAGS.ema_momentum),
        global_batch_size=FLAGS.batch, epochs=FLAGS.epochs, log_every_steps=100,
        checkpoint_every_steps=1000)
    start = time.perf_counter()
    trainer = Trainer(config)
    trainer.config.eval_every_steps = 2 * trainer.steps_per_epoch
    result = trainer.run()
    minutes = (time.perf_counter() - start) / 60
    print(f"\nMobileNetV3-{FLAGS.model.capitalize()} {FLAGS.alpha} @{FLAGS.resolution} on "
          f"CIFAR-10 ({trainer.source.num_train} train / {trainer.source.num_eval} held-out), "
          f"{FLAGS.epochs:g} epochs, batch {FLAGS.batch}: held-out top-1 {result['top1']:.4f} "
          f"(EMA weights), top-5 {result['top5']:.4f}, {minutes:.1f} min on this machine")
    return 0


if __name__ == "__main__":
    app.run(main)
