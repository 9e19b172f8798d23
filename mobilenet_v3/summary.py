"""Per-row multiply-adds and parameters of a MobileNetV3, laid out like the paper's Table 1/2.

    python -m mobilenet_v3.summary --model=large --alpha=1.0 --resolution=224 [--minimalistic]
        [--classes=1000] [--format=table|json]
    python -m mobilenet_v3.summary --model=large --head=lraspp --reduced_tail \
        --resolution=1024x2048 --classes=19 --format=json      # paper Table 7
"""

import json
import os
import sys
from typing import List, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mobilenet_v3.analysis.table import format_table, summarize, table_rows  # noqa: E402,F401
from mobilenet_v3.modeling.config import MIN_RESOLUTION, ModelConfig  # noqa: E402


def main(argv: Optional[List[str]] = None) -> int:
    from absl import flags  # entry point only: the library itself takes config objects

    fv = flags.FlagValues()
    flags.DEFINE_enum("model", "large", ["large", "small"], "Which network.", flag_values=fv)
    flags.DEFINE_float("alpha", 1.0, "Width multiplier (> 0).", flag_values=fv)
    flags.DEFINE_string("resolution", "224", "Input size: N (square) or HxW, each >= 32.",
                        flag_values=fv)
    flags.DEFINE_boolean("minimalistic", False, "3x3, ReLU, no SE variant.", flag_values=fv)
    flags.DEFINE_integer("classes", 1000, "Number of classes (1001 with background).",
                         flag_values=fv)
    flags.DEFINE_enum("format", "table", ["table", "json"], "Output format.", flag_values=fv)
    flags.DEFINE_enum("head", "classifier", ["classifier", "ssdlite", "lraspp", "raspp"],
                      "classifier, the SSDLite detector (--classes counts the background "
                      "slot: 91 for COCO), or a segmenter: LR-ASPP / R-ASPP at output stride "
                      "16 (paper Table 7).", flag_values=fv)
    flags.DEFINE_boolean("reduced_tail", False, "Halve the channels between C4 and C5 (the "
                         "paper's detection variant, Table 6 dagger); with a segmentation "
                         "head: RF2, the last stage halved with its expansion (DeepLab's "
                         "mobilenet_v3_*_seg).", flag_values=fv)
    flags.DEFINE_integer("filters", None, "Segmentation head width (default 128 for lraspp, "
                         "256 for raspp).", flag_values=fv)
    flags.DEFINE_enum("output_stride", "16", ["8", "16", "32"], "Segmentation: backbone output "
                      "stride (16: the last stage atrous; 32: no atrous).", flag_values=fv)
    try:
        fv(list(argv if argv is not None else sys.argv))
    except flags.Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        size = [int(v) for v in fv.resolution.lower().split("x")]
    except ValueError:
        size = []
    if len(size) == 1:
        size *= 2
    if len(size) != 2 or min(size) < MIN_RESOLUTION:
        print(f"error: --resolution must be N or HxW with each >= {MIN_RESOLUTION}, got "
              f"{fv.resolution!r}", file=sys.stderr)
        return 2
    if fv.head in ("lraspp", "raspp"):
        return _segmenter(fv, size)
    if size[0] != size[1]:
        print(f"error: --head={fv.head} takes a square --resolution, got {fv.resolution!r}",
              file=sys.stderr)
        return 2
    resolution = size[0]
    config = ModelConfig.from_flat(
        name=fv.model, alpha=fv.alpha, input_shape=(resolution, resolution, 3),
        minimalistic=fv.minimalistic, classes=fv.classes, include_preprocessing=False)
    try:
        config.validate()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if fv.head == "ssdlite":
        from mobilenet_v3.analysis.detection_table import summarize_detector
        from mobilenet_v3.modeling.heads.ssdlite import DetectorConfig
        try:
            detector = DetectorConfig.create(
                classes=fv.classes, name=fv.model, alpha=fv.alpha,
                input_shape=(resolution, resolution, 3), minimalistic=fv.minimalistic,
                reduced_tail=fv.reduced_tail, include_preprocessing=False)
            detector.validate()
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        summary = summarize_detector(detector)
    else:
        config = config.replace(reduced_tail=fv.reduced_tail)
        summary = summarize(config)
    if fv.format == "json":
        print(json.dumps(summary, indent=2))
    else:
        print(format_table(summary))
    return 0


def _segmenter(fv, size) -> int:
    from mobilenet_v3.analysis.segmentation_table import summarize_segmenter
    from mobilenet_v3.modeling.heads.lraspp import SegmenterConfig
    try:
        config = SegmenterConfig.create(
            head=fv.head, classes=fv.classes, filters=fv.filters, name=fv.model,
            alpha=fv.alpha, input_shape=(size[0], size[1], 3), minimalistic=fv.minimalistic,
            rf2=fv.reduced_tail, output_stride=int(fv.output_stride),
            include_preprocessing=False)
        config.validate()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    summary = summarize_segmenter(config)
    if fv.format == "json":
        print(json.dumps(summary, indent=2))
    else:
        print(format_table(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
