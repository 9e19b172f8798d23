"""The architecture as data: the paper's tables, variants as transforms, width scaling.

Nothing here builds a layer; modeling/ turns a ScaledArch into a Keras network.
"""

from mobilenet_v3.specs.scaling import ScaledArch, ScaledBneck, make_divisible, scale_arch
from mobilenet_v3.specs.tables import ARCHS, HS, LARGE, RE, SMALL, ArchSpec, Bneck, get_arch
from mobilenet_v3.specs.transforms import (OUTPUT_STRIDES, atrous, minimalistic,
                                          reduced_last_stage, reduced_tail)

__all__ = ["ARCHS", "HS", "LARGE", "RE", "SMALL", "ArchSpec", "Bneck", "ScaledArch",
           "ScaledBneck", "OUTPUT_STRIDES", "atrous", "get_arch", "make_divisible", "minimalistic",
           "reduced_last_stage", "reduced_tail", "scale_arch"]
