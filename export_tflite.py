"""Export any trained model to TFLite: classifiers, SSDLite detectors, LR-ASPP segmenters.

    python export_tflite.py --model=/tmp/mobilenet_v3_demo --output_dir=/tmp/tflite \
        --formats=float32,int8
    python export_tflite.py --model=/tmp/ssdlite_demo --output_dir=/tmp/ssdlite_tflite
    python export_tflite.py --model=/tmp/lraspp_demo --output_dir=/tmp/lraspp_tflite \
        --resolution=512x1024

--model is a train.py model_dir (its final/ EMA model; classifiers also the newest
checkpoint's EMA weights) or a saved .keras file with model_config.json beside it; its task
comes from the head_type recorded there (mobilenet_v3/tasks). Every task exports as float32,
float16, dynamic and int8 (PTQ); classifiers also as qat_int8. One exporter writes them all
(mobilenet_v3/export/task_export.py) with one report schema. Every integer file is guarded:
below its task's agreement with the model it stands for (classification: top-1 agreement;
detection: share of the float detections found; segmentation: pixel agreement) it is kept only
as <name>.rejected.tflite and the export exits 1. Calibration and checks use the training
run's dataset unless --dataset names another. Every file gets a JSON report beside it and the
folder a labels.txt. Exit codes: 0 done, 1 bad input or a rejected file (message on stderr).
"""

import os

# tf.keras is tf_keras (Keras 2), the one Keras this project uses; TensorFlow then does not
# import Keras 3 at start-up (~2.5 s of every run on a 2-core machine).
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import sys  # noqa: E402

from absl import app, flags, logging  # noqa: E402

import data_flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "train.py model_dir or a .keras file.")
flags.DEFINE_string("output_dir", None, "Where the .tflite files and reports go.")
flags.DEFINE_list("formats", ["float32", "int8"],
                  "Any of float32, float16, dynamic, int8, qat_int8.")
flags.DEFINE_string("basename", None, "File name stem (default: mobilenet_v3_<model>_<alpha>_"
                    "<resolution>).")
flags.DEFINE_bool("include_preprocessing", False,
                  "Take [0, 255] input and rescale in the graph (adds MUL+ADD ops).")
flags.DEFINE_enum("classifier_activation", "auto", ["auto", "none", "softmax"],
                  "Classifiers: output probabilities (softmax, what app runtimes show as "
                  "scores) or logits (none); auto: softmax, except qat_int8 (logits).")
flags.DEFINE_enum("io_dtype", "uint8", ["uint8", "int8", "float32"],
                  "Input/output type of classifier int8 and qat_int8 files (uint8: what "
                  "MediaPipe Tasks and the Task Library take; Google's own files are uint8).")
flags.DEFINE_bool("metadata", True, "Write TFLite metadata into every file (input "
                  "normalisation, labels, output meaning, provenance), so that MediaPipe "
                  "Tasks load it as it is.")
flags.DEFINE_enum("hard_swish_form", "auto", ["auto", "fused", "unfused", "folded"],
                  "auto: fused HARD_SWISH for float formats, folded (x * ReLU6(x+3), 1/6 in "
                  "the next conv) for int8 / qat_int8.")
flags.DEFINE_integer("calibration_images", 200, "int8 PTQ representative images (and QAT's "
                     "starting ranges), from the training split.")
flags.DEFINE_enum("calibration", "exact", ["exact", "converter"],
                  "int8 PTQ activation ranges: exact (measured without the converter "
                  "calibrator's buffer-sharing bug) or the converter's own.")
flags.DEFINE_float("min_int8_agreement", None, "Guard: an int8 / qat_int8 file whose agreement "
                   "on the check images with the float model (qat_int8: the QAT Keras model) "
                   "is below this is not written and the export exits 1. Default per task: "
                   "classification top-1 agreement 0.6 (<= 100 classes: 0.9), detection recall of the float "
                   "detections 0.9, segmentation pixel agreement 0.98; 0 turns it off.")
flags.DEFINE_integer("max_float_blocks", None, "int8: when pure int8 falls short of the "
                     "task's target agreement, at most this many blocks (table rows, head "
                     "layers) are kept in float, chosen by their measured harm "
                     "(export/mixed_precision.py); 0 = pure int8. Default: detection and "
                     "segmentation 8, classification 0 (its pure int8 keeps float top-1).")
flags.DEFINE_string("resolution", None, "Segmentation: export size HxW (default: trained).")
flags.DEFINE_enum("nms", None, ["fast", "per_class"], "Detection: the file's NMS: fast (one "
                  "class per box, TFLite's and the OD API export's default) or per_class (the "
                  "op's use_regular_nms; slower on phones). Default: the model's setting.")
flags.DEFINE_integer("check_images", 64, "Held-out images compared with the Keras model.")
flags.DEFINE_integer("eval_images", 0, "Report top-1 over this many held-out images.")
flags.DEFINE_integer("qat_steps", 200, "qat_int8: fine-tuning steps.")
flags.DEFINE_integer("qat_batch_size", 32, "qat_int8: fine-tuning batch.")
flags.DEFINE_float("qat_learning_rate", 1e-6, "qat_int8: constant RMSProp rate (its first "
                   "steps move every weight by ~3x the rate: 1e-5 cost Google's Small 9 points "
                   "in 30 steps, 1e-4 wrecks it; benchmark/RESULTS.md).")
flags.DEFINE_enum("qat_loss", "distillation", ["distillation", "labels"], "qat_int8: learn the "
                  "float model's outputs (distillation: fine-tuning on a subset of the classes "
                  "keeps the others) or the labels (cross-entropy).")
flags.DEFINE_bool("overwrite", False, "Replace existing files.")
flags.DEFINE_integer("seed", 0, "Seed of the calibration sample and QAT.")
# Data (default: the training run's)
data_flags.define(None, "Calibration/check data (default: what the model was trained on).",
                  training=False)


def main(argv):
    if len(argv) > 1:
        print(f"export_tflite.py: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 1
    logging.set_verbosity(logging.WARNING)
    if not FLAGS.model or not FLAGS.output_dir:
        print("export_tflite.py: --model and --output_dir are required", file=sys.stderr)
        return 1
    from mobilenet_v3 import export, tasks
    from mobilenet_v3.data.imagenet import DatasetNotPreparedError
    try:
        task = tasks.for_model(FLAGS.model)
        resolution = _resolution(FLAGS.resolution)
    except (ValueError, OSError) as e:
        print(f"export_tflite.py: {e}", file=sys.stderr)
        return 1
    config = export.ExportConfig(
        output_dir=FLAGS.output_dir, formats=tuple(FLAGS.formats), basename=FLAGS.basename,
        include_preprocessing=FLAGS.include_preprocessing,
        classifier_activation=FLAGS.classifier_activation, io_dtype=FLAGS.io_dtype,
        metadata=FLAGS.metadata,
        hard_swish_form=None if FLAGS.hard_swish_form == "auto" else FLAGS.hard_swish_form,
        calibration_images=FLAGS.calibration_images, calibration=FLAGS.calibration,
        min_int8_agreement=FLAGS.min_int8_agreement, check_images=FLAGS.check_images,
        eval_images=FLAGS.eval_images, qat_steps=FLAGS.qat_steps,
        qat_batch_size=FLAGS.qat_batch_size, qat_learning_rate=FLAGS.qat_learning_rate,
        qat_loss=FLAGS.qat_loss,
        overwrite=FLAGS.overwrite, seed=FLAGS.seed, max_float_blocks=FLAGS.max_float_blocks,
        resolution=resolution, nms=FLAGS.nms)
    try:
        config.validate()
        bad = [f for f in config.formats if f not in task.formats]
        if bad:
            raise export.ExportError(f"{FLAGS.model} is a {task.name} model: it exports as "
                                     f"{', '.join(task.formats)}, not {', '.join(bad)}")
        from mobilenet_v3.training import run_dir
        size = run_dir.model_record(FLAGS.model).get("input_shape", [None])[0]
        task.export(FLAGS.model, config,
                    data_flags.task_data_config(task.name, size, FLAGS.seed))
    except (export.ExportError, FileExistsError, FileNotFoundError, DatasetNotPreparedError,
            ValueError) as e:
        print(f"export_tflite.py: {e}", file=sys.stderr)
        return 1
    except OSError as e:          # a read-only or full output folder while writing
        print(f"export_tflite.py: could not write {e.filename or FLAGS.output_dir} "
              f"({e.strerror or e}); files already complete are kept and a rerun of the same "
              "command completes the rest", file=sys.stderr)
        return 1
    return 0


def _resolution(text):
    if not text:
        return None
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--resolution must be HxW, got {text!r}") from None
    if min(h, w) < 32:
        raise ValueError(f"--resolution must be at least 32x32, got {text!r}")
    return h, w


if __name__ == "__main__":
    app.run(main)
