"""The export formats as one table of policies: converter mode, h-swish form, calibration, QAT.

Why these h-swish forms: float formats keep the fused HARD_SWISH op (the fast float path);
integer formats use the 'folded' form x * ReLU6(x+3) with the 1/6 in the next conv's kernel
(export/folding.py): XNNPACK runs it in int8 in one partition, one MUL per h-swish fewer than
(x/6) * ReLU6(x+3) ('unfused'); XNNPACK cuts the int8 HARD_SWISH op out of its partitions
(benchmark/RESULTS.md, "int8 on a real ImageNet network").
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

    def form_for(self, include_top: bool) -> str:
        """The default h-swish form; 'folded' needs a classifier to absorb the 1/6."""
        if self.hard_swish_form == "folded" and not include_top:
            return "unfused"
        return self.hard_swish_form

    @property
    def reference(self) -> str:
        """What the file's outputs are compared with."""
        return "the QAT Keras model" if self.qat else "the Keras model"


FORMATS: Dict[str, FormatPolicy] = {p.name: p for p in (
    FormatPolicy("float32", "float32", "fused"),
    FormatPolicy("float16", "float16", "fused"),
    FormatPolicy("dynamic", "dynamic", "fused"),
    FormatPolicy("int8", "int8", "folded", calibrated=True, integer=True),
    FormatPolicy("qat_int8", "int8", "folded", qat=True, integer=True),
)}
FORMAT_NAMES = tuple(FORMATS)
# What detectors and segmenters export as (export/task_export.py): qat_int8 is classification's.
HEAD_FORMATS = ("float32", "float16", "dynamic", "int8")
IO_DTYPES = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}
