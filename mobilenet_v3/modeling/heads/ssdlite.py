"""SSDLite on MobileNetV3 (paper 6.3) as in the TF Object Detection API's
`ssdlite_mobilenet_v3_{large,small}_320x320_coco` configs.

Feature maps: C4 (the 13th / 9th bottleneck's expansion, stride 16) and C5 (the 1x1 conv
before pooling, stride 32), then four extra layers of depth 512/256/256/128, each a 1x1 conv to
half the depth, a depthwise 3x3 stride 2 and a 1x1 conv to the depth (BN + ReLU6 after each;
`multi_resolution_feature_maps` with insert_1x1_conv and use_depthwise). On every map a box
predictor and a class predictor: depthwise 3x3 (BN + ReLU6) then a 1x1 conv with bias
(`ConvolutionalBoxPredictor`, use_depthwise, kernel 3; class bias initialised to -4.6).

The Keras model outputs raw box encodings [batch, anchors, 4] (ty, tx, th, tw) and class
logits [batch, anchors, classes]; anchors, matching, loss and decoding are in
mobilenet_v3/detection. `classes` counts the class slots with the background slot 0, as the
OD API's predictor has num_classes + 1 outputs (91 for COCO's 90 ids).
"""

import dataclasses
import math
from typing import Dict, List, Tuple

import tf_keras
from tf_keras import layers

from mobilenet_v3.modeling.backbone import build_backbone, kernel_regularizer
from mobilenet_v3.modeling.builders import model_inputs
from mobilenet_v3.modeling.config import ModelConfig

HEAD_TYPE = "ssdlite"
BOX_CODE_SIZE = 4


@dataclasses.dataclass(frozen=True)
class SSDLiteConfig:
    """Head, anchors, box coder and post-processing (the OD API config's values)."""

    classes: int = 91                            # class slots, background slot 0 included
    extra_depths: Tuple[int, ...] = (512, 256, 256, 128)
    min_depth: int = 16
    min_scale: float = 0.2
    max_scale: float = 0.95
    aspect_ratios: Tuple[float, ...] = (1.0, 2.0, 0.5, 3.0, 0.3333)
    interpolated_scale_aspect_ratio: float = 1.0
    reduce_boxes_in_lowest_layer: bool = True    # ssd_anchor_generator's default
    box_scales: Tuple[float, ...] = (10.0, 10.0, 5.0, 5.0)   # y, x, h, w
    class_bias_init: float = -4.6
    head_bn_momentum: float = 0.97
    score_threshold: float = 1e-8
    iou_threshold: float = 0.6
    max_detections: int = 100
    per_class_nms: bool = False    # NMS per class (the op's use_regular_nms) vs fast, class-agnostic

    @property
    def num_layers(self) -> int:
        return 2 + len(self.extra_depths)

    def box_specs(self) -> List[List[Tuple[float, float]]]:
        """(scale, aspect ratio) of each anchor of a location, per layer
        (multiple_grid_anchor_generator.create_ssd_anchors)."""
        n = self.num_layers
        scales = [self.min_scale + (self.max_scale - self.min_scale) * i / (n - 1)
                  for i in range(n)] + [1.0]
        specs = []
        for layer in range(n):
            scale, scale_next = scales[layer], scales[layer + 1]
            if layer == 0 and self.reduce_boxes_in_lowest_layer:
                specs.append([(0.1, 1.0), (scale, 2.0), (scale, 0.5)])
                continue
            layer_specs = [(scale, ar) for ar in self.aspect_ratios]
            if self.interpolated_scale_aspect_ratio > 0:
                layer_specs.append((math.sqrt(scale * scale_next),
                                    self.interpolated_scale_aspect_ratio))
            specs.append(layer_specs)
        return specs

    def validate(self) -> None:
        if isinstance(self.classes, bool) or not isinstance(self.classes, int) \
                or self.classes < 2:
            raise ValueError(f"classes (with the background slot) must be an integer >= 2, "
                             f"got {self.classes!r}")
        if not 0 < self.min_scale <= self.max_scale:
            raise ValueError(f"anchor scales must satisfy 0 < min_scale <= max_scale, got "
                             f"{self.min_scale}, {self.max_scale}")
        if len(self.box_scales) != BOX_CODE_SIZE or min(self.box_scales) <= 0:
            raise ValueError(f"box_scales must be 4 positive numbers, got {self.box_scales}")
        if not 0 < self.iou_threshold <= 1 or self.max_detections < 1:
            raise ValueError("iou_threshold must be in (0, 1] and max_detections >= 1")


@dataclasses.dataclass(frozen=True)
class DetectorConfig:
    """One detector: the backbone's ModelConfig (include_top=False) and the SSDLite head."""

    model: ModelConfig = ModelConfig()
    ssd: SSDLiteConfig = SSDLiteConfig()

    @classmethod
    def create(cls, classes: int = 91, **model_fields) -> "DetectorConfig":
        """From flat backbone/graph/regularisation fields (ModelConfig.from_flat) + classes."""
        model_fields.setdefault("input_shape", (320, 320, 3))
        model = ModelConfig.from_flat(include_top=False, **model_fields)
        return cls(model, SSDLiteConfig(classes=classes))

    def validate(self) -> None:
        self.model.validate()
        self.ssd.validate()
        h, w = self.model.input_shape[:2]
        if h is None or w is None:
            raise ValueError("SSDLite needs a fixed input resolution (anchors depend on it)")

    def replace(self, **model_fields) -> "DetectorConfig":
        return dataclasses.replace(self, model=self.model.replace(**model_fields))

    def to_flat(self) -> Dict:
        flat = dict(self.model.to_flat(), head_type=HEAD_TYPE)
        for key, value in dataclasses.asdict(self.ssd).items():
            flat[f"ssd_{key}"] = list(value) if isinstance(value, tuple) else value
        return flat

    @classmethod
    def from_flat(cls, flat: Dict) -> "DetectorConfig":
        if flat.get("head_type") != HEAD_TYPE:
            raise ValueError(f"not an SSDLite record (head_type {flat.get('head_type')!r})")
        ssd = {f.name: flat[f"ssd_{f.name}"] for f in dataclasses.fields(SSDLiteConfig)
               if f"ssd_{f.name}" in flat}
        ssd = {k: tuple(v) if isinstance(v, list) else v for k, v in ssd.items()}
        return cls(ModelConfig.from_record(flat), SSDLiteConfig(**ssd))

    # what the loop and reports read
    alpha = property(lambda self: self.model.alpha)
    name = property(lambda self: self.model.name)
    input_shape = property(lambda self: self.model.input_shape)
    classes = property(lambda self: self.ssd.classes)


def feature_map_sizes(height: int, width: int, num_layers: int = 6) -> List[Tuple[int, int]]:
    """Grid sizes of the six maps: 'SAME' stride-2 layers give ceil(n / 2) each time."""
    sizes, h, w = [], height, width
    for _ in range(4):      # stem + three stride-2 bottlenecks before C4
        h, w = -(-h // 2), -(-w // 2)
    for _ in range(num_layers):
        sizes.append((h, w))
        h, w = -(-h // 2), -(-w // 2)
    return sizes


def _depth(depth: float, alpha: float, min_depth: int) -> int:
    """The OD API's depth_fn: max(int(depth * depth_multiplier), min_depth)."""
    return max(int(depth * alpha), min_depth)


def build_ssdlite(config: DetectorConfig) -> tf_keras.Model:
    """The detector: image -> [box_encodings (B, N, 4), class_logits (B, N, classes)]."""
    config.validate()
    model_config, ssd = config.model, config.ssd
    regularizer = kernel_regularizer(model_config)
    eps = model_config.regularization.bn_epsilon
    inputs, x = model_inputs(model_config)
    backbone = build_backbone(x, model_config)
    # A fresh initializer per layer: a reused unseeded instance repeats its values.
    def init():
        return tf_keras.initializers.TruncatedNormal(stddev=0.03)

    def pred_init():
        return tf_keras.initializers.RandomNormal(stddev=0.03)

    def bn_relu6(t, name):
        t = layers.BatchNormalization(momentum=ssd.head_bn_momentum, epsilon=eps,
                                      name=f"{name}_bn")(t)
        return layers.ReLU(6.0, name=f"{name}_relu6")(t)

    def conv1x1(t, filters, name):
        t = layers.Conv2D(filters, 1, padding="same", use_bias=False, kernel_initializer=init(),
                          kernel_regularizer=regularizer, name=name)(t)
        return bn_relu6(t, name)

    def depthwise(t, stride, name, initializer):
        t = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                                   depthwise_initializer=initializer(), name=name)(t)
        return bn_relu6(t, name)

    maps = [backbone.endpoints["C4"], backbone.endpoints["C5"]]
    for i, depth in enumerate(ssd.extra_depths, start=2):
        name = f"ssd_extra{i}"
        t = conv1x1(maps[-1], _depth(depth / 2, model_config.alpha, ssd.min_depth),
                    f"{name}_1x1")
        t = depthwise(t, 2, f"{name}_dw", init)
        maps.append(conv1x1(t, _depth(depth, model_config.alpha, ssd.min_depth),
                            f"{name}_project"))

    boxes, logits = [], []
    bias = tf_keras.initializers.Constant(ssd.class_bias_init)
    for i, (feature, specs) in enumerate(zip(maps, ssd.box_specs())):
        anchors = len(specs)
        for kind, size, out in (("box", BOX_CODE_SIZE, boxes), ("class", ssd.classes, logits)):
            name = f"ssd_{kind}{i}"
            t = depthwise(feature, 1, f"{name}_dw", pred_init)
            t = layers.Conv2D(anchors * size, 1, kernel_initializer=pred_init(),
                              bias_initializer=bias if kind == "class" else "zeros",
                              kernel_regularizer=regularizer, name=f"{name}_predict")(t)
            out.append(layers.Reshape((-1, size), name=f"{name}_reshape")(t))
    box_encodings = layers.Concatenate(axis=1, name="box_encodings")(boxes)
    class_logits = layers.Concatenate(axis=1, name="class_logits")(logits)
    suffix = "_reduced_tail" if model_config.backbone.reduced_tail else ""
    return tf_keras.Model(inputs, [box_encodings, class_logits],
                          name=f"ssdlite_mobilenet_v3_{model_config.name}{suffix}")
