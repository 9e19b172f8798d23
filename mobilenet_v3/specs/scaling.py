"""Width-multiplier rules: from a table's width-1.0 rows to the channels of one network.

The rules of the paper's appendix (PAPER.md): make_divisible(c * alpha, 8) everywhere, the
table's expansion factor kept on the scaled input, the head conv never shrinking.
"""

import dataclasses
from typing import Optional, Tuple

from mobilenet_v3.specs.tables import HS, ArchSpec


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
    dilation: int = 1   # atrous rate of the depthwise conv (segmentation backbones)

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

    def hard_swish_count(self, include_top: bool = True) -> int:
        """How many h-swish activations the network has (read from the rows, not the graph)."""
        spec = self.spec
        count = (spec.stem_nl == HS) + (spec.last_conv_nl == HS)
        count += (spec.head_nl == HS) if include_top else 0
        for b in self.blocks:
            count += (b.nl == HS) * (1 + b.has_expansion)
        return int(count)


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
            se_channels=make_divisible(exp / 4) if b.se else None, nl=b.nl, stride=b.stride,
            dilation=b.dilation))
        table_in, in_channels = b.out, out
    head = make_divisible(spec.head_channels * alpha) if alpha > 1.0 else spec.head_channels
    return ScaledArch(
        spec=spec, alpha=alpha, stem_channels=stem, blocks=tuple(blocks),
        last_conv_channels=make_divisible(spec.last_conv_channels * alpha),
        head_channels=head)
