"""Platform-aware NAS (paper 4.1, MnasNet): search the block-wise space around a seed network
for the best reward ACC(m) x [LAT(m)/TAR]^w, latency measured on a device.

    python nas.py --seed_arch=small --output_dir=runs/nas_small --dataset=image_folder \
        --image_folder=../shared/datasets/cifar10/train --resolution=32 --target_ms=0.05 \
        --w=-0.15 --rounds=20 --samples_per_round=4 --proxy_steps=300 --oracle=host

Each sample is trained --proxy_steps from scratch (a normal train.py run folder under
<output_dir>/trials) and timed by the oracle (the same oracles as netadapt.py, cached by
architecture). --algorithm=random draws uniformly instead: the baseline with the same trial
budget. The best networks (history.json "best") are run folders that `netadapt.py
--seed_run=`, `train.py --arch=`, export_tflite.py and evaluate.py take: the paper's pipeline
is NAS -> NetAdapt -> retrain. Rerunning the same command resumes a killed search with the same
controller and samples; a larger --rounds continues a finished one.

Exit codes: 0 done; 1 bad flags or input, a device problem, or a search that cannot go on (a
clear message on stderr; what was measured is kept); 130 interrupted (rerun to resume).
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


from absl import app, flags  # noqa: E402

import data_flags  # noqa: E402
import search_flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("seed_arch", "small", "The seed network whose groups make the search "
                    "space: small, large, or a run folder / model_config.json (its rows).")
flags.DEFINE_string("output_dir", None, "History, latency cache, controller states, trials.")
data_flags.define(None, "The proxy task's data.", training=True)
flags.DEFINE_integer("resolution", 224, "Input resolution of the search.")
# The reward
flags.DEFINE_float("target_ms", None, "TAR: the latency target in the oracle's unit (ms; "
                   "millions of MAdds for --oracle=madds).")
flags.DEFINE_float("w", None, "The reward's latency exponent (default: the paper's -0.15 for a "
                   "Small seed, -0.07 for Large).")
flags.DEFINE_bool("hard_constraint", False, "MnasNet's hard constraint instead: exponent 0 "
                  "within the target, -1 beyond.")
# The search
flags.DEFINE_enum("algorithm", "controller", ["controller", "random"], "RNN controller "
                  "(REINFORCE) or uniform random search.")
flags.DEFINE_integer("rounds", 10, "Controller updates (samples_per_round trials each).")
flags.DEFINE_integer("samples_per_round", 4, "Networks sampled and trained per round.")
flags.DEFINE_integer("keep_best", 5, "How many best networks history.json lists.")
flags.DEFINE_integer("controller_units", 64, "Controller LSTM units.")
flags.DEFINE_float("controller_learning_rate", 0.005, "Controller Adam learning rate.")
flags.DEFINE_float("entropy_weight", 1e-3, "Entropy bonus of the controller's loss.")
flags.DEFINE_float("baseline_decay", 0.9, "Moving-average baseline decay.")
# The proxy training
flags.DEFINE_integer("proxy_steps", 1000, "Training steps of every sample, from scratch.")
flags.DEFINE_integer("batch_size", 128, "Proxy training batch size.")
flags.DEFINE_float("learning_rate", 0.005, "Proxy training peak learning rate (RMSProp).")
flags.DEFINE_float("bn_momentum", 0.9, "BatchNorm moving-average decay of the proxy training: "
                   "train.py's 0.99 leaves the statistics unsettled after a few hundred steps "
                   "(held-out top-1 at chance on CIFAR-10 after 200 steps; 0.9: 0.24).")
flags.DEFINE_float("warmup_fraction", 0.1, "Linear warmup over this fraction of the steps, "
                   "then cosine decay.")
flags.DEFINE_float("label_smoothing", 0.1, "Label smoothing.")
flags.DEFINE_float("weight_decay", 1e-5, "L2 weight decay.")
flags.DEFINE_integer("seed", 0, "Seed of the controller's draws and the trials.")
flags.DEFINE_bool("deterministic", False, "TF op determinism in the trials.")
search_flags.define()   # the latency oracle, Ray


def _base_model(data):
    from mobilenet_v3 import ModelConfig
    from mobilenet_v3.data import pipeline
    from mobilenet_v3.search import arch as arch_lib
    from mobilenet_v3.training import run_dir as run_dir_lib
    if FLAGS.seed_arch in ("small", "large"):
        base = ModelConfig.from_flat(name=FLAGS.seed_arch, weight_decay=FLAGS.weight_decay,
                                     bn_momentum=FLAGS.bn_momentum)
    else:
        try:
            found = run_dir_lib.recorded_config(FLAGS.seed_arch)
        except ValueError as e:
            raise ValueError(f"--seed_arch={e} (or: small, large)") from None
        base = arch_lib.with_spec(ModelConfig.from_flat(
            name=found.name, weight_decay=FLAGS.weight_decay, bn_momentum=FLAGS.bn_momentum),
            arch_lib.spec_of(found))
    return base.for_training(pipeline.open_source(data).num_classes, data.image_size)


def config_from_flags():
    from mobilenet_v3.search import controller, nas
    from mobilenet_v3.training import TrainConfig
    from mobilenet_v3.training.optimizer import OptimizerConfig
    from mobilenet_v3.training.schedule import ScheduleConfig
    for flag in ("output_dir", "target_ms", "dataset"):
        if FLAGS[flag].value is None:
            raise ValueError(f"--{flag} is required")
    data = data_flags.task_data_config("classification", FLAGS.resolution, FLAGS.seed)
    base = _base_model(data)
    steps = FLAGS.proxy_steps
    train = TrainConfig(
        model_dir="unused", model=base, data=data,
        schedule=ScheduleConfig(base_learning_rate=FLAGS.learning_rate,
                                base_batch_size=FLAGS.batch_size, kind="cosine",
                                warmup_epochs=0.0,
                                warmup_steps=max(0, int(FLAGS.warmup_fraction * steps))),
        optimizer=OptimizerConfig(use_ema=False), global_batch_size=FLAGS.batch_size,
        train_steps=steps, label_smoothing=FLAGS.label_smoothing, log_every_steps=max(1, steps),
        checkpoint_every_steps=max(1, min(1000, steps)), keep_checkpoints=1, seed=FLAGS.seed,
        deterministic=FLAGS.deterministic)
    train.validate()
    w = FLAGS.w if FLAGS.w is not None else (nas.W_LARGE if base.name == "large"
                                             else nas.W_SMALL)
    return nas.NASConfig(
        output_dir=FLAGS.output_dir, base=base, train=train, target=FLAGS.target_ms, w=w,
        hard=FLAGS.hard_constraint, rounds=FLAGS.rounds,
        samples_per_round=FLAGS.samples_per_round, algorithm=FLAGS.algorithm,
        controller=controller.ControllerConfig(
            units=FLAGS.controller_units, learning_rate=FLAGS.controller_learning_rate,
            entropy_weight=FLAGS.entropy_weight, baseline_decay=FLAGS.baseline_decay,
            seed=FLAGS.seed),
        seed=FLAGS.seed, keep_best=FLAGS.keep_best)


def main(argv):
    def search(oracle, ray, log):
        from mobilenet_v3.search import nas
        config = config_from_flags()        # before the oracle: a bad flag touches no file
        return nas.NAS(config, oracle(), ray, log=log).run()
    code, history = search_flags.run("nas.py", argv, search)
    if code:
        return code
    top = history["best"][0]
    print(f"done: {sum(len(r['samples']) for r in history['rounds'])} samples; best reward "
          f"{top['reward']:.4f} (top1 {top['top1']:.4f}, {top['latency']:.4f} "
          f"{history['settings']['unit']}): {top['describe']}; run folder {top['run_dir']}",
          flush=True)
    return 0


if __name__ == "__main__":
    app.run(main)
