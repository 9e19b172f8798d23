"""float16 / dynamic files of the three real networks: agreement with float, COCO mAP.

    python -m mobilenet_v3.weights.convert ../shared/models/v3-small_224_1.0_uint8.tflite \
        --output=/tmp/official_small --classes=1001
    python -m benchmark.weight_only_formats

Google's SSDLite-Small COCO weights (20 val photos check recall, 78 scored for mAP), DeepLab's
LR-ASPP at 257x513 (20 val photos), Google's Small (450 ImageNet photos). Results also in
/tmp/weight_only_formats.json.
"""
import os, json
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np, tensorflow as tf, glob, types
SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared"); COCO = SHARED + "/datasets/coco_mini"
def dphotos(split, count, size):
    from mobilenet_v3.detection.data import eval_preprocess
    files = sorted(glob.glob(os.path.join(COCO, split, "*.jpg")))
    return np.stack([eval_preprocess(tf.io.decode_jpeg(tf.io.read_file(f), 3), size).numpy() for f in files[:count]])
def sphotos(split, count, size):
    from mobilenet_v3.tasks.segmentation import crop_to_aspect
    files = sorted(glob.glob(os.path.join(COCO, split, "*.jpg")))
    return np.stack([crop_to_aspect(tf.io.decode_jpeg(tf.io.read_file(f), 3).numpy(), size) for f in files[:count]])
D = types.SimpleNamespace(SHARED=SHARED, COCO=COCO, photos=dphotos)
S = types.SimpleNamespace(SHARED=SHARED, photos=sphotos)
from mobilenet_v3.export import task_export
from mobilenet_v3.tasks import detection, segmentation
from mobilenet_v3.tasks.eval_config import EvalConfig
from mobilenet_v3.weights import official_ssdlite, deeplab_graph
from mobilenet_v3.modeling.heads.lraspp import build_segmenter
res = {}
# detector
model, config = official_ssdlite.load_official_small(os.path.join(D.SHARED, "models", "ssdlite_mobilenet_v3_small_coco", "ssd_mobilenet.mlmodel"))
size = config.input_shape[0]
check = D.photos("val2017", 20, size)
out = "/tmp/weight_only_formats/det"
opts = task_export.TaskExportConfig(output_dir=out, basename="ssdlite", formats=("float32", "float16", "dynamic"), overwrite=True)
reports = detection.export_model(model, config, [f"c{i}" for i in range(90)], None, check, opts, log=print)
ev = EvalConfig(annotations=os.path.join(D.COCO, "annotations", "instances_val2017.json"), images=os.path.join(D.COCO, "val2017"))
for fmt in ("float32", "float16", "dynamic"):
    r = detection.evaluate([f"{out}/ssdlite_{fmt}.tflite"], ev)["results"][0]
    res[f"detector {fmt}"] = {"recall_vs_float": reports[fmt]["agreement"]["recall"], "mAP": r.get("mAP"), "mAP50": r.get("mAP50"), "partitions": reports[fmt]["xnnpack_partitions"], "MB": reports[fmt]["size_bytes"] / 1e6}
    print(fmt, res[f"detector {fmt}"], flush=True)
# segmenter
h, w = 257, 513
sc = deeplab_graph.deeplab_small_config(h, w, include_preprocessing=False)
sm = build_segmenter(sc); deeplab_graph.load_frozen_graph(sm, os.path.join(S.SHARED, "models", "deeplab_mnv3_small_lraspp_5class", "frozen_inference_graph.pb"))
check = S.photos("val2017", 20, (h, w))
opts = task_export.TaskExportConfig(output_dir="/tmp/weight_only_formats/seg", basename="lraspp", formats=("float32", "float16", "dynamic"), overwrite=True)
reports = segmentation.export_model(sm, sc, (h, w), [f"c{i}" for i in range(sc.classes)], None, check, opts, log=print)
for fmt in reports:
    a = reports[fmt]["agreement"]
    res[f"segmenter {fmt}"] = {"pixel_agreement": a["pixel_agreement"], "non_background": a.get("non_background_agreement"), "partitions": reports[fmt]["xnnpack_partitions"], "MB": reports[fmt]["size_bytes"] / 1e6}
    print(fmt, res[f"segmenter {fmt}"], flush=True)
# classifier (convert.weight_only path)
from mobilenet_v3 import export
from mobilenet_v3.export import convert, folding
from mobilenet_v3.analysis import tflite_inspect
from mobilenet_v3.bench import imagenet_photos as photos
trained = export.load_trained("/tmp/official_small")
fm = folding.rebuild(trained.model, trained.config.for_export("fused", False, None))
_, _, imgs, labels = photos.split()
ref = photos.keras_outputs(fm, imgs)
for fmt in ("float32", "float16", "dynamic"):
    o = tflite_inspect.run(convert.convert(fm, fmt), imgs)
    res[f"classifier {fmt}"] = {"top1": float(np.mean(o.argmax(-1) == labels)), "agreement": float(np.mean(o.argmax(-1) == ref.argmax(-1))), "images": int(len(labels))}
    print(fmt, res[f"classifier {fmt}"], flush=True)
json.dump(res, open("/tmp/weight_only_formats.json", "w"), indent=1)
