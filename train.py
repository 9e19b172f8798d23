"""Train MobileNetV3 with the paper's recipe: `python train.py --flagfile=configs/demo.cfg`.

Flags only map onto mobilenet_v3.training.TrainConfig; the library does the work, and what
differs per --task comes from the task registry (mobilenet_v3/tasks/). Rerunning
the same command with the same --model_dir resumes from the newest checkpoint.
Fine-tuning: `--init_weights=v3-small_224_1.0_uint8.tflite --model=small
--freeze_backbone_epochs=1 --dataset=image_folder --image_folder=PHOTOS`.

Exit codes: 0 done; 1 bad flags or input (a clear message on stderr: unknown flag, missing
data, a model_dir holding another model, --init_weights missing or of another architecture); 143 stopped by SIGTERM after saving a checkpoint
(rerun the same command to resume).
"""

import os

# tf.keras is tf_keras (Keras 2), the one Keras this project uses; TensorFlow then does not
# import Keras 3 at start-up (~2.5 s of every run on a 2-core machine).
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import sys  # noqa: E402

from absl import app, flags, logging  # noqa: E402

import data_flags  # noqa: E402

FLAGS = flags.FLAGS
# Flags the task specs read besides the data flags (tasks.TrainingSpec, tasks/*.py).
TASK_FLAGS = ("reduced_tail", "output_stride", "seg_head", "seg_filters", "seg_gate",
              "seg_align_corners", "seg_pool_crop", "seg_pool_stride", "seg_global_pool")

# Model
# A string checked against the task registry in main(): importing the registry here would
# import TensorFlow before absl parses the flags, and a mistyped flag would take ~10 s to fail.
flags.DEFINE_string("task", "classification",
                    "classification, SSDLite object detection (paper 6.3), or LR-ASPP semantic "
                    "segmentation (paper 6.4): a task of mobilenet_v3/tasks/ that trains.")
flags.DEFINE_enum("model", "large", ["large", "small"], "MobileNetV3 variant.")
flags.DEFINE_bool("reduced_tail", False, "Halve the channels between C4 and C5 (the paper's "
                  "detection backbone, Table 6 dagger); with --task=segmentation: RF2, the "
                  "last stage halved with its expansion (DeepLab's mobilenet_v3_*_seg).")
flags.DEFINE_enum("seg_head", "lraspp", ["lraspp", "raspp"],
                  "Segmentation head: LR-ASPP (paper Fig. 10) or R-ASPP (MobileNetV2's).")
flags.DEFINE_integer("seg_filters", None, "Segmentation head width (default: 128 for lraspp, "
                     "256 for raspp).")
flags.DEFINE_enum("seg_gate", "hard_sigmoid", ["hard_sigmoid", "sigmoid"], "LR-ASPP gate: "
                  "DeepLab's hard sigmoid (image_se_uses_qsigmoid) or torchvision's sigmoid.")
flags.DEFINE_bool("seg_align_corners", True, "Segmentation bilinear resizes with "
                  "align_corners=True (DeepLab's); false: half-pixel centres (torchvision's).")
flags.DEFINE_list("seg_pool_crop", ["769", "769"], "LR-ASPP gate pool: DeepLab's "
                  "image_pooling_crop_size H,W (kernel (crop - 1) // output_stride + 1, "
                  "clipped to the map).")
flags.DEFINE_list("seg_pool_stride", ["4", "5"], "LR-ASPP gate pool stride in feature cells "
                  "(DeepLab's image_pooling_stride).")
flags.DEFINE_bool("seg_global_pool", False, "LR-ASPP gate pools the whole map (torchvision's "
                  "LRASPP) instead of DeepLab's window.")
flags.DEFINE_enum("output_stride", "16", ["8", "16", "32"],
                  "Segmentation: backbone output stride (16: last stage atrous, the paper's).")
flags.DEFINE_float("alpha", 1.0, "Width multiplier.")
flags.DEFINE_string("arch", None, "Train the rows of another network instead of --alpha/"
                    "--minimalistic: a run folder or a model_config.json whose architecture "
                    "(e.g. NetAdapt's result, netadapt.py) is taken as written; --model must be "
                    "its table.")
flags.DEFINE_bool("minimalistic", False, "3x3 kernels, ReLU, no SE (TF-Slim's variant).")
flags.DEFINE_integer("resolution", 224, "Input resolution (square).")
flags.DEFINE_float("dropout", 0.2, "Dropout rate before the classifier.")
flags.DEFINE_float("weight_decay", 1e-5, "L2 on conv/dense kernels, not depthwise (slim).")
flags.DEFINE_float("bn_momentum", 0.99, "BatchNorm moving-average decay.")
# Transfer learning
flags.DEFINE_string("init_weights", None,
                    "Start from pretrained weights (a new run only; a resume restores its "
                    "checkpoint): an official .tflite / .tgz / TF-Slim checkpoint, a "
                    "keras.applications .h5, or a convert folder / train.py model_dir / "
                    "model.keras. Its architecture must be --model/--alpha/--minimalistic. "
                    "Loads the backbone and the head conv; the logits too when the file has "
                    "the dataset's classes, else they are new. Detection / segmentation: "
                    "also a whole detector (OD API SSDLite model.ckpt, its .mlmodel or a float "
                    "detector .tflite, our detection run) or segmenter (DeepLab "
                    "frozen_inference_graph.pb or model.ckpt, our segmentation run), or a zoo "
                    ".tar.gz holding one; class layers new when the classes "
                    "differ; a classification file gives the backbone, rows of another shape "
                    "(reduced tail, RF2) new.")
flags.DEFINE_float("freeze_backbone_epochs", 0.0,
                   "Train only the head (backbone frozen, its BatchNorm in inference mode) "
                   "for this many epochs, then everything. Needs --init_weights.")
# Data
data_flags.define("synthetic", "Training data (default: the built-in synthetic set).",
                  training=True)
# Recipe
flags.DEFINE_integer("batch_size", 4096, "Global batch size (all replicas together).")
flags.DEFINE_integer("eval_batch_size", None, "Global evaluation batch (default: batch_size).")
flags.DEFINE_float("epochs", 350.0, "Training epochs (ignored when --train_steps is set).")
flags.DEFINE_integer("train_steps", None, "Training steps; overrides --epochs.")
flags.DEFINE_float("base_learning_rate", 0.1, "Learning rate at --base_batch_size images.")
flags.DEFINE_integer("base_batch_size", 4096, "Batch the base rate refers to (linear scaling).")
flags.DEFINE_float("warmup_epochs", 5.0, "Linear warm-up epochs.")
flags.DEFINE_float("decay_epochs", 3.0, "Epochs between learning-rate decays.")
flags.DEFINE_float("decay_rate", 0.99, "Learning-rate factor per decay.")
flags.DEFINE_enum("optimizer", "rmsprop", ["rmsprop", "momentum"], "rmsprop: the paper's; "
                  "momentum: SGD with momentum (the OD API's SSDLite recipe, DeepLab's).")
flags.DEFINE_float("momentum", None, "Momentum of either optimizer (default 0.9; "
                   "--rmsprop_momentum is the same setting under its older name).")
flags.DEFINE_enum("schedule", "exponential", ["exponential", "cosine", "poly"],
                  "exponential: the paper's (--decay_epochs/--decay_rate); cosine: the OD "
                  "API's cosine decay to 0 at the last step; poly: DeepLab's "
                  "(1 - t/T)^--poly_power.")
flags.DEFINE_integer("warmup_steps", None, "Warm-up in steps (overrides --warmup_epochs; the "
                     "OD API and DeepLab count steps).")
flags.DEFINE_float("warmup_start", 0.0, "cosine/poly: warm-up starts at this fraction of the "
                   "rate (the OD API's warmup_learning_rate / learning_rate_base).")
flags.DEFINE_float("poly_power", 0.9, "poly: the power (DeepLab's learning_power).")
flags.DEFINE_float("rmsprop_momentum", 0.9, "RMSProp momentum.")
flags.DEFINE_float("rmsprop_rho", 0.9, "RMSProp decay (rho).")
flags.DEFINE_float("rmsprop_epsilon", 0.002, "RMSProp epsilon (inside the sqrt, TF style).")
flags.DEFINE_float("label_smoothing", 0.1, "Label smoothing.")
flags.DEFINE_bool("ema", True, "Keep an EMA of the weights; evaluate and export it.")
flags.DEFINE_float("ema_momentum", 0.9999, "EMA decay.")
flags.DEFINE_bool("ema_warmup", True, "Slim's EMA warm-up: decay min(d, (1+t)/(10+t)).")
# Running
flags.DEFINE_string("model_dir", None, "Checkpoints, summaries and the final model.")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker", "tpu"],
                  "tf.distribute strategy (multi_worker reads TF_CONFIG).")
flags.DEFINE_string("tpu", None, "TPU name or grpc:// address (--strategy=tpu).")
flags.DEFINE_enum("precision", "auto", ["auto", "float32", "mixed_float16", "mixed_bfloat16"],
                  "auto: bfloat16 on TPU, float32 elsewhere; mixed_float16 for GPUs.")
flags.DEFINE_integer("checkpoint_every_steps", 1000, "Checkpoint cadence.")
flags.DEFINE_integer("keep_checkpoints", 5, "Checkpoints kept.")
flags.DEFINE_integer("eval_every_steps", 0, "Evaluation cadence (0: only at the end).")
flags.DEFINE_integer("log_every_steps", 100, "Progress line / summary cadence.")
flags.DEFINE_integer("steps_per_loop", 1, "Steps per tf.function call (e.g. 100 on TPU).")
flags.DEFINE_integer("seed", 0, "Seed of data order, augmentation and initialisation.")
flags.DEFINE_bool("deterministic", False, "Enable TF op determinism (bit-identical reruns).")
flags.DEFINE_bool("allow_changed_settings", False,
                  "Resume a model_dir although --batch_size, --seed, the schedule, optimizer or "
                  "data settings differ from its train_config.json (kept as a dated copy).")
flags.DEFINE_integer("logical_cpus", 0,
                     "Split the CPU into this many logical devices (testing mirrored on CPU).")


def config_from_flags():
    from mobilenet_v3 import ModelConfig
    from mobilenet_v3.training.optimizer import OptimizerConfig
    from mobilenet_v3.training.schedule import ScheduleConfig
    from mobilenet_v3.training import TrainConfig
    if not FLAGS.model_dir:
        raise ValueError("--model_dir is required (checkpoints and the final model go there)")
    from mobilenet_v3 import tasks
    spec, options = tasks.get(FLAGS.task), data_flags.options(TASK_FLAGS)
    model = ModelConfig.from_flat(name=FLAGS.model, alpha=FLAGS.alpha,
                                  minimalistic=FLAGS.minimalistic, dropout_rate=FLAGS.dropout,
                                  weight_decay=FLAGS.weight_decay, bn_momentum=FLAGS.bn_momentum,
                                  **spec.training.model_options(options))
    if FLAGS.arch:
        model = _with_arch(model, FLAGS.arch)
    return TrainConfig(
        model_dir=FLAGS.model_dir,
        model=model,
        data=spec.data_config(options, FLAGS.resolution, FLAGS.seed),
        schedule=ScheduleConfig(base_learning_rate=FLAGS.base_learning_rate,
                                base_batch_size=FLAGS.base_batch_size,
                                warmup_epochs=FLAGS.warmup_epochs,
                                decay_epochs=FLAGS.decay_epochs, decay_rate=FLAGS.decay_rate,
                                kind=FLAGS.schedule, warmup_steps=FLAGS.warmup_steps,
                                warmup_start=FLAGS.warmup_start, poly_power=FLAGS.poly_power),
        optimizer=OptimizerConfig(name=FLAGS.optimizer, momentum=FLAGS.rmsprop_momentum
                                  if FLAGS.momentum is None else FLAGS.momentum,
                                  rho=FLAGS.rmsprop_rho,
                                  epsilon=FLAGS.rmsprop_epsilon, use_ema=FLAGS.ema,
                                  ema_momentum=FLAGS.ema_momentum, ema_warmup=FLAGS.ema_warmup),
        global_batch_size=FLAGS.batch_size, epochs=FLAGS.epochs, train_steps=FLAGS.train_steps,
        label_smoothing=FLAGS.label_smoothing, eval_batch_size=FLAGS.eval_batch_size,
        eval_every_steps=FLAGS.eval_every_steps,
        checkpoint_every_steps=FLAGS.checkpoint_every_steps,
        keep_checkpoints=FLAGS.keep_checkpoints, log_every_steps=FLAGS.log_every_steps,
        steps_per_loop=FLAGS.steps_per_loop, strategy=FLAGS.strategy, tpu=FLAGS.tpu,
        precision=FLAGS.precision, seed=FLAGS.seed, deterministic=FLAGS.deterministic,
        allow_changed_settings=FLAGS.allow_changed_settings,
        init_weights=FLAGS.init_weights, freeze_backbone_epochs=FLAGS.freeze_backbone_epochs)


def _with_arch(model, path: str):
    """`model` building the rows recorded at `path` (a run folder or a model_config.json)."""
    from mobilenet_v3.training import run_dir as run_dir_lib
    try:
        found = run_dir_lib.recorded_config(path)
    except ValueError as e:
        raise ValueError(f"--arch={e}") from None
    if found.name != model.name:
        raise ValueError(f"--arch={path} is a MobileNetV3-{found.name.capitalize()}: set "
                         f"--model={found.name}")
    if FLAGS["alpha"].present or FLAGS.minimalistic:
        raise ValueError("--arch gives every channel: leave out --alpha and --minimalistic")
    from mobilenet_v3.search import arch as arch_lib
    return arch_lib.with_spec(model, arch_lib.spec_of(found))


def _split_cpu(count: int):
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * count)


def main(argv):
    if len(argv) > 1:
        print(f"train.py: unexpected arguments {argv[1:]} (flags are --name=value)",
              file=sys.stderr)
        return 1
    from mobilenet_v3 import tasks
    if FLAGS.task not in tasks.trainable_names():
        print(f"train.py: --task must be one of {', '.join(tasks.trainable_names())}, got "
              f"{FLAGS.task!r}", file=sys.stderr)
        return 1
    training = tasks.get(FLAGS.task).training
    try:
        config = config_from_flags()
        config.validate()
        training.check(config)
    except ValueError as e:
        print(f"train.py: {e}", file=sys.stderr)
        return 1
    logging.set_verbosity(logging.WARNING)
    if FLAGS.logical_cpus:
        _split_cpu(FLAGS.logical_cpus)
    from mobilenet_v3 import training as trainer
    from mobilenet_v3.data.imagenet import DatasetNotPreparedError
    import tensorflow as tf
    try:
        task = training.make_task(config, data_flags.options(TASK_FLAGS))
        result = trainer.Trainer(config, task=task).run()
    except (DatasetNotPreparedError, ValueError) as e:
        print(f"train.py: {e}", file=sys.stderr)
        return 1
    except (OSError, tf.errors.OpError) as e:     # full disk, read-only or vanished folder
        reason = getattr(e, "message", None) or e.strerror or str(e)
        print(f"train.py: could not read or write {getattr(e, 'filename', None) or 'a file'} "
              f"({reason}); completed checkpoints in {config.model_dir} are kept: fix the "
              "cause and rerun the same command to resume", file=sys.stderr)
        return 1
    if result.get("preempted"):
        return trainer.PREEMPTED_EXIT_CODE
    print(f"final (EMA weights: {result['ema']}): {training.final_metrics(result)} on "
          f"{result['examples']} held-out images; model saved to {config.model_dir}/final",
          flush=True)
    return 0


if __name__ == "__main__":
    flags.mark_flag_as_required("model_dir")
    app.run(main)
