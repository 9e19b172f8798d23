"""Cost of an SSDLite detector laid out like the classifier tables: backbone rows, then one
row per head part (extra feature layers, box and class predictors per feature map)."""

import dataclasses

from mobilenet_v3.analysis import cost as cost_lib
from mobilenet_v3.analysis.table import Row, table_rows
from mobilenet_v3.modeling.heads.ssdlite import DetectorConfig, build_ssdlite


def _head_key(name: str) -> str:
    return "_".join(name.split("_")[:2])      # ssd_extra2_dw_bn -> ssd_extra2


def summarize_detector(config: DetectorConfig) -> dict:
    """JSON-able summary: madds, params, trainable_params, weight_params (outside BN, the
    paper's Table 6 count), the backbone / head split, and the rows."""
    costs = cost_lib.profile(build_ssdlite(config))
    backbone = [c for c in costs if not c.name.startswith("ssd_")
                and c.name not in ("box_encodings", "class_logits")]
    head = [c for c in costs if c not in backbone]
    rows = table_rows(config.model, backbone)
    head_rows = {}
    for c in head:
        key = _head_key(c.name)
        if key not in head_rows:
            shape = "x".join(str(d) for d in c.input_shape)
            head_rows[key] = Row(key, shape, "SSDLite " + key[4:], "-", "-", "-", "-", "-")
        head_rows[key].madds += c.madds
        head_rows[key].params += c.params
    rows += [r for r in head_rows.values() if r.madds or r.params]
    totals, parts = cost_lib.totals(costs), {}
    for part, group in (("backbone", backbone), ("head", head)):
        t = cost_lib.totals(group)
        parts[part] = {"madds": t.madds, "weight_params": t.weight_params}
    model = config.model
    return {
        "model": model.name, "head": "ssdlite", "alpha": model.alpha,
        "resolution": model.input_shape[0], "minimalistic": model.minimalistic,
        "reduced_tail": model.backbone.reduced_tail, "classes": config.classes,
        "anchors": int(build_anchor_count(config)),
        "madds": totals.madds, "params": totals.params,
        "trainable_params": totals.trainable_params, "weight_params": totals.weight_params,
        "parts": parts, "rows": [dataclasses.asdict(r) for r in rows],
    }


def build_anchor_count(config: DetectorConfig) -> int:
    from mobilenet_v3.modeling.heads.ssdlite import feature_map_sizes
    h, w = config.model.input_shape[:2]
    sizes = feature_map_sizes(h, w, config.ssd.num_layers)
    return sum(a * b * len(s) for (a, b), s in zip(sizes, config.ssd.box_specs()))
