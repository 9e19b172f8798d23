"""The export formats as one table of policies: converter mode, h-swish form, calibration, QAT.

Why these h-swish forms: float formats keep the fused HARD_SWISH op (the fast float path);
integer formats use (x/6) * ReLU6(x+3), which XNNPACK runs in int8 (benchmark/RESULTS.md).
"""

import dataclasses
from typing import Dict

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class FormatPolicy:
    name: str
    converter_mode: str           # export.convert mode: float32 | float16 | dynamic | int8
    hard_swish_form: str          # the default graph form of h-swish for this format
    calibrated: bool = False      # post-training int8: needs a representative image set
    qat: bool = False             # fine-tuned with fake quantization before converting
    integer: bool = False         # int8 graph: I/O dtype applies, no float tensors inside

    @property
    def reference(self) -> str:
        """What the file's outputs are compared with."""
        return "the QAT Keras model" if self.qat else "the Keras model"


FORMATS: Dict[str, FormatPolicy] = {p.name: p for p in (
    FormatPolicy("float32", "float32", "fused"),
    FormatPolicy("float16", "float16", "fused"),
    FormatPolicy("dynamic", "dynamic", "fused"),
    FormatPolicy("int8", "int8", "unfused", calibrated=True, integer=True),
    FormatPolicy("qat_int8", "int8", "unfused", qat=True, integer=True),
)}
FORMAT_NAMES = tuple(FORMATS)
IO_DTYPES = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}
