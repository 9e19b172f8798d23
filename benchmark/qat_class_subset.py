"""QAT on a subset of the classes: does the int8 file keep the classes it never saw?

    python -m mobilenet_v3.weights.convert ../shared/models/v3-small_224_1.0_uint8.tflite \
        --output=/tmp/official_small --classes=1001
    python -m benchmark.qat_class_subset --model=/tmp/official_small [--folds=3] \
        [--qat_steps=200] [--qat_batch_size=16] [--losses=...] [--output_json=...]

Google's Small (1001 classes). The 150 classes of ../shared/datasets/imagenet_samples (sorted)
are cut into --folds blocks; for each block, QAT fine-tuning and int8 calibration see the
photos of the other classes only, and the block's photos (never seen by either) are scored.
Over the folds every photo is scored once, by files that never saw its class: 750 photos
instead of 250 for one split (one photo is 0.13 points). Columns: top-1 and top-5 on the unseen
classes, top-1 agreement with float, mean KL(float || file) of the softmax (paired, the least
noisy), and the photos a file gets right that PTQ misses / PTQ gets right that it misses
(the difference is significant only when the two counts are far apart: McNemar).
Rows: float, int8 PTQ (exact calibration, folded h-swish) and one qat_int8 per --losses entry:
`labels` (cross-entropy), `distillation` (the float model's outputs, ranges moving as tfmot
trains them), `distillation_fixed_ranges` (the calibrated ranges kept, weights learn).
"""

import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "/tmp/official_small", "The imported official Small (convert).")
flags.DEFINE_integer("folds", 3, "Blocks of unseen classes (each scored once).")
flags.DEFINE_list("losses", ["distillation", "distillation_fixed_ranges"],
                  "qat_int8 rows: labels, distillation, distillation_fixed_ranges.")
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


def _softmax(logits):
    import numpy as np
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


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
    index = {w: i for i, w in enumerate(imagenet_classes.wnids())}
    config = trained.config.for_export("folded", False, None)
    float_model = folding.rebuild(trained.model, config)
    rows, all_labels = {}, []
    for fold in range(FLAGS.folds):
        unseen = wnids[fold::FLAGS.folds]
        seen = [w for w in wnids if w not in unseen]
        seen_images, _ = _photos(seen, photos.PHOTOS, 1, index)
        score, labels = _photos(unseen, photos.PHOTOS, 1, index)
        all_labels.append(labels)
        rng = np.random.RandomState(fold)
        calibration = seen_images[rng.permutation(len(seen_images))[:FLAGS.calibration_images]]
        out = {"float (Keras)": photos.keras_outputs(float_model, score)}
        out["int8 PTQ"] = tflite_inspect.run(
            convert.convert(float_model, "int8", lambda: iter(calibration), io_dtype=tf.int8),
            score)
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
            for name in FLAGS.losses:
                loss = "labels" if name == "labels" else "distillation"
                qat_model = finetune.qat_finetune(
                    trained.model, trained.config.for_export("folded", False, None,
                                                             batch_size=None),
                    data, steps=FLAGS.qat_steps, batch_size=FLAGS.qat_batch_size,
                    learning_rate=FLAGS.qat_learning_rate, seed=fold,
                    work_dir=os.path.join(work, f"qat_{name}"),
                    calibration_images=calibration, loss=loss,
                    fixed_ranges=name == "distillation_fixed_ranges")
                out[f"qat_int8 ({name})"] = tflite_inspect.run(
                    convert.convert(qat_model, "int8", io_dtype=tf.int8), score)
        for name, o in out.items():
            rows.setdefault(name, []).append(o)
        print(f"fold {fold + 1}/{FLAGS.folds}: {len(unseen)} unseen classes, "
              f"{len(score)} photos", flush=True)
    labels = np.concatenate(all_labels)
    rows = {name: np.concatenate(o).astype(np.float64) for name, o in rows.items()}
    float_out = rows["float (Keras)"]
    float_p = _softmax(float_out)
    ptq_right = rows["int8 PTQ"].argmax(-1) == labels
    print(f"\nGoogle's Small, {FLAGS.folds} folds: QAT / calibration on the other classes' "
          f"photos, each of {len(labels)} photos scored by files that never saw its class; "
          f"{FLAGS.qat_steps} QAT steps x {FLAGS.qat_batch_size}, lr {FLAGS.qat_learning_rate:g}")
    print("\n| model | top-1 unseen | top-5 unseen | agreement with float | KL(float ‖ file) "
          "| right where PTQ is wrong / wrong where PTQ is right |")
    print("|---|---|---|---|---|---|")
    result = {}
    for name, out in rows.items():
        right = out.argmax(-1) == labels
        top5 = float(np.mean(np.any(np.argsort(-out, -1)[:, :5] == labels[:, None], -1)))
        agree = float(np.mean(out.argmax(-1) == float_out.argmax(-1)))
        kl = float(np.mean(np.sum(float_p * (np.log(float_p + 1e-12)
                                             - np.log(_softmax(out) + 1e-12)), -1)))
        gained, lost = int(np.sum(right & ~ptq_right)), int(np.sum(~right & ptq_right))
        print(f"| {name} | {right.mean():.4f} | {top5:.4f} | {agree:.4f} | {kl:.4f} "
              f"| {gained} / {lost} |")
        result[name] = {"top1_unseen": float(right.mean()), "top5_unseen": top5,
                        "agreement_with_float": agree, "kl_from_float": kl,
                        "right_where_ptq_wrong": gained, "wrong_where_ptq_right": lost,
                        "images": int(len(labels))}
    if FLAGS.output_json:
        files.atomic_write_json(FLAGS.output_json, result)
    return 0


if __name__ == "__main__":
    app.run(main)
