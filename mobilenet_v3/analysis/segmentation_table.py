"""Cost of a segmenter (LR-ASPP / R-ASPP) laid out like the classifier tables: backbone rows,
then one row per head part (the `seg_` layers grouped by branch)."""

import dataclasses

from mobilenet_v3.analysis import cost as cost_lib
from mobilenet_v3.analysis.table import Row, table_rows
from mobilenet_v3.modeling.heads.lraspp import (PREFIX, SegmenterConfig, build_segmenter,
                                                pool_geometry)

_PARTS = ("aspp0", "pool", "logits", "projection", "aspp", "upsample", "concat", "dropout")


def _head_key(name: str) -> str:
    rest = name[len(PREFIX):]
    for part in _PARTS:
        if rest.startswith(part):
            return PREFIX + (rest if part == "logits" else part).replace("_bn", "").replace(
                "_relu", "")
    return PREFIX + rest


def summarize_segmenter(config: SegmenterConfig) -> dict:
    """JSON-able summary: madds, params, weight_params (outside BN, the paper's Table 7
    count), the backbone / head split, and the rows."""
    costs = cost_lib.profile(build_segmenter(config))
    backbone = [c for c in costs if not c.name.startswith(PREFIX)]
    head = [c for c in costs if c.name.startswith(PREFIX)]
    rows = table_rows(config.model, backbone)
    head_rows = {}
    for c in head:
        key = _head_key(c.name)
        if key not in head_rows:
            shape = "x".join(str(d) for d in c.input_shape)
            head_rows[key] = Row(key, shape, f"{config.seg.head} {key[len(PREFIX):]}",
                                 "-", "-", "-", "-", "-")
        head_rows[key].madds += c.madds
        head_rows[key].params += c.params
    rows += [r for r in head_rows.values() if r.madds or r.params]
    totals, parts = cost_lib.totals(costs), {}
    for part, group in (("backbone", backbone), ("head", head)):
        t = cost_lib.totals(group)
        parts[part] = {"madds": t.madds, "weight_params": t.weight_params}
    model = config.model
    h, w = model.input_shape[:2]
    summary = {
        "model": model.name, "head": config.seg.head, "alpha": model.alpha,
        "resolution": [h, w], "minimalistic": model.minimalistic,
        "rf2": model.backbone.rf2, "output_stride": model.backbone.output_stride,
        "filters": config.seg.width, "classes": config.classes,
        "madds": totals.madds, "params": totals.params,
        "trainable_params": totals.trainable_params, "weight_params": totals.weight_params,
        "parts": parts, "rows": [dataclasses.asdict(r) for r in rows],
    }
    if config.seg.head == "lraspp":
        kernel, stride = pool_geometry(h, w, model.backbone.output_stride, config.seg)
        summary["pool_kernel"], summary["pool_stride"] = list(kernel), list(stride)
    return summary
