"""QAT on a subset of the classes: does the int8 file keep the classes it never saw?

    python -m mobilenet_v3.weights.convert ../shared/models/v3-small_224_1.0_uint8.tflite \
        --output=/tmp/official_small --classes=1001
    python -m benchmark.qat_class_subset --model=/tmp/official_small [--seen_classes=100] \
        [--qat_steps=200] [--qat_batch_size=16] [--output_json=...]

Google's Small (1001 classes). The 150 classes of ../shared/datasets/imagenet_samples are split
in sorted order: the first --seen_classes give the QAT training photos and the int8
calibration photos, the others (never seen by either) are scored, with the float model's top-1
agreement as the paired, less noisy figure. Rows: float, int8 PTQ (exact calibration, folded
h-swish), qat_int8 trained on labels (cross-entropy), qat_int8 trained on the float model's
outputs (distillation, the exporter's default).
"""

import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "/tmp/official_small", "The imported official Small (convert).")
flags.DEFINE_integer("seen_classes", 100, "Classes QAT and calibration see; the rest score.")
flags.DEFINE_integer("qat_steps", 200, "QAT steps (the exporter's default).")
flags.DEFINE_integer("qat_batch_size", 16, "QAT batch.")
flags.DEFINE_float("qat_learning_rate", 1e-6, "QAT constant RMSProp rate (the default).")
flags.DEFINE_integer("calibration_images", 200, "Seen photos that calibrate int8 PTQ.")
flags.DEFINE_string("output_json", None, "Also write the results here.")


def _photos(wnids, root, offset, index):
    import numpy as np
    import tensorflow as tf
    from mobilenet_v3.data import preprocessing
    images, labels = [], []
    for wnid in wnids:
        for name in sorted(os.listdir(os.path.join(root, wnid))):
            if name.lower().endswith(".jpg"):
                image = tf.io.decode_jpeg(tf.io.read_file(os.path.join(root, wnid, name)), 3)
                images.append(preprocessing.eval_preprocess(image, 224).numpy())
                labels.append(index[wnid] + offset)
    return np.stack(images), np.array(labels)


def main(argv):
    del argv
    import numpy as np
    import tensorflow as tf
    from mobilenet_v3 import export, files
    from mobilenet_v3.analysis import tflite_inspect
    from mobilenet_v3.bench import imagenet_photos as photos
    from mobilenet_v3.data import imagenet_classes, pipeline
    from mobilenet_v3.export import convert, folding
    from mobilenet_v3.export.compression import finetune
    if not os.path.isdir(FLAGS.model):
        print(f"qat_class_subset: {FLAGS.model} not found: convert the official Small first "
              "(see the docstring)", file=sys.stderr)
        return 1
    trained = export.load_trained(FLAGS.model)
    wnids = sorted(w for w in os.listdir(photos.PHOTOS)
                   if os.path.isdir(os.path.join(photos.PHOTOS, w)))
    seen, unseen = wnids[:FLAGS.seen_classes], wnids[FLAGS.seen_classes:]
    index = {w: i for i, w in enumerate(imagenet_classes.wnids())}
    seen_images, _ = _photos(seen, photos.PHOTOS, 1, index)
    score, labels = _photos(unseen, photos.PHOTOS, 1, index)
    rng = np.random.RandomState(0)
    calibration = seen_images[rng.permutation(len(seen_images))[:FLAGS.calibration_images]]
    config = trained.config.for_export("folded", False, None)
    float_model = folding.rebuild(trained.model, config)
    float_out = photos.keras_outputs(float_model, score)
    rows = {"float (Keras)": float_out}
    rows["int8 PTQ"] = tflite_inspect.run(
        convert.convert(float_model, "int8", lambda: iter(calibration), io_dtype=tf.int8), score)
    with tempfile.TemporaryDirectory() as work:
        view = os.path.join(work, "seen")
        os.makedirs(view)
        for wnid in seen:
            os.symlink(os.path.abspath(os.path.join(photos.PHOTOS, wnid)),
                       os.path.join(view, wnid))
        class_list = os.path.join(work, "classes.txt")
        files.atomic_write_text(class_list, "\n".join(
            ["background"] + list(imagenet_classes.wnids())) + "\n")
        data = pipeline.DataConfig(source="image_folder", image_folder=view,
                                   class_list=class_list, held_out_fraction=0.2,
                                   image_size=224)
        for loss in ("labels", "distillation"):
            qat_model = finetune.qat_finetune(
                trained.model, trained.config.for_export("folded", False, None,
                                                         batch_size=None),
                data, steps=FLAGS.qat_steps, batch_size=FLAGS.qat_batch_size,
                learning_rate=FLAGS.qat_learning_rate, seed=0,
                work_dir=os.path.join(work, f"qat_{loss}"), calibration_images=calibration,
                loss=loss)
            rows[f"qat_int8 ({loss})"] = tflite_inspect.run(
                convert.convert(qat_model, "int8", io_dtype=tf.int8), score)
    print(f"\nGoogle's Small, QAT / calibration on {len(seen)} classes ({len(seen_images)} "
          f"photos), scored on the other {len(unseen)} classes ({len(score)} photos); "
          f"{FLAGS.qat_steps} QAT steps x {FLAGS.qat_batch_size}, lr {FLAGS.qat_learning_rate:g}")
    print("\n| model | top-1 on unseen classes | top-1 agreement with float |")
    print("|---|---|---|")
    result = {}
    for name, out in rows.items():
        top1 = float(np.mean(out.argmax(-1) == labels))
        agree = float(np.mean(out.argmax(-1) == float_out.argmax(-1)))
        print(f"| {name} | {top1:.4f} | {agree:.4f} |")
        result[name] = {"top1_unseen": top1, "agreement_with_float": agree,
                        "images": int(len(labels))}
    if FLAGS.output_json:
        files.atomic_write_json(FLAGS.output_json, result)
    return 0


if __name__ == "__main__":
    app.run(main)
