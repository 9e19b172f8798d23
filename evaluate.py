"""Top-1 / top-5 of Keras models and .tflite files on ImageNet validation or a <wnid>/*.jpg folder.

    python evaluate.py --model=DIR_OR_.keras --model=file.tflite --image_folder=PHOTOS \
        [--output_json=report.json]
    python evaluate.py --model=... --data_dir=TFDS_DIR [--manual_dir=ARCHIVES]

Every --model is scored on the same images with TF-Slim's evaluation preprocessing. Exit codes:
0 done, 1 bad input (message on stderr).
"""

import sys

from absl import app, flags, logging

flags.DEFINE_multi_string("model", None, ".tflite, .keras (model_config.json beside it) or a "
                          "folder (convert --output / train.py model_dir); repeatable.")
flags.DEFINE_string("image_folder", None, "<root>/<wnid>/*.jpg (default: tfds imagenet2012).")
flags.DEFINE_string("class_map", None, "File with one wnid per line in label order "
                    "(default: the sorted 1000 ILSVRC-2012 wnids).")
flags.DEFINE_string("data_dir", None, "tfds data_dir of imagenet2012.")
flags.DEFINE_string("manual_dir", None, "Folder with the ILSVRC2012 archives.")
flags.DEFINE_integer("batch_size", 50, "Images per batch.")
flags.DEFINE_integer("max_examples", 0, "Score only the first N images (0: all).")
flags.DEFINE_integer("num_threads", 1, "TFLite interpreter threads.")
flags.DEFINE_string("output_json", None, "Also write the results here.")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        print(f"evaluate.py: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 1
    logging.set_verbosity(logging.WARNING)
    if not FLAGS.model:
        print("evaluate.py: --model is required", file=sys.stderr)
        return 1
    from mobilenet_v3.analysis import evaluation
    from mobilenet_v3.data.imagenet import DatasetNotPreparedError
    try:
        class_map = None
        if FLAGS.class_map:
            with open(FLAGS.class_map) as f:
                class_map = [line.strip() for line in f if line.strip()]
        report = evaluation.evaluate(
            FLAGS.model, FLAGS.image_folder, FLAGS.data_dir, FLAGS.manual_dir, class_map,
            FLAGS.batch_size, FLAGS.max_examples, FLAGS.num_threads)
        if FLAGS.output_json:
            evaluation.write_json(report, FLAGS.output_json)
    except (evaluation.EvaluationError, DatasetNotPreparedError, FileNotFoundError,
            ValueError, OSError) as e:
        print(f"evaluate.py: {e}", file=sys.stderr)
        return 1
    for r in report["results"]:
        print(f"{r['model']}: top-1 {r['top1']:.4f}  top-5 {r['top5']:.4f}  "
              f"({r['examples']} images, {r['classes']} classes)")
    return 0


if __name__ == "__main__":
    app.run(main)
