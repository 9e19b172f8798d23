"""Semantic segmentation heads on MobileNetV3 (paper 6.4, Fig. 10): LR-ASPP and R-ASPP.

Backbone: the paper's segmentation network is the classifier's backbone with the last stage
atrous (`output_stride=16`, DeepLab's rule in specs.atrous) and optionally halved
(`rf2`, specs.reduced_last_stage), ending at the last 1x1 conv (960 / 576, or 480 / 288).

LR-ASPP (DeepLab `--aspp_with_squeeze_and_excitation=1 --aspp_convs_filters=128
--aspp_with_concat_projection=0 --image_se_uses_qsigmoid=1 --image_pooling_crop_size=769,769
--image_pooling_stride=4,5 --decoder_output_stride=8 --decoder_use_sum_merge=1
--decoder_output_is_logits=1`, the flags of DeepLab's MobileNetV3 Cityscapes models):
  branch 1: 1x1 conv (128) + BN + ReLU on the last feature map (output stride 16);
  branch 2: average pool (DeepLab: kernel scale_dimension(769, 1/16) = 49 per dimension,
            stride (4, 5) cells, clipped to the map: a global pool on 769x769 training crops;
            torchvision: always global) + 1x1 conv (128, bias, no BN) + hard sigmoid
            (DeepLab's qsigmoid; torchvision: sigmoid), bilinearly resized to branch 1's
            size and multiplied into it (SE-like);
  then bilinear upsampling to output stride 8, a 1x1 conv to classes, plus a 1x1 conv to
  classes on the low-level feature (the depthwise output of the last bottleneck at output
  stride 8: slim `layer_7/depthwise_output` for Large, `layer_4/...` for Small); summed and
  bilinearly upsampled to the input size.
R-ASPP (MobileNetV2 paper 6.3, the baseline of Table 7): branch 1: 1x1 conv (256) + BN +
  ReLU; branch 2: global average pooling + 1x1 conv (256) + BN + ReLU, broadcast; concatenated,
  projected by a 1x1 conv (256) + BN + ReLU, dropout 0.1, a 1x1 conv to classes, upsampled.

Every bilinear resize uses align_corners=True, as DeepLab's (torchvision: half-pixel centres,
`align_corners=False`). The defaults are DeepLab's; records written before these settings
existed load with what they were trained with (sigmoid gate, half-pixel resizes, the pool
scaled with the input: `LEGACY_HEAD`).

The model maps an image to per-pixel class logits [B, H, W, classes] (no softmax).
"""

import dataclasses
from typing import Dict, Optional, Tuple

import tf_keras
from tf_keras import layers

from mobilenet_v3.modeling import naming
from mobilenet_v3.modeling.layers import AlignedResize, hard_sigmoid
from mobilenet_v3.modeling.backbone import (batch_norm_factory, build_backbone,
                                            kernel_regularizer)
from mobilenet_v3.modeling.builders import model_inputs
from mobilenet_v3.modeling.config import ModelConfig

HEAD_TYPES = ("lraspp", "raspp")
GATES = ("hard_sigmoid", "sigmoid")
IGNORE_LABEL = 255
PREFIX = "seg_"
# DeepLab's Cityscapes setting: image_pooling_crop_size 769 at 1025x2049 inputs, stride (4, 5)
# in feature-map cells. "Scaled with the input" means: the window covers 769/1024 of the image
# height and the stride moves 4/1024 of the height and 5/2048 of the width.
REFERENCE_SIZE = (1024, 2048)
REFERENCE_POOL_CROP = 769
REFERENCE_POOL_STRIDE = (4, 5)
# What a model_config.json without the gate / align_corners / pool_crop keys was built with.
LEGACY_HEAD = {"gate": "sigmoid", "align_corners": False, "pool_crop": None}


@dataclasses.dataclass(frozen=True)
class SegHeadConfig:
    """The head: its kind, width, pooling geometry and number of classes."""

    head: str = "lraspp"                  # 'lraspp' (paper) or 'raspp' (MobileNetV2 baseline)
    classes: int = 19
    filters: Optional[int] = None         # None: 128 for lraspp, 256 for raspp (Table 7)
    # lraspp's gate pool: DeepLab's image_pooling_crop_size (kernel per dimension
    # (crop - 1) // output_stride + 1) and image_pooling_stride; or an explicit kernel; or
    # a global pool (torchvision's); pool_crop None and no kernel: 769/1024 of the input and
    # the stride scaled with it (LEGACY_HEAD)
    pool_crop: Optional[Tuple[int, int]] = (REFERENCE_POOL_CROP, REFERENCE_POOL_CROP)
    pool_kernel: Optional[Tuple[int, int]] = None
    pool_stride: Optional[Tuple[int, int]] = REFERENCE_POOL_STRIDE   # None: scaled
    global_pool: bool = False
    gate: str = "hard_sigmoid"            # DeepLab's qsigmoid; 'sigmoid' (torchvision)
    align_corners: bool = True            # DeepLab's resizes; False: half-pixel (torchvision)
    dropout_rate: float = 0.1             # raspp (DeepLab's concat-projection dropout)

    @property
    def width(self) -> int:
        return self.filters or (128 if self.head == "lraspp" else 256)

    def validate(self) -> None:
        if self.head not in HEAD_TYPES:
            raise ValueError(f"segmentation head must be one of {HEAD_TYPES}, got {self.head!r}")
        if isinstance(self.classes, bool) or not isinstance(self.classes, int) \
                or not 2 <= self.classes < IGNORE_LABEL:
            raise ValueError(f"classes must be an integer in [2, {IGNORE_LABEL}) ("
                             f"{IGNORE_LABEL} is the ignore label), got {self.classes!r}")
        if self.filters is not None and self.filters < 1:
            raise ValueError(f"filters must be >= 1, got {self.filters!r}")
        if self.gate not in GATES:
            raise ValueError(f"gate must be one of {GATES}, got {self.gate!r}")
        for name in ("pool_crop", "pool_kernel", "pool_stride"):
            value = getattr(self, name)
            if value is not None and (len(value) != 2 or min(value) < 1):
                raise ValueError(f"{name} must be two integers >= 1, got {value!r}")


@dataclasses.dataclass(frozen=True)
class SegmenterConfig:
    """One segmenter: the backbone's ModelConfig (include_top=False) and the head."""

    model: ModelConfig = ModelConfig()
    seg: SegHeadConfig = SegHeadConfig()

    @classmethod
    def create(cls, head: str = "lraspp", classes: int = 19, filters: Optional[int] = None,
               **model_fields) -> "SegmenterConfig":
        """From flat backbone/graph/regularisation fields; output stride 16 by default."""
        model_fields.setdefault("input_shape", (1024, 2048, 3))
        model_fields.setdefault("output_stride", 16)
        model = ModelConfig.from_flat(include_top=False, **model_fields)
        return cls(model, SegHeadConfig(head=head, classes=classes, filters=filters))

    def validate(self) -> None:
        self.model.validate()
        self.seg.validate()
        h, w = self.model.input_shape[:2]
        if h is None or w is None:
            raise ValueError("the segmenter needs a fixed input resolution (the pooling "
                             "window and the upsampling sizes depend on it)")

    def replace(self, **model_fields) -> "SegmenterConfig":
        return dataclasses.replace(self, model=self.model.replace(**model_fields))

    def to_flat(self) -> Dict:
        flat = dict(self.model.to_flat(), head_type=self.seg.head)
        for key, value in dataclasses.asdict(self.seg).items():
            if key != "head":
                flat[f"seg_{key}"] = list(value) if isinstance(value, tuple) else value
        return flat

    @classmethod
    def from_flat(cls, flat: Dict) -> "SegmenterConfig":
        if flat.get("head_type") not in HEAD_TYPES:
            raise ValueError(f"not a segmentation record (head_type {flat.get('head_type')!r})")
        seg = {f.name: flat[f"seg_{f.name}"] for f in dataclasses.fields(SegHeadConfig)
               if f"seg_{f.name}" in flat}
        if "seg_gate" not in flat:           # written before the gate was a setting
            seg = dict(LEGACY_HEAD, **seg)
        seg = {k: tuple(v) if isinstance(v, list) else v for k, v in seg.items()}
        return cls(ModelConfig.from_record(flat), SegHeadConfig(head=flat["head_type"], **seg))

    # what the loop and reports read
    alpha = property(lambda self: self.model.alpha)
    name = property(lambda self: self.model.name)
    input_shape = property(lambda self: self.model.input_shape)
    classes = property(lambda self: self.seg.classes)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def feature_size(height: int, width: int, stride: int) -> Tuple[int, int]:
    """Size of the map at `stride` ('SAME' stride-2 layers: ceil each time)."""
    h, w, s = height, width, 1
    while s < stride:
        h, w, s = _ceil_div(h, 2), _ceil_div(w, 2), s * 2
    return h, w


def pool_geometry(height: int, width: int, output_stride: int, seg: SegHeadConfig):
    """(kernel, stride) of LR-ASPP's average pool on the output-stride map of an HxW input.

    Default: DeepLab's, kernel scale_dimension(769, 1/output_stride) per dimension (49 at
    output stride 16) moving (4, 5) cells; the kernel is clipped to the map (then it is a
    global pool when it covers the whole map). global_pool: the whole map (torchvision).
    """
    fh, fw = feature_size(height, width, output_stride)
    if seg.global_pool:
        return (fh, fw), (1, 1)
    if seg.pool_kernel is not None:
        kh, kw = seg.pool_kernel
    elif seg.pool_crop is not None:
        kh, kw = ((c - 1) // output_stride + 1 for c in seg.pool_crop)
    else:
        crop = REFERENCE_POOL_CROP * height / REFERENCE_SIZE[0]
        kh = kw = max(1, int((crop - 1) / output_stride + 1))
    if seg.pool_stride is not None:
        sh, sw = seg.pool_stride
    else:
        sh = max(1, int(REFERENCE_POOL_STRIDE[0] * height / REFERENCE_SIZE[0] + 0.5))
        sw = max(1, int(REFERENCE_POOL_STRIDE[1] * width / REFERENCE_SIZE[1] + 0.5))
    return (min(kh, fh), min(kw, fw)), (sh, sw)


def low_level_block(config: ModelConfig) -> int:
    """The (1-based) row whose depthwise output is the output-stride-8 feature: the last
    non-dilated row at output stride 8 (bneck6 for Large, bneck3 for Small)."""
    stride, index = 2, None
    for b in config.scaled_arch.blocks:
        stride *= b.stride
        if stride == 8 and b.dilation == 1:
            index = b.index
    if index is None:
        raise ValueError("the backbone has no row at output stride 8")
    return index


def build_segmenter(config: SegmenterConfig, pool_as_depthwise: bool = False) -> tf_keras.Model:
    """image -> per-pixel class logits [B, H, W, classes] at the input resolution.

    pool_as_depthwise: LR-ASPP's (non-global) average pool as a frozen depthwise conv with
    weights 1/(kh*kw): the same values, but XNNPACK runs it in int8 (it does not take an
    int8 AVERAGE_POOL_2D, which would split the graph); used for int8 export only.
    """
    config.validate()
    model_config, seg = config.model, config.seg
    batch_norm, regularizer = batch_norm_factory(model_config), kernel_regularizer(model_config)
    inputs, x = model_inputs(model_config)
    backbone = build_backbone(x, model_config)
    features = backbone.output
    height, width = model_config.input_shape[:2]
    os_ = model_config.backbone.output_stride
    fh, fw = feature_size(height, width, os_)
    filters = seg.width

    def conv(t, n, name, bias=False):
        return layers.Conv2D(n, 1, use_bias=bias, kernel_regularizer=regularizer,
                             name=PREFIX + name)(t)

    def conv_bn_relu(t, n, name):
        t = batch_norm(f"{PREFIX}{name}_bn")(conv(t, n, name))
        return layers.ReLU(name=f"{PREFIX}{name}_relu")(t)

    def resize(t, size, name):
        if tuple(t.shape[1:3]) == tuple(size):
            return t
        if seg.align_corners:
            return AlignedResize(size[0], size[1], name=PREFIX + name)(t)
        return layers.Resizing(size[0], size[1], interpolation="bilinear",
                               name=PREFIX + name)(t)

    if seg.head == "lraspp":
        branch = conv_bn_relu(features, filters, "aspp0")
        (kh, kw), (sh, sw) = pool_geometry(height, width, os_, seg)
        if (kh, kw) == (fh, fw):
            gate = layers.GlobalAveragePooling2D(keepdims=True, name=PREFIX + "pool")(features)
        elif pool_as_depthwise:
            pool = layers.DepthwiseConv2D(
                (kh, kw), (sh, sw), padding="valid", use_bias=False, trainable=False,
                depthwise_initializer=tf_keras.initializers.Constant(1.0 / (kh * kw)),
                name=PREFIX + "pool")
            gate = pool(features)
        else:
            gate = layers.AveragePooling2D((kh, kw), (sh, sw), padding="valid",
                                           name=PREFIX + "pool")(features)
        gate = conv(gate, filters, "pool_conv", bias=True)
        gate = hard_sigmoid(gate, PREFIX + "pool_gate") if seg.gate == "hard_sigmoid" else \
            layers.Activation("sigmoid", name=PREFIX + "pool_sigmoid")(gate)
        if gate.shape[1] != 1 or gate.shape[2] != 1:
            gate = resize(gate, (fh, fw), "pool_resize")
        x = layers.Multiply(name=PREFIX + "aspp_mul")([branch, gate])
        low_size = feature_size(height, width, 8)
        x = resize(x, low_size, "aspp_resize")
        x = conv(x, seg.classes, "logits_high", bias=True)
        index = low_level_block(model_config)
        low = tf_keras.Model(inputs, features).get_layer(
            naming.act(f"{naming.bneck(index)}_depthwise")).output
        low = conv(low, seg.classes, "logits_low", bias=True)
        x = layers.Add(name=PREFIX + "logits_sum")([x, low])
    else:
        branch = conv_bn_relu(features, filters, "aspp0")
        pooled = layers.GlobalAveragePooling2D(keepdims=True, name=PREFIX + "pool")(features)
        pooled = conv_bn_relu(pooled, filters, "pool_conv")
        # a bilinear resize of a 1x1 map is a broadcast; XNNPACK takes RESIZE_BILINEAR but
        # not the RESIZE_NEAREST_NEIGHBOR of UpSampling2D (measured: a second partition)
        pooled = resize(pooled, (fh, fw), "pool_broadcast")
        x = layers.Concatenate(name=PREFIX + "concat")([pooled, branch])
        x = conv_bn_relu(x, filters, "projection")
        x = layers.Dropout(seg.dropout_rate, name=PREFIX + "dropout")(x)
        x = conv(x, seg.classes, "logits", bias=True)
    x = resize(x, (height, width), "upsample")
    variant = "_rf2" if model_config.backbone.rf2 else ""
    return tf_keras.Model(inputs, x, name=f"{seg.head}_mobilenet_v3_{model_config.name}{variant}")
