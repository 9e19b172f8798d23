"""NetAdapt (paper 4.2): adapt a trained MobileNetV3 to a latency budget measured on a device.

    python netadapt.py --seed_run=runs/small64 --output_dir=runs/small64_netadapt \
        --target_fraction=0.7 --oracle=host --finetune_steps=10000

The seed is a train.py run folder (or a folder with model.keras + model_config.json); the
search fine-tunes on the seed run's data unless --dataset says otherwise. Each step's
fine-tunes run in parallel on Ray (a private local Ray with --workers CPUs, or --ray_address
for a cluster); latency is measured between fine-tunes, never while they run. The result is a
normal run folder, <output_dir>/final/run, that export_tflite.py, evaluate.py and
`train.py --arch=<output_dir>/final/run` (retrain from scratch) take as they are.
Rerunning the same command resumes a killed search with the same choices.

Exit codes: 0 done; 1 bad flags or input, a device problem, or a search that cannot go on (a
clear message on stderr; what was measured is kept); 130 interrupted (rerun to resume).
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


from absl import app, flags  # noqa: E402

import data_flags  # noqa: E402
import search_flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("seed_run", None, "The network to adapt: a train.py --model_dir (its "
                    "final/ model) or a folder with model.keras + model_config.json.")
flags.DEFINE_string("output_dir", None, "History, latency cache, proposals and the result.")
data_flags.define(None, "Fine-tuning data (default: the seed run's train_config.json).",
                  training=True)
flags.DEFINE_integer("resolution", None, "Input resolution (default: the seed run's).")
# The search
flags.DEFINE_float("target_ms", None, "Latency target in the oracle's unit (ms; millions of "
                   "MAdds for --oracle=madds).")
flags.DEFINE_float("target_fraction", 0.7, "Target as a fraction of the seed's latency "
                   "(used when --target_ms is not given).")
flags.DEFINE_float("delta", 0.01, "Each step cuts at least this fraction of the seed's "
                   "latency (the paper's 0.01).")
flags.DEFINE_enum("rule", "ratio", ["ratio", "smallest_drop"], "Which proposal a step keeps: "
                  "largest dAccuracy/|dLatency| (the paper's) or smallest accuracy drop "
                  "(NetAdapt's original).")
flags.DEFINE_integer("max_steps", None, "Stop after this many steps (default: at the target).")
flags.DEFINE_list("spaces", None, "Only shrink these spaces, e.g. b9.exp,b10.exp,last "
                  "(default: all; the names are printed when one is wrong).")
# Fine-tuning
flags.DEFINE_integer("finetune_steps", 10000, "T: fine-tune steps per proposal (paper: "
                     "10,000).")
flags.DEFINE_integer("final_steps", 0, "Long fine-tune of the result (0: the last choice's "
                     "run is the result; or retrain it from scratch with train.py --arch).")
flags.DEFINE_integer("batch_size", 128, "Fine-tune batch size.")
flags.DEFINE_float("learning_rate", 0.01, "Fine-tune learning rate (constant).")
flags.DEFINE_float("label_smoothing", 0.1, "Label smoothing.")
flags.DEFINE_integer("seed", 0, "Seed of the fine-tunes (each proposal adds its own offset).")
flags.DEFINE_bool("deterministic", False, "TF op determinism in the fine-tunes.")
search_flags.define()   # the latency oracle, Ray


def _data_config(seed_run: str):
    from mobilenet_v3.training import run_dir as run_dir_lib
    if FLAGS.dataset is not None:
        resolution = FLAGS.resolution or 224
        return data_flags.task_data_config("classification", resolution, FLAGS.seed)
    data = run_dir_lib.RunDir(seed_run).data_config() if os.path.isdir(seed_run) else None
    if data is None:
        raise ValueError(f"--seed_run={seed_run} has no train_config.json to take the data "
                         "from: pass --dataset (and --image_folder, ...)")
    import dataclasses
    return dataclasses.replace(data, image_size=FLAGS.resolution or data.image_size,
                               seed=FLAGS.seed)


def config_from_flags():
    from mobilenet_v3.search.netadapt import NetAdaptConfig
    from mobilenet_v3.training import TrainConfig, run_dir as run_dir_lib
    from mobilenet_v3.training.schedule import ScheduleConfig
    for flag in ("seed_run", "output_dir"):
        if not FLAGS[flag].value:
            raise ValueError(f"--{flag} is required")
    seed_run = FLAGS.seed_run
    if not os.path.exists(seed_run):
        raise ValueError(f"--seed_run={seed_run}: no such folder")
    optimizer = run_dir_lib.RunDir(seed_run).optimizer_config() if os.path.exists(
        os.path.join(seed_run, run_dir_lib.CONFIG_FILE)) else None
    import dataclasses
    from mobilenet_v3.training.optimizer import OptimizerConfig
    optimizer = dataclasses.replace(optimizer or OptimizerConfig(), use_ema=False)
    train = TrainConfig(
        model_dir="unused", data=_data_config(seed_run),
        schedule=ScheduleConfig(base_learning_rate=FLAGS.learning_rate,
                                base_batch_size=FLAGS.batch_size, warmup_epochs=0.0,
                                warmup_steps=0, decay_rate=1.0),
        optimizer=optimizer, global_batch_size=FLAGS.batch_size,
        train_steps=FLAGS.finetune_steps, label_smoothing=FLAGS.label_smoothing,
        log_every_steps=max(1, FLAGS.finetune_steps), checkpoint_every_steps=max(
            1, min(1000, FLAGS.finetune_steps)), keep_checkpoints=1, seed=FLAGS.seed,
        deterministic=FLAGS.deterministic)
    train.validate()
    return NetAdaptConfig(
        output_dir=FLAGS.output_dir, seed=seed_run, train=train, target=FLAGS.target_ms,
        target_fraction=None if FLAGS.target_ms else FLAGS.target_fraction,
        delta_fraction=FLAGS.delta, rule=FLAGS.rule, max_steps=FLAGS.max_steps,
        final_steps=FLAGS.final_steps, spaces=FLAGS.spaces)


def main(argv):
    def search(oracle, ray, log):
        from mobilenet_v3.search import netadapt
        config = config_from_flags()        # before the oracle: a bad flag touches no file
        return netadapt.NetAdapt(config, oracle(), ray, log=log).run()
    code, history = search_flags.run("netadapt.py", argv, search)
    if code:
        return code
    final = history["final"]
    print(f"done: {final['steps']} step(s); {final['latency']:.4f} "
          f"{history['settings']['unit']} (target {final['target']:.4f}), top1 "
          f"{final['top1']:.4f}; run folder {final['run_dir']}", flush=True)
    return 0


if __name__ == "__main__":
    app.run(main)
