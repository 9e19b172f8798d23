"""Layer names: the one place that knows how layers are named and how to read a name back.

Rows of the paper's tables become name prefixes (`stem`, `bneck{i}`, `lastconv`, `head`,
`logits`); every layer of a row is `<prefix>_<part>`, so a name tells its table row.
"""

PREPROCESS = "preprocess"
STEM = "stem"
LAST_CONV = "lastconv"
POOL = "pool"
HEAD = "head"
DROPOUT = "dropout"
LOGITS = "logits"
LOGITS_FLAT = "logits_flat"
PREDICTIONS = "predictions"


def bneck(index: int) -> str:
    """The prefix of bottleneck row `index` (1-based, as in the paper's tables)."""
    return f"bneck{index}"


def is_bneck(row: str) -> bool:
    """Whether a row name (see row_of) is a bottleneck row."""
    return row.startswith("bneck") and row[len("bneck"):].isdigit()


def act(prefix: str) -> str:
    """The activation output of a conv named `prefix`."""
    return f"{prefix}_act"


def row_of(layer_name: str) -> str:
    """The table row a layer belongs to (`bneck3_se_mul` -> `bneck3`)."""
    return layer_name.split("_")[0]


def endpoint_layer_names(model) -> dict:
    """C1..C5 -> layer name, read back from the names of a model this package built.

    The builder records endpoints while building (backbone.py); this reads them back for a
    model that was saved and loaded, applying the same rule: C_k is the last layer at output
    stride 2**k, at a stride-2 bottleneck its expansion output.
    """
    names = {layer.name for layer in model.layers}
    if act(STEM) not in names or act(LAST_CONV) not in names:
        raise ValueError(f"{model.name!r} is not a MobileNetV3 built by this package "
                         f"(layers {act(STEM)!r} / {act(LAST_CONV)!r} not found)")
    by_stride, stride, current, i = {}, 2, act(STEM), 1
    while f"{bneck(i)}_depthwise" in names:
        if model.get_layer(f"{bneck(i)}_depthwise").strides[0] == 2:
            if act(f"{bneck(i)}_expand") in names:
                current = act(f"{bneck(i)}_expand")
            by_stride[stride] = current
            stride *= 2
        add = f"{bneck(i)}_add"
        current = add if add in names else f"{bneck(i)}_project_bn"
        i += 1
    by_stride[stride] = act(LAST_CONV)
    return {f"C{k}": by_stride[2 ** k] for k in range(1, 6)}
