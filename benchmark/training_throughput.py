"""Training images/s of our MobileNetV3 against keras.applications', same loop, data, batch.

Both networks run in the same `mobilenet_v3.training.loop.Trainer` (RMSProp + EMA, label
smoothing, the built-in synthetic pipeline, same batch and resolution); only the model
function differs. Rounds alternate between the two so that machine noise hits both alike;
each round times `--steps` steps after two untimed warm-up calls per network.

    python benchmark/training_throughput.py [--model=small] [--resolution=128] [--batch=32]
"""

import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_enum("model", "small", ["large", "small"], "Which network.")
flags.DEFINE_float("alpha", 1.0, "Width multiplier.")
flags.DEFINE_integer("resolution", 128, "Input resolution.")
flags.DEFINE_integer("batch", 32, "Global batch size.")
flags.DEFINE_integer("steps", 20, "Timed steps per round.")
flags.DEFINE_integer("rounds", 5, "Interleaved rounds.")


def keras_applications_model(config):
    from mobilenet_v3.bench.peers import keras_mobilenet_v3
    return keras_mobilenet_v3(config.name, config.input_shape, config.alpha,
                              classes=config.classes, dropout_rate=config.head.dropout_rate,
                              classifier_activation=None,
                              minimalistic=config.minimalistic)


def main(argv):
    del argv
    import numpy as np
    from absl import logging
    logging.set_verbosity(logging.WARNING)

    from mobilenet_v3.training import optimizer as optimizer_lib
    from mobilenet_v3.data import pipeline
    from mobilenet_v3 import ModelConfig, build_model
    from mobilenet_v3.training import TrainConfig, Trainer
    from mobilenet_v3.training.classification import ClassificationTask

    def make(model_fn):
        config = TrainConfig(
            model_dir=tempfile.mkdtemp(prefix="throughput-"),
            # No L2 term: keras.applications has no regularizers, so neither pays for one.
            model=ModelConfig.from_flat(name=FLAGS.model, alpha=FLAGS.alpha, weight_decay=0.0),
            data=pipeline.DataConfig(image_size=FLAGS.resolution,
                                     synthetic_train_examples=4096),
            optimizer=optimizer_lib.OptimizerConfig(ema_momentum=0.999),
            global_batch_size=FLAGS.batch, train_steps=10 ** 6,
            log_every_steps=10 ** 6, checkpoint_every_steps=10 ** 6)
        trainer = Trainer(config, ClassificationTask(config, model_fn=model_fn))
        trainer.train(max_steps=FLAGS.steps)             # trace + warm the pipeline
        return trainer

    trainers = {"ours": make(build_model), "keras.applications": make(keras_applications_model)}
    for name, t in trainers.items():
        print(f"{name}: {t.model.count_params():,} params, {len(t.model.layers)} layers")
    # One untimed interleaved round: the first call after the other trainer was built is
    # consistently slow (seen as ~half speed in round 1 of earlier runs).
    for t in trainers.values():
        t.train(max_steps=FLAGS.steps)
    rates = {name: [] for name in trainers}
    for r in range(FLAGS.rounds):
        order = list(trainers) if r % 2 == 0 else list(reversed(trainers))
        for name in order:
            start = time.perf_counter()
            trainers[name].train(max_steps=FLAGS.steps)
            rates[name].append(FLAGS.steps * FLAGS.batch / (time.perf_counter() - start))
    print(f"\nMobileNetV3-{FLAGS.model.capitalize()} {FLAGS.alpha} @{FLAGS.resolution}, batch "
          f"{FLAGS.batch}, {FLAGS.rounds} rounds x {FLAGS.steps} steps (images/s)")
    print("| model | median img/s | max img/s | rounds |")
    print("|---|---|---|---|")
    for name, values in rates.items():
        print(f"| {name} | {np.median(values):.1f} | {max(values):.1f} | "
              + ", ".join(f"{v:.0f}" for v in values) + " |")
    ratio = np.median(rates["ours"]) / np.median(rates["keras.applications"])
    best = max(rates["ours"]) / max(rates["keras.applications"])
    print(f"\nratio ours / keras.applications: median {ratio:.3f}, max {best:.3f}")


if __name__ == "__main__":
    app.run(main)
