"""What every reader returns: the conv weights of a file in execution order, in Keras layout.

Readers know file formats; `assign` and `detect` know MobileNetV3; this module is the contract.
"""

import dataclasses
from typing import List, Optional, Tuple

import numpy as np


@dataclasses.dataclass
class BatchNormStats:
    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    variance: np.ndarray
    epsilon: float


@dataclasses.dataclass
class Entry:
    """One conv / depthwise / fully-connected layer of the source file."""

    kind: str                     # 'conv' (Conv2D layout kh,kw,in,out) or 'depthwise' (kh,kw,c,1)
    kernel: np.ndarray
    bias: Optional[np.ndarray]    # conv bias, or the folded BN bias of a BN-folded file
    bn: Optional[BatchNormStats]  # exact BN statistics (None when absent or folded)
    name: str                     # where it came from (tensor / variable / layer), for messages
    added_constant: Optional[float] = None   # a scalar the source graph adds to this output

    @property
    def shape(self) -> Tuple[int, ...]:
        return tuple(int(d) for d in self.kernel.shape)


@dataclasses.dataclass
class SourceWeights:
    """All weights of one file, plus how the file stores them."""

    entries: List[Entry]
    origin: str                   # the path the user gave
    fmt: str                      # 'tflite', 'slim' or 'keras'
    bn_folded: bool               # BN folded into conv biases (TFLite)
    gate_folded: bool = False     # SE gate's +3 inside the excite bias unless added_constant

    def shapes(self) -> List[Tuple[Tuple[int, ...], str]]:
        return [(e.shape, e.kind) for e in self.entries]
