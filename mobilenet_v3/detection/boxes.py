"""Anchors, box coding, IoU matching and decoding, as the OD API's SSD does them.

* Anchors: `ssd_anchor_generator` (multiple_grid_anchor_generator.create_ssd_anchors) on the
  six feature maps, stride 1/grid and offset half a cell, order (y, x, anchor) to match the
  predictors' reshape. Boxes are normalised [ymin, xmin, ymax, xmax].
* Box coder: faster_rcnn_box_coder with scales 10/10/5/5: (ty, tx, th, tw) =
  (10 dy / ha, 10 dx / wa, 5 log(h / ha), 5 log(w / wa)).
* Matcher: argmax_matcher, matched and unmatched thresholds 0.5, force_match_for_each_row
  (every ground-truth box gets its best anchor), IoU similarity.
"""

from typing import Optional, Tuple

import numpy as np
import tensorflow as tf

from mobilenet_v3.modeling.heads.ssdlite import DetectorConfig, feature_map_sizes

MATCH_THRESHOLD = 0.5
BACKGROUND = 0


def anchors(config: DetectorConfig) -> np.ndarray:
    """[num_anchors, 4] float32 corner boxes, normalised to the image."""
    height, width = config.model.input_shape[:2]
    ssd = config.ssd
    # base_anchor_size [1, 1] scaled so anchors are square in pixels on non-square inputs.
    short = min(height, width)
    base_h, base_w = short / height, short / width
    out = []
    for (gh, gw), specs in zip(feature_map_sizes(height, width, ssd.num_layers),
                               ssd.box_specs()):
        scales = np.array([s for s, _ in specs], np.float64)
        ratios = np.sqrt(np.array([r for _, r in specs], np.float64))
        heights, widths = scales / ratios * base_h, scales * ratios * base_w
        yc = (np.arange(gh) + 0.5) / gh
        xc = (np.arange(gw) + 0.5) / gw
        y, x, a = np.meshgrid(yc, xc, np.arange(len(specs)), indexing="ij")
        h, w = heights[a], widths[a]
        out.append(np.stack([y - h / 2, x - w / 2, y + h / 2, x + w / 2], -1).reshape(-1, 4))
    return np.concatenate(out).astype(np.float32)


def to_center_size(boxes):
    """[..., 4] corners -> (yc, xc, h, w)."""
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return (ymin + ymax) / 2, (xmin + xmax) / 2, ymax - ymin, xmax - xmin


def encode(boxes, anchor_boxes, scales) -> tf.Tensor:
    """Ground-truth corner boxes [N, 4] relative to anchors [N, 4] -> codes [N, 4]."""
    eps = 1e-8
    yc, xc, h, w = to_center_size(boxes)
    ya, xa, ha, wa = to_center_size(anchor_boxes)
    ha, wa = ha + eps, wa + eps
    h, w = tf.maximum(h, eps), tf.maximum(w, eps)
    return tf.stack([(yc - ya) / ha * scales[0], (xc - xa) / wa * scales[1],
                     tf.math.log(h / ha) * scales[2], tf.math.log(w / wa) * scales[3]], -1)


def decode(codes, anchor_boxes, scales) -> tf.Tensor:
    """Codes [..., N, 4] -> corner boxes [..., N, 4] (what TFLite_Detection_PostProcess does)."""
    ya, xa, ha, wa = to_center_size(anchor_boxes)
    ty, tx, th, tw = tf.unstack(codes, axis=-1)
    yc, xc = ty / scales[0] * ha + ya, tx / scales[1] * wa + xa
    h, w = tf.exp(th / scales[2]) * ha, tf.exp(tw / scales[3]) * wa
    return tf.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], -1)


def iou(a, b) -> tf.Tensor:
    """Pairwise IoU of corner boxes a [M, 4] and b [N, 4] -> [M, N]."""
    a, b = a[:, None, :], b[None, :, :]
    ymin, xmin = tf.maximum(a[..., 0], b[..., 0]), tf.maximum(a[..., 1], b[..., 1])
    ymax, xmax = tf.minimum(a[..., 2], b[..., 2]), tf.minimum(a[..., 3], b[..., 3])
    inter = tf.maximum(ymax - ymin, 0.0) * tf.maximum(xmax - xmin, 0.0)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / tf.maximum(area_a + area_b - inter, 1e-8)


def assign_targets(gt_boxes, gt_classes, anchor_boxes, scales
                   ) -> Tuple[tf.Tensor, tf.Tensor]:
    """Per-anchor (class target int32 [N]: 0 background or the matched box's class slot,
    box code target [N, 4]) for one image. Padding rows have class < 1 and are ignored."""
    anchor_boxes = tf.convert_to_tensor(anchor_boxes)
    valid = gt_classes > 0
    similarity = iou(gt_boxes, anchor_boxes)                       # [M, N]
    similarity = tf.where(valid[:, None], similarity, -1.0)
    best_gt = tf.argmax(similarity, axis=0, output_type=tf.int32)   # [N]
    matched = tf.reduce_max(similarity, axis=0) >= MATCH_THRESHOLD
    # force_match_for_each_row: each real box claims its best anchor.
    best_anchor = tf.argmax(similarity, axis=1, output_type=tf.int32)   # [M]
    rows = tf.boolean_mask(tf.range(tf.shape(gt_boxes)[0]), valid)
    forced = tf.boolean_mask(best_anchor, valid)
    best_gt = tf.tensor_scatter_nd_update(best_gt, forced[:, None], rows)
    matched = tf.tensor_scatter_nd_update(matched, forced[:, None],
                                          tf.ones_like(forced, tf.bool))
    classes = tf.where(matched, tf.gather(gt_classes, best_gt), BACKGROUND)
    codes = encode(tf.gather(gt_boxes, best_gt), anchor_boxes, scales)
    codes = tf.where(matched[:, None], codes, 0.0)
    return tf.cast(classes, tf.int32), codes


def postprocess(box_encodings, class_logits, anchor_boxes, config: DetectorConfig,
                per_class: Optional[bool] = None):
    """Batched detections like the exported files (TFLite_Detection_PostProcess, boxes clipped
    to the image): (boxes [B, K, 4], classes [B, K] 0-based without background, scores [B, K],
    count [B]). NMS per class when `per_class` (default: the config's per_class_nms; the op's
    use_regular_nms), else fast NMS with one class per box (the op's default)."""
    ssd = config.ssd
    per_class = ssd.per_class_nms if per_class is None else per_class
    boxes = decode(box_encodings, anchor_boxes, ssd.box_scales)    # clipped after NMS, as the op
    scores = tf.sigmoid(class_logits)[..., 1:]          # drop the background slot
    if per_class:
        b, s, c, n = tf.image.combined_non_max_suppression(
            boxes[:, :, None, :], scores, ssd.max_detections, ssd.max_detections,
            iou_threshold=ssd.iou_threshold, score_threshold=ssd.score_threshold,
            clip_boxes=True)
        return b, tf.cast(c, tf.int32), s, n
    best_class = tf.argmax(scores, axis=-1, output_type=tf.int32)
    best_score = tf.reduce_max(scores, axis=-1)

    def one(args):
        b, s, c = args
        keep, valid = tf.image.non_max_suppression_padded(
            b, s, ssd.max_detections, iou_threshold=ssd.iou_threshold,
            score_threshold=ssd.score_threshold, pad_to_max_output_size=True)
        mask = tf.range(ssd.max_detections) < valid
        keep = tf.where(mask, keep, 0)
        zero = tf.zeros_like
        kept = tf.clip_by_value(tf.gather(b, keep), 0.0, 1.0)
        return (tf.where(mask[:, None], kept, zero(kept)),
                tf.where(mask, tf.gather(c, keep), 0),
                tf.where(mask, tf.gather(s, keep), 0.0), valid)
    return tf.map_fn(one, (boxes, best_score, best_class),
                     fn_output_signature=(tf.float32, tf.int32, tf.float32, tf.int32))
