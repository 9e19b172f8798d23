"""The architecture tables of MobileNetV3 (paper Tables 1 and 2) as data.

Each row reads like the paper: kernel, expansion size, output channels, squeeze-excite,
non-linearity, stride, at width 1.0. Variants are transforms (transforms.py) and widths are
scaling rules (scaling.py) applied to these rows, as in TF-Slim's nets/mobilenet.
"""

import dataclasses
from typing import Tuple

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
    dilation: int = 1   # atrous rate of the depthwise conv (transforms.atrous; 1 in the tables)


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
