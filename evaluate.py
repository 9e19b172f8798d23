"""Score trained models and .tflite files of any task on the same data.

    # classification: top-1 / top-5 (TF-Slim's evaluation preprocessing)
    python evaluate.py --model=/tmp/small --model=v3-small_224_1.0_uint8.tflite --image_folder=PHOTOS
    python evaluate.py --model=runs/mine --data_dir=TFDS_DIR --output_json=report.json
    # detection: COCO mAP with pycocotools under the official protocol
    python evaluate.py --model=runs/ssdlite --model=ssdlite_int8.tflite \
        --annotations=instances_val2017.json --images=val2017/
    # segmentation: mIoU at each image's own aspect ratio, 255 ignored
    python evaluate.py --model=runs/lraspp --model=lraspp_int8.tflite --mask_folder=DIR

Every --model (a .tflite, a .keras with model_config.json beside it, a `convert` folder or a
train.py model_dir) must be of the same task, found from its recorded head_type or the file's
outputs. Exit codes: 0 done, 1 bad input (message on stderr).
"""

import os

# tf.keras is tf_keras (Keras 2), the one Keras this project uses; TensorFlow then does not
# import Keras 3 at start-up (~2.5 s of every run on a 2-core machine).
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import sys  # noqa: E402

from absl import app, flags, logging  # noqa: E402

flags.DEFINE_multi_string("model", None, ".tflite, .keras (model_config.json beside it) or a "
                          "folder (convert --output / train.py model_dir); repeatable.")
flags.DEFINE_string("image_folder", None, "Classification: <root>/<wnid>/*.jpg (default: tfds "
                    "imagenet2012).")
flags.DEFINE_string("class_map", None, "Classification: file with one wnid (folder name) per "
                    "line in label order (default: the sorted 1000 ILSVRC-2012 wnids).")
flags.DEFINE_string("data_dir", None, "Classification: tfds data_dir of imagenet2012.")
flags.DEFINE_string("manual_dir", None, "Classification: folder with the ILSVRC2012 archives.")
flags.DEFINE_string("annotations", None, "Detection: an official COCO instances_*.json.")
flags.DEFINE_string("images", None, "Detection: the folder of its images.")
flags.DEFINE_enum("category_ids", "auto", ["auto", "identity", "sorted"],
                  "Detection: class slot -> category id. identity: slot k is id k (Google's "
                  "91-slot COCO detectors); sorted: the k-th category by id (train.py on a "
                  "COCO JSON); auto: whichever fits the class count.")
flags.DEFINE_enum("nms", "per_class", ["per_class", "fast"], "Detection, Keras models: per-class "
                  "NMS (the OD API's evaluation) or fast NMS (what the .tflite op does).")
flags.DEFINE_string("mask_folder", None, "Segmentation: images/ + masks/ (class ids, 255 = "
                    "ignore).")
flags.DEFINE_string("eval_size", None, "Segmentation, Keras models: the HxW the network runs at "
                    "(default: its trained size); images are fitted in with their aspect kept.")
flags.DEFINE_integer("batch_size", 50, "Images per batch.")
flags.DEFINE_integer("max_examples", 0, "Score only the first N images (0: all).")
flags.DEFINE_integer("num_threads", 1, "TFLite interpreter threads.")
flags.DEFINE_string("output_json", None, "Also write the results here.")
FLAGS = flags.FLAGS


def _line(result):
    if "top1" in result:
        return (f"top-1 {result['top1']:.4f}  top-5 {result['top5']:.4f}  "
                f"({result['examples']} images, {result['classes']} classes)")
    if "mAP" in result:
        return (f"mAP {result['mAP']:.4f}  mAP@.5 {result['mAP50']:.4f}  ({result['images']} "
                f"images, {result['detections']} detections, NMS {result['nms']})")
    return (f"mIoU {result['mIoU']:.4f}  pixel accuracy {result['pixel_accuracy']:.4f}  "
            f"({result['images']} images at {result['input_size'][0]}x"
            f"{result['input_size'][1]})")


def main(argv):
    if len(argv) > 1:
        print(f"evaluate.py: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 1
    logging.set_verbosity(logging.WARNING)
    if not FLAGS.model:
        print("evaluate.py: --model is required", file=sys.stderr)
        return 1
    from mobilenet_v3 import files, tasks
    from mobilenet_v3.data.imagenet import DatasetNotPreparedError
    from mobilenet_v3.tasks.eval_config import EvalConfig
    try:
        for path in FLAGS.model:
            if not os.path.exists(path):
                raise ValueError(f"model not found: {path!r}")
        kinds = {path: tasks.for_model(path) for path in FLAGS.model}
        names = sorted({spec.name for spec in kinds.values()})
        if len(names) > 1:
            raise ValueError("all --model must be of one task; got " + ", ".join(
                f"{p} ({s.name})" for p, s in kinds.items()))
        class_map = None
        if FLAGS.class_map:
            with open(FLAGS.class_map) as f:
                class_map = [line.strip() for line in f if line.strip()]
        eval_size = None
        if FLAGS.eval_size:
            try:
                eval_size = tuple(int(v) for v in FLAGS.eval_size.lower().split("x"))
            except ValueError:
                raise ValueError(f"--eval_size must be HxW, got {FLAGS.eval_size!r}") from None
        config = EvalConfig(
            max_examples=FLAGS.max_examples, num_threads=FLAGS.num_threads,
            batch_size=FLAGS.batch_size, image_folder=FLAGS.image_folder,
            class_map=class_map, data_dir=FLAGS.data_dir, manual_dir=FLAGS.manual_dir,
            annotations=FLAGS.annotations, images=FLAGS.images,
            category_ids=FLAGS.category_ids, nms=FLAGS.nms, mask_folder=FLAGS.mask_folder,
            eval_size=eval_size)
        report = tasks.get(names[0]).evaluate(FLAGS.model, config)
        if FLAGS.output_json:
            files.atomic_write_json(FLAGS.output_json, report)
    except (DatasetNotPreparedError, FileNotFoundError, ValueError, OSError) as e:
        print(f"evaluate.py: {e}", file=sys.stderr)
        return 1
    for result in report["results"]:
        print(f"{result['model']}: {_line(result)}")
    return 0


if __name__ == "__main__":
    app.run(main)
