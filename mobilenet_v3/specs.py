"""The architecture tables of MobileNetV3 (paper Tables 1 and 2) as data.

Each row reads like the paper: kernel, expansion size, output channels, squeeze-excite,
non-linearity, stride. Channel counts are the paper's absolute numbers for width 1.0;
`scale_blocks` turns them into the channels of a model with another width multiplier, using
the rules of the paper's appendix (see PAPER.md).
"""

import dataclasses
from typing import Optional, Tuple

RE = "relu"        # ReLU
HS = "hard_swish"  # h-swish


@dataclasses.dataclass(frozen=True)
class Bneck:
    """One inverted-residual bottleneck row of Table 1 / Table 2."""

    kernel: int
    exp: int
    out: int
    se: bool
    nl: str
    stride: int


@dataclasses.dataclass(frozen=True)
class ArchSpec:
    """A whole MobileNetV3 network: stem, bottleneck rows, and the efficient last stage."""

    name: str
    stem_channels: int
    stem_nl: str
    blocks: Tuple[Bneck, ...]
    last_conv_channels: int   # the 1x1 conv before pooling (960 / 576)
    last_conv_nl: str
    head_channels: int        # the 1x1 conv after pooling, no BN (1280 / 1024)
    head_nl: str


# Table 1: MobileNetV3-Large (rows 1-15; row 0 is the stem, rows 16-19 the last stage).
LARGE = ArchSpec(
    name="large",
    stem_channels=16, stem_nl=HS,
    blocks=(
        #    k  exp  out  SE     NL  s
        Bneck(3, 16, 16, False, RE, 1),    # 1
        Bneck(3, 64, 24, False, RE, 2),    # 2
        Bneck(3, 72, 24, False, RE, 1),    # 3
        Bneck(5, 72, 40, True, RE, 2),     # 4
        Bneck(5, 120, 40, True, RE, 1),    # 5
        Bneck(5, 120, 40, True, RE, 1),    # 6
        Bneck(3, 240, 80, False, HS, 2),   # 7
        Bneck(3, 200, 80, False, HS, 1),   # 8
        Bneck(3, 184, 80, False, HS, 1),   # 9
        Bneck(3, 184, 80, False, HS, 1),   # 10
        Bneck(3, 480, 112, True, HS, 1),   # 11
        Bneck(3, 672, 112, True, HS, 1),   # 12
        Bneck(5, 672, 160, True, HS, 2),   # 13
        Bneck(5, 960, 160, True, HS, 1),   # 14
        Bneck(5, 960, 160, True, HS, 1),   # 15
    ),
    last_conv_channels=960, last_conv_nl=HS,
    head_channels=1280, head_nl=HS,
)

# Table 2: MobileNetV3-Small (rows 1-11; row 0 is the stem, rows 12-15 the last stage).
SMALL = ArchSpec(
    name="small",
    stem_channels=16, stem_nl=HS,
    blocks=(
        #    k  exp  out  SE     NL  s
        Bneck(3, 16, 16, True, RE, 2),     # 1
        Bneck(3, 72, 24, False, RE, 2),    # 2
        Bneck(3, 88, 24, False, RE, 1),    # 3
        Bneck(5, 96, 40, True, HS, 2),     # 4
        Bneck(5, 240, 40, True, HS, 1),    # 5
        Bneck(5, 240, 40, True, HS, 1),    # 6
        Bneck(5, 120, 48, True, HS, 1),    # 7
        Bneck(5, 144, 48, True, HS, 1),    # 8
        Bneck(5, 288, 96, True, HS, 2),    # 9
        Bneck(5, 576, 96, True, HS, 1),    # 10
        Bneck(5, 576, 96, True, HS, 1),    # 11
    ),
    last_conv_channels=576, last_conv_nl=HS,
    head_channels=1024, head_nl=HS,
)

ARCHS = {"large": LARGE, "small": SMALL}


def get_arch(name: str) -> ArchSpec:
    """Returns the table for 'large' or 'small'; anything else is a ValueError."""
    try:
        return ARCHS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"model name must be one of {sorted(ARCHS)}, got {name!r}") from None


def minimalistic(spec: ArchSpec) -> ArchSpec:
    """TF-Slim's minimalistic variant: same channels, all kernels 3x3, ReLU, no SE."""
    blocks = tuple(dataclasses.replace(b, kernel=3, se=False, nl=RE) for b in spec.blocks)
    return dataclasses.replace(
        spec, name=spec.name + "_minimalistic", blocks=blocks,
        stem_nl=RE, last_conv_nl=RE, head_nl=RE)


def make_divisible(value: float, divisor: int = 8, min_value: Optional[int] = None) -> int:
    """Rounds channels to a multiple of `divisor`, never more than 10% below `value` (slim)."""
    if min_value is None:
        min_value = divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


@dataclasses.dataclass(frozen=True)
class ScaledBneck:
    """A bottleneck row with the channels of a given width multiplier."""

    index: int      # the row number in the paper's table (1-based)
    kernel: int
    in_channels: int
    exp: int
    out: int
    se_channels: Optional[int]  # squeeze width, None when the row has no SE
    nl: str
    stride: int

    @property
    def has_expansion(self) -> bool:
        return self.exp != self.in_channels

    @property
    def has_residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out


@dataclasses.dataclass(frozen=True)
class ScaledArch:
    """All channel counts of one concrete network (spec + width multiplier)."""

    spec: ArchSpec
    alpha: float
    stem_channels: int
    blocks: Tuple[ScaledBneck, ...]
    last_conv_channels: int
    head_channels: int


def scale_arch(spec: ArchSpec, alpha: float) -> ScaledArch:
    """Applies a width multiplier following the paper's appendix.

    Every layer's channels become make_divisible(c * alpha); expansion sizes keep the table's
    expansion factor (exp / input channels) on the scaled input; SE squeezes to
    make_divisible(exp / 4); the head conv (1280 / 1024) grows with alpha > 1 but never shrinks.
    """
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha!r}")
    stem = make_divisible(spec.stem_channels * alpha)
    blocks = []
    table_in, in_channels = spec.stem_channels, stem
    for i, b in enumerate(spec.blocks, start=1):
        exp = make_divisible(in_channels * (b.exp / table_in))
        out = make_divisible(b.out * alpha)
        blocks.append(ScaledBneck(
            index=i, kernel=b.kernel, in_channels=in_channels, exp=exp, out=out,
            se_channels=make_divisible(exp / 4) if b.se else None, nl=b.nl, stride=b.stride))
        table_in, in_channels = b.out, out
    head = make_divisible(spec.head_channels * alpha) if alpha > 1.0 else spec.head_channels
    return ScaledArch(
        spec=spec, alpha=alpha, stem_channels=stem, blocks=tuple(blocks),
        last_conv_channels=make_divisible(spec.last_conv_channels * alpha),
        head_channels=head)
