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


def reduced_last_stage(spec: ArchSpec, factor: float = 0.5) -> ArchSpec:
    """The paper's segmentation "RF2" (section 6.4; DeepLab's mobilenet_v3_{large,small}_seg):
    every channel count of the last stage scaled by `factor`, the expansion of its stride-2
    row included.

    Not the same as `reduced_tail` (detection), which keeps that expansion because SSDLite taps
    it as C4. DeepLab halves the outputs of slim layers 13-16 (Large) / 9-12 (Small) and sets
    the expansions to 336/480/480 (Large) and 144/288/288 (Small), i.e. the table's
    expansion sizes halved; the last 1x1 conv is halved too (960 -> 480, 576 -> 288).
    """
    last_s2 = max(i for i, b in enumerate(spec.blocks) if b.stride == 2)

    def half(c):
        return int(round(c * factor))
    blocks = tuple(
        b if i < last_s2 else dataclasses.replace(b, out=half(b.out), exp=half(b.exp))
        for i, b in enumerate(spec.blocks))
    return dataclasses.replace(spec, name=spec.name + "_rf2", blocks=blocks,
                               last_conv_channels=half(spec.last_conv_channels))


OUTPUT_STRIDES = (8, 16, 32)


def atrous(spec: ArchSpec, output_stride: int) -> ArchSpec:
    """Dilated ("atrous") rows so that the network stops downsampling at `output_stride`
    (TF-Slim mobilenet_base's rule, used by DeepLab): once the running stride reaches it, a
    stride-2 row gets stride 1 at the current rate and every later row's rate doubles.
    output_stride 16: the last stage's stride-2 row runs at stride 1, its later rows at rate 2.
    """
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be one of {OUTPUT_STRIDES}, got {output_stride!r}")
    if output_stride == 32:
        return spec
    current, rate, blocks = 2, 1, []      # the stem has stride 2
    for b in spec.blocks:
        if current == output_stride:
            blocks.append(dataclasses.replace(b, stride=1, dilation=rate))
            rate *= b.stride
        else:
            blocks.append(b)
            current *= b.stride
    return dataclasses.replace(spec, name=f"{spec.name}_os{output_stride}", blocks=tuple(blocks))
