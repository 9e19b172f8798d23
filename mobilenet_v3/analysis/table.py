"""The paper's Table 1/2 layout of a network's cost: one row per table row, with totals.

Sums analysis.cost's per-layer MAdds and parameters by the table row each layer belongs to.
"""

import dataclasses
from typing import List

from mobilenet_v3.analysis import cost as cost_lib
from mobilenet_v3.modeling import naming
from mobilenet_v3.modeling.builders import build_model
from mobilenet_v3.modeling.config import ModelConfig
from mobilenet_v3.specs import HS, RE

_NL = {HS: "HS", RE: "RE", None: "-"}


@dataclasses.dataclass
class Row:
    """One row of the table: a stem/bneck/last-stage entry with its summed cost."""

    key: str
    input: str
    operator: str
    exp: str
    out: str
    se: str
    nl: str
    stride: str
    madds: int = 0
    params: int = 0


def _describe(config: ModelConfig):
    """Maps a layer-name prefix to the paper's description of that row."""
    arch = config.scaled_arch
    spec = arch.spec
    rows = {naming.STEM: ("conv2d 3x3", "-", arch.stem_channels, "-", spec.stem_nl, 2)}
    for b in arch.blocks:
        rows[naming.bneck(b.index)] = (f"bneck {b.kernel}x{b.kernel}", b.exp, b.out,
                                   "yes" if b.se_channels else "-", b.nl, b.stride)
    rows[naming.LAST_CONV] = ("conv2d 1x1", "-", arch.last_conv_channels, "-", spec.last_conv_nl, 1)
    rows[naming.POOL] = ("avg pool", "-", "-", "-", None, 1)
    rows[naming.HEAD] = ("conv2d 1x1, no BN", "-", arch.head_channels, "-", spec.head_nl, 1)
    rows[naming.LOGITS] = ("conv2d 1x1, no BN", "-", config.classes, "-", None, 1)
    return rows


def table_rows(config: ModelConfig,
               costs: List[cost_lib.LayerCost]) -> List[Row]:
    """Sums the profiler's per-layer costs of the model built from `config` into table rows."""
    described = _describe(config)
    rows: List[Row] = []
    for cost in costs:
        key = naming.row_of(cost.name)
        if key in described and (not rows or rows[-1].key != key):
            op, exp, out, se, nl, stride = described[key]
            h, w, c = cost.input_shape
            rows.append(Row(key, f"{h}x{w}x{c}", op, str(exp), str(out), se, _NL[nl],
                            str(stride)))
        if rows:  # layers outside any row (dropout, softmax) add to the row before them
            rows[-1].madds += cost.madds
            rows[-1].params += cost.params
    return rows


def summarize(config: ModelConfig) -> dict:
    """The JSON-able summary: rows and totals (madds, params, trainable_params, weight_params)."""
    costs = cost_lib.profile(build_model(config))
    totals = cost_lib.totals(costs)
    return {
        "model": config.name, "alpha": config.alpha, "resolution": config.input_shape[0],
        "minimalistic": config.minimalistic, "classes": config.classes,
        "madds": totals.madds, "params": totals.params,
        "trainable_params": totals.trainable_params, "weight_params": totals.weight_params,
        "rows": [dataclasses.asdict(r) for r in table_rows(config, costs)],
    }


def format_table(summary: dict) -> str:
    header = ("#", "input", "operator", "exp", "out", "SE", "NL", "s", "MAdds", "params")
    lines = [header]
    for i, r in enumerate(summary["rows"]):
        lines.append((str(i), r["input"], r["operator"], r["exp"], r["out"], r["se"], r["nl"],
                      r["stride"], f"{r['madds']:,}", f"{r['params']:,}"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.rjust(w) if j >= 8 else cell.ljust(w)
                      for j, (cell, w) in enumerate(zip(line, widths))) for line in lines]
    variant = "-minimalistic" if summary["minimalistic"] else ""
    text.insert(0, f"MobileNetV3-{summary['model'].capitalize()}{variant} alpha={summary['alpha']}"
                   f" resolution={summary['resolution']} classes={summary['classes']}")
    text.append(f"total MAdds: {summary['madds']:,} ({summary['madds'] / 1e6:.1f}M)")
    text.append(f"total params: {summary['params']:,} ({summary['params'] / 1e6:.2f}M), "
                f"trainable: {summary['trainable_params']:,}, outside BN (the paper's count): "
                f"{summary['weight_params']:,} ({summary['weight_params'] / 1e6:.2f}M)")
    return "\n".join(text)
