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
