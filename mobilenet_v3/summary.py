"""Per-row multiply-adds and parameters of a MobileNetV3, laid out like the paper's Table 1/2.

    python -m mobilenet_v3.summary --model=large --alpha=1.0 --resolution=224 [--minimalistic]
        [--classes=1000] [--format=table|json]
"""

import dataclasses
import json
import os
import sys
from typing import List, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mobilenet_v3 import model as model_lib  # noqa: E402
from mobilenet_v3 import profiler  # noqa: E402
from mobilenet_v3.specs import HS, RE  # noqa: E402

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


def _describe(config: model_lib.ModelConfig):
    """Maps a layer-name prefix to the paper's description of that row."""
    arch = config.scaled_arch
    spec = arch.spec
    rows = {"stem": ("conv2d 3x3", "-", arch.stem_channels, "-", spec.stem_nl, 2)}
    for b in arch.blocks:
        rows[f"bneck{b.index}"] = (f"bneck {b.kernel}x{b.kernel}", b.exp, b.out,
                                   "yes" if b.se_channels else "-", b.nl, b.stride)
    rows["lastconv"] = ("conv2d 1x1", "-", arch.last_conv_channels, "-", spec.last_conv_nl, 1)
    rows["pool"] = ("avg pool", "-", "-", "-", None, 1)
    rows["head"] = ("conv2d 1x1, no BN", "-", arch.head_channels, "-", spec.head_nl, 1)
    rows["logits"] = ("conv2d 1x1, no BN", "-", config.classes, "-", None, 1)
    return rows


def table_rows(config: model_lib.ModelConfig,
               costs: List[profiler.LayerCost]) -> List[Row]:
    """Sums the profiler's per-layer costs of the model built from `config` into table rows."""
    described = _describe(config)
    rows: List[Row] = []
    for cost in costs:
        key = cost.name.split("_")[0]
        if key in described and (not rows or rows[-1].key != key):
            op, exp, out, se, nl, stride = described[key]
            h, w, c = cost.input_shape
            rows.append(Row(key, f"{h}x{w}x{c}", op, str(exp), str(out), se, _NL[nl],
                            str(stride)))
        if rows:  # layers outside any row (dropout, softmax) add to the row before them
            rows[-1].madds += cost.madds
            rows[-1].params += cost.params
    return rows


def summarize(config: model_lib.ModelConfig) -> dict:
    """The JSON-able summary: rows and totals (madds, params, trainable_params, weight_params)."""
    costs = profiler.profile(model_lib.build_model(config))
    totals = profiler.totals(costs)
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


def main(argv: Optional[List[str]] = None) -> int:
    from absl import flags  # entry point only: the library itself takes config objects

    fv = flags.FlagValues()
    flags.DEFINE_enum("model", "large", ["large", "small"], "Which network.", flag_values=fv)
    flags.DEFINE_float("alpha", 1.0, "Width multiplier (> 0).", flag_values=fv)
    flags.DEFINE_integer("resolution", 224, "Input height and width (>= 32).", flag_values=fv)
    flags.DEFINE_boolean("minimalistic", False, "3x3, ReLU, no SE variant.", flag_values=fv)
    flags.DEFINE_integer("classes", 1000, "Number of classes (1001 with background).",
                         flag_values=fv)
    flags.DEFINE_enum("format", "table", ["table", "json"], "Output format.", flag_values=fv)
    try:
        fv(list(argv if argv is not None else sys.argv))
    except flags.Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if fv.resolution < model_lib.MIN_RESOLUTION:
        print(f"error: --resolution must be >= {model_lib.MIN_RESOLUTION}, got {fv.resolution}",
              file=sys.stderr)
        return 2
    config = model_lib.ModelConfig(
        name=fv.model, alpha=fv.alpha, input_shape=(fv.resolution, fv.resolution, 3),
        minimalistic=fv.minimalistic, classes=fv.classes, include_preprocessing=False)
    try:
        config.validate()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    summary = summarize(config)
    if fv.format == "json":
        print(json.dumps(summary, indent=2))
    else:
        print(format_table(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
