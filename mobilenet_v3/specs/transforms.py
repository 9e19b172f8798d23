"""Variants of a table as transforms of its rows (TF-Slim's way of defining variants).

Each transform takes an ArchSpec and returns a new one; they compose, and the rows stay data.
"""

import dataclasses

from mobilenet_v3.specs.tables import RE, ArchSpec


def minimalistic(spec: ArchSpec) -> ArchSpec:
    """TF-Slim's minimalistic variant: same channels, all kernels 3x3, ReLU, no SE."""
    blocks = tuple(dataclasses.replace(b, kernel=3, se=False, nl=RE) for b in spec.blocks)
    return dataclasses.replace(
        spec, name=spec.name + "_minimalistic", blocks=blocks,
        stem_nl=RE, last_conv_nl=RE, head_nl=RE)


def reduced_tail(spec: ArchSpec, factor: float = 0.5) -> ArchSpec:
    """The paper's detection variant (dagger rows of Table 6; TF-Slim V3_LARGE_DETECTION /
    V3_SMALL_DETECTION): every channel count between C4 and C5 scaled by `factor`.

    C4 is the expansion of the last stride-2 row (13th Large / 9th Small), which keeps its
    size; that row's output, the later rows' expansions and outputs, and the last 1x1 conv are
    halved (slim's _reduce_consecutive_layers over layers 13-16 / 9-12). Expansion sizes are
    table values, so halving them keeps each row's expansion factor.
    """
    last_s2 = max(i for i, b in enumerate(spec.blocks) if b.stride == 2)

    def half(c):
        return int(round(c * factor))
    blocks = tuple(
        b if i < last_s2 else dataclasses.replace(
            b, out=half(b.out), exp=b.exp if i == last_s2 else half(b.exp))
        for i, b in enumerate(spec.blocks))
    return dataclasses.replace(spec, name=spec.name + "_reduced_tail", blocks=blocks,
                               last_conv_channels=half(spec.last_conv_channels))
