"""DeepLab's MobileNetV3-Small LR-ASPP imported into our segmenter vs the original frozen graph,
with DeepLab's head settings (hard-sigmoid gate, align_corners resizes) and without them.

    python -m benchmark.deeplab_head_fidelity [--photos=158] [--output_json=...]

Both run at the graph's own 513x1025 on the same canvas (each photo centre-cropped to 513:1025
and resized to fill it, as the original's ImageTensor input takes it); the original's output
is its SemanticPredictions (the argmax of its 513x1025 logits). Photos: every COCO photo of
../shared/datasets/coco_mini (train2017 and val2017: nothing here is trained), then the
ImageNet samples, up to --photos. Agreement = share of pixels with the original's class;
non-background = the same over the pixels the original does not call background.
"""

import glob
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared")
GRAPH = os.path.join(SHARED, "models", "deeplab_mnv3_small_lraspp_5class",
                     "frozen_inference_graph.pb")
flags.DEFINE_integer("photos", 158, "How many real photos to compare on.")
flags.DEFINE_string("output_json", None, "Also write the results here.")

# (row name, head settings): DeepLab's, and each setting alone left at torchvision's form.
HEADS = (("DeepLab's head (hard sigmoid, align_corners)", {}),
         ("sigmoid gate", {"gate": "sigmoid"}),
         ("half-pixel resizes", {"align_corners": False}),
         ("both (our head before this change)", {"gate": "sigmoid", "align_corners": False}))


def photo_files(count):
    coco = os.path.join(SHARED, "datasets", "coco_mini")
    files = sorted(glob.glob(os.path.join(coco, "*", "*.jpg")))
    files += sorted(glob.glob(os.path.join(SHARED, "datasets", "imagenet_samples", "*",
                                           "*.jpg")))
    return files[:count]


def main(argv):
    del argv
    if not os.path.isfile(GRAPH):
        print(f"deeplab_head_fidelity: {GRAPH} not found", file=sys.stderr)
        return 1
    import dataclasses
    import numpy as np
    import tensorflow as tf
    from mobilenet_v3.modeling.heads.lraspp import build_segmenter
    from mobilenet_v3.weights import deeplab_graph
    files = photo_files(FLAGS.photos)
    size = deeplab_graph.GRAPH_SIZE
    images = [deeplab_graph.photo_canvas(f, size) for f in files]
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(deeplab_graph.read_graph_def(GRAPH), name="")
    with tf.compat.v1.Session(graph=graph) as session:
        original = [session.run(deeplab_graph.OUTPUT_TENSOR,
                                {deeplab_graph.INPUT_TENSOR: image[None]})[0]
                    for image in images]
    weights = deeplab_graph.read_frozen_graph(GRAPH)
    base = deeplab_graph.deeplab_small_config()
    rows = []
    for name, settings in HEADS:
        config = dataclasses.replace(base, seg=dataclasses.replace(base.seg, **settings))
        model = build_segmenter(config)
        deeplab_graph.load_into(model, weights)
        same = total = same_fg = total_fg = 0
        worst = 1.0
        for image, reference in zip(images, original):
            logits = model(deeplab_graph.pad_like_deeplab(image)[None], training=False)
            ours = np.argmax(logits[0].numpy(), -1)
            agree = ours == reference
            fg = reference != 0
            same, total = same + agree.sum(), total + agree.size
            same_fg, total_fg = same_fg + agree[fg].sum(), total_fg + fg.sum()
            worst = min(worst, float(agree.mean()))
        rows.append({"head": name, "settings": settings, "photos": len(images),
                     "agreement": float(same / total),
                     "non_background_agreement": float(same_fg / total_fg),
                     "worst_photo": worst})
    print(f"\n{len(images)} real photos at {size[0]}x{size[1]}, argmax agreement with the "
          "original frozen graph\n")
    print("| head | pixels | non-background pixels | worst photo |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['head']} | {100 * r['agreement']:.3f}% | "
              f"{100 * r['non_background_agreement']:.3f}% | {100 * r['worst_photo']:.2f}% |")
    if FLAGS.output_json:
        from mobilenet_v3.files import atomic_write_json
        atomic_write_json(FLAGS.output_json, {"results": rows}, True)
    return 0


if __name__ == "__main__":
    app.run(main)
