import pytest

from mobilenet_v3 import specs
from mobilenet_v3.specs import HS, RE, make_divisible


@pytest.mark.parametrize("value, expected", [
    (16, 16), (5.6, 8), (8.4, 8), (14, 16), (28, 32), (39.2, 40), (201.6, 200),
    (100.8, 104),  # 96 would be >10% below: rounds up
    (3, 8),        # never below the minimum
    (960 * 1.25, 1200),
])
def test_make_divisible(value, expected):
    assert make_divisible(value) == expected


def test_tables_have_the_papers_rows():
    assert len(specs.LARGE.blocks) == 15 and len(specs.SMALL.blocks) == 11
    # Spot checks against PAPER.md Tables 1 and 2, row by row.
    assert specs.LARGE.blocks[12] == specs.Bneck(5, 672, 160, True, HS, 2)   # row 13
    assert specs.LARGE.blocks[6] == specs.Bneck(3, 240, 80, False, HS, 2)    # row 7
    assert specs.SMALL.blocks[0] == specs.Bneck(3, 16, 16, True, RE, 2)      # row 1
    assert specs.SMALL.blocks[8] == specs.Bneck(5, 288, 96, True, HS, 2)     # row 9
    assert [b.stride for b in specs.LARGE.blocks].count(2) == 4
    assert [b.stride for b in specs.SMALL.blocks].count(2) == 4
    assert (specs.LARGE.last_conv_channels, specs.LARGE.head_channels) == (960, 1280)
    assert (specs.SMALL.last_conv_channels, specs.SMALL.head_channels) == (576, 1024)


def test_scale_at_alpha_1_reproduces_the_table():
    for spec in (specs.LARGE, specs.SMALL):
        scaled = specs.scale_arch(spec, 1.0)
        assert [(b.exp, b.out) for b in scaled.blocks] == [(b.exp, b.out) for b in spec.blocks]
        assert scaled.stem_channels == 16


def test_scaling_rules():
    large = specs.scale_arch(specs.LARGE, 0.5)
    assert large.stem_channels == 8
    assert large.head_channels == 1280          # never shrinks
    assert large.last_conv_channels == 480
    # rows 9-10 keep the 184/80 expansion factor on the scaled input: 40 * 2.3 = 92 -> 96
    assert large.blocks[8].in_channels == 40 and large.blocks[8].exp == 96
    assert specs.scale_arch(specs.LARGE, 1.25).head_channels == 1600   # grows above 1
    small = specs.scale_arch(specs.SMALL, 1.0)
    assert small.blocks[0].se_channels == 8             # make_divisible(16 / 4)
    assert small.blocks[9].se_channels == 144           # 576 / 4
    assert not small.blocks[0].has_expansion and small.blocks[1].has_expansion
    assert [b.has_residual for b in small.blocks] == [
        False, False, True, False, True, True, False, True, False, True, True]


def test_minimalistic_variant():
    m = specs.minimalistic(specs.LARGE)
    assert m.name == "large_minimalistic"
    assert all(b.kernel == 3 and not b.se and b.nl == RE for b in m.blocks)
    assert (m.stem_nl, m.last_conv_nl, m.head_nl) == (RE, RE, RE)
    assert [(b.exp, b.out, b.stride) for b in m.blocks] == [
        (b.exp, b.out, b.stride) for b in specs.LARGE.blocks]


@pytest.mark.parametrize("alpha", [0, -1.0])
def test_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        specs.scale_arch(specs.LARGE, alpha)


def test_unknown_model_name():
    with pytest.raises(ValueError, match="model name"):
        specs.get_arch("medium")
