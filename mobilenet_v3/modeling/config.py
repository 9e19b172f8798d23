"""What defines one network, split by concern: backbone, head, graph form, regularisation.

The run folder stores it flat (`to_flat` / `from_flat`: the same keys as before the split),
so `model_config.json` files written by any version of train.py load unchanged.
"""

import dataclasses
from typing import Dict, Optional, Tuple

from mobilenet_v3 import specs

MIN_RESOLUTION = 32
DEFAULT_INPUT_SHAPE = (224, 224, 3)
HARD_SWISH_FORMS = ("fused", "unfused", "folded")


@dataclasses.dataclass(frozen=True)
class BackboneConfig:
    """The architecture: which table, which width, which variant, or explicit rows.

    `spec` (an ArchSpec, e.g. a table whose rows a search changed) replaces the table and its
    channel variants; it is taken at width 1.0 with every channel as written (so each must be
    a multiple of 8, what make_divisible keeps), and only `output_stride` still transforms it.
    `name` stays the table it was derived from (pretrained files, reports).
    """

    name: str = "large"                 # 'large' or 'small'
    alpha: float = 1.0                  # width multiplier
    minimalistic: bool = False          # 3x3 kernels, ReLU, no SE (TF-Slim)
    reduced_tail: bool = False          # channels between C4 and C5 halved (detection, paper †)
    rf2: bool = False                   # last stage halved, its expansion too (segmentation RF2)
    output_stride: int = 32             # 16 or 8: later rows atrous (segmentation, DeepLab)
    spec: Optional[specs.ArchSpec] = None   # explicit rows (model_config.json: a nested dict)

    def __post_init__(self):
        if isinstance(self.spec, dict):      # read back from model_config.json
            object.__setattr__(self, "spec", spec_from_dict(self.spec))

    def validate(self) -> None:
        specs.get_arch(self.name)
        if self.spec is not None:
            _validate_explicit(self)
        if self.output_stride not in specs.OUTPUT_STRIDES:
            raise ValueError(f"output_stride must be one of {specs.OUTPUT_STRIDES}, got "
                             f"{self.output_stride!r}")
        if self.rf2 and self.reduced_tail:
            raise ValueError("rf2 (segmentation) and reduced_tail (detection) are two ways of "
                             "halving the last stage: choose one")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) \
                or not self.alpha > 0:
            raise ValueError(f"alpha must be a number > 0, got {self.alpha!r}")

    @property
    def arch(self) -> specs.ArchSpec:
        if self.spec is not None:
            return specs.atrous(self.spec, self.output_stride) if self.output_stride != 32 \
                else self.spec
        spec = specs.get_arch(self.name)
        spec = specs.minimalistic(spec) if self.minimalistic else spec
        spec = specs.reduced_tail(spec) if self.reduced_tail else spec
        spec = specs.reduced_last_stage(spec) if self.rf2 else spec
        return specs.atrous(spec, self.output_stride) if self.output_stride != 32 else spec

    @property
    def scaled_arch(self) -> specs.ScaledArch:
        return specs.scale_arch(self.arch, self.alpha)


def spec_from_dict(record: Dict) -> specs.ArchSpec:
    """An ArchSpec from its dataclasses.asdict form (rows as dicts)."""
    try:
        blocks = tuple(specs.Bneck(**row) for row in record["blocks"])
        return specs.ArchSpec(**{**record, "blocks": blocks})
    except (KeyError, TypeError) as e:
        raise ValueError(f"spec: not an ArchSpec record ({e})") from None


def _validate_explicit(backbone: "BackboneConfig") -> None:
    """An explicit spec is the network: no width multiplier or channel variant on top, and
    channels make_divisible keeps (else the built network would differ from its record)."""
    if backbone.alpha != 1.0 or backbone.minimalistic or backbone.reduced_tail or backbone.rf2:
        raise ValueError("an explicit spec carries its own channels: alpha must be 1.0 and "
                         "minimalistic / reduced_tail / rf2 off")
    spec = backbone.spec
    rows = [("stem", spec.stem_channels), ("last conv", spec.last_conv_channels)] + [
        (f"bneck{i} {what}", c) for i, b in enumerate(spec.blocks, start=1)
        for what, c in (("exp", b.exp), ("out", b.out))]
    for where, channels in rows:
        if not isinstance(channels, int) or channels < 8 or channels % 8:
            raise ValueError(f"spec: {where} has {channels!r} channels; explicit rows need "
                             "multiples of 8 (>= 8)")


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    """The classification head (or, without it, how the features are pooled)."""

    include_top: bool = True
    classes: int = 1000                 # 1001 for the authors' checkpoints (background class)
    pooling: Optional[str] = None       # None, 'avg' or 'max' when include_top=False
    dropout_rate: float = 0.2
    classifier_activation: Optional[str] = "softmax"   # None for logits

    def validate(self) -> None:
        if isinstance(self.classes, bool) or not isinstance(self.classes, int) or self.classes < 1:
            raise ValueError(f"classes must be an integer >= 1, got {self.classes!r}")
        if self.pooling not in (None, "avg", "max"):
            raise ValueError(f"pooling must be None, 'avg' or 'max', got {self.pooling!r}")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1), got {self.dropout_rate!r}")


@dataclasses.dataclass(frozen=True)
class GraphConfig:
    """Input/output and graph form: what changes the graph but never the weights."""

    input_shape: Tuple[Optional[int], Optional[int], int] = DEFAULT_INPUT_SHAPE
    include_preprocessing: bool = True  # [0, 255] pixels -> [-1, 1] inside the model
    batch_size: Optional[int] = None    # fixed batch (1 for TFLite export), None = dynamic
    hard_swish_form: str = "fused"      # int8 export: 'folded' (see modeling/layers.py)

    def validate(self) -> None:
        shape = tuple(self.input_shape) if self.input_shape is not None else None
        if shape is None or len(shape) != 3:
            raise ValueError(f"input_shape must be (height, width, channels), got {shape!r}")
        for dim in shape[:2]:
            if dim is not None and (not isinstance(dim, int) or dim < MIN_RESOLUTION):
                raise ValueError(
                    f"input_shape: resolution must be >= {MIN_RESOLUTION} (or None), got {shape!r}")
        if not isinstance(shape[2], int) or shape[2] < 1:
            raise ValueError(f"input_shape: channels must be >= 1, got {shape!r}")
        if self.hard_swish_form not in HARD_SWISH_FORMS:
            raise ValueError(f"hard_swish_form must be one of {HARD_SWISH_FORMS}, got "
                             f"{self.hard_swish_form!r}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be None or >= 1, got {self.batch_size!r}")


@dataclasses.dataclass(frozen=True)
class RegularizationConfig:
    """Training-time settings baked into the layers (BN statistics, L2)."""

    bn_momentum: float = 0.99           # paper 6.1.1
    bn_epsilon: float = 1e-3
    weight_decay: float = 0.0           # slim-style L2 (scale * sum(w^2) / 2), not on depthwise

    def validate(self) -> None:
        if not 0.0 < self.bn_momentum < 1.0:
            raise ValueError(f"bn_momentum must be in (0, 1), got {self.bn_momentum!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")


_PARTS = {"backbone": BackboneConfig, "head": ClassifierConfig, "graph": GraphConfig,
          "regularization": RegularizationConfig}
_FIELD_TO_PART = {f.name: part for part, cls in _PARTS.items()
                  for f in dataclasses.fields(cls)}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """One MobileNetV3 network: backbone + head + graph form + regularisation."""

    backbone: BackboneConfig = BackboneConfig()
    head: ClassifierConfig = ClassifierConfig()
    graph: GraphConfig = GraphConfig()
    regularization: RegularizationConfig = RegularizationConfig()

    @classmethod
    def from_flat(cls, **fields) -> "ModelConfig":
        """From flat keyword fields (name=, alpha=, classes=, ...); unknown keys are refused."""
        unknown = sorted(set(fields) - set(_FIELD_TO_PART))
        if unknown:
            raise ValueError(f"unknown model setting(s) {unknown}")
        parts = {part: {} for part in _PARTS}
        for key, value in fields.items():
            if key == "input_shape" and value is not None:
                value = tuple(value)
            parts[_FIELD_TO_PART[key]][key] = value
        return cls(**{part: _PARTS[part](**values) for part, values in parts.items()})

    @classmethod
    def from_record(cls, record: Dict) -> "ModelConfig":
        """From a run folder's flat record, ignoring keys this version does not know."""
        return cls.from_flat(**{k: v for k, v in record.items() if k in _FIELD_TO_PART})

    def to_flat(self) -> Dict:
        """The flat record written as model_config.json (input_shape as a list)."""
        flat = {}
        for part in _PARTS:
            flat.update(dataclasses.asdict(getattr(self, part)))
        flat["input_shape"] = list(flat["input_shape"])
        for key, default in (("reduced_tail", False), ("rf2", False), ("output_stride", 32),
                             ("spec", None)):
            if flat[key] == default:   # records of runs from before the field stay equal
                del flat[key]
        return flat

    def replace(self, **fields) -> "ModelConfig":
        """A copy with some flat fields changed, each in the part that owns it."""
        return ModelConfig.from_flat(**{**self.to_flat(), **fields})

    def validate(self) -> None:
        """Raises ValueError naming the first bad field."""
        for part in _PARTS:
            getattr(self, part).validate()

    # Short read access to the fields most code needs.
    name = property(lambda self: self.backbone.name)
    alpha = property(lambda self: self.backbone.alpha)
    minimalistic = property(lambda self: self.backbone.minimalistic)
    classes = property(lambda self: self.head.classes)
    include_top = property(lambda self: self.head.include_top)
    include_preprocessing = property(lambda self: self.graph.include_preprocessing)
    input_shape = property(lambda self: self.graph.input_shape)
    arch = property(lambda self: self.backbone.arch)
    scaled_arch = property(lambda self: self.backbone.scaled_arch)

    def for_training(self, classes: int, image_size: int) -> "ModelConfig":
        """The training network: logits out (the loss applies softmax), [-1, 1] input."""
        return self.replace(classes=classes, include_top=True, classifier_activation=None,
                            input_shape=(image_size, image_size, 3),
                            include_preprocessing=False)

    def for_export(self, hard_swish_form: str, include_preprocessing: bool,
                   classifier_activation: Optional[str],
                   batch_size: Optional[int] = 1) -> "ModelConfig":
        """The same weights as an inference graph: fixed batch, chosen h-swish form, no L2."""
        return self.replace(batch_size=batch_size, hard_swish_form=hard_swish_form,
                            include_preprocessing=include_preprocessing,
                            classifier_activation=classifier_activation, weight_decay=0.0)
