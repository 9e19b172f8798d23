"""COCO mAP @[.5:.95] and @.5 with pycocotools, over detections gathered batch by batch."""

import contextlib
import io
from typing import Dict

import numpy as np


class CocoEvaluator:
    """Collects ground truth and detections in original-image pixels; `result()` scores them.

    Boxes arrive normalised [ymin, xmin, ymax, xmax] with each image's (height, width);
    classes as slots 1..K (ground truth) and 0-based foreground indices (detections). Fed on
    the host (DetectionTask.aggregate_logs), one thread: no lock.
    """

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.reset()

    def reset(self):
        self.images, self.gt, self.dets = {}, [], []

    def add(self, image_ids, sizes, gt_boxes, gt_classes, boxes, classes, scores, counts):
        for r, image_id in enumerate(np.asarray(image_ids)):
            if image_id < 0 or int(image_id) in self.images:
                continue      # padding, or an image already added
            h, w = (float(v) for v in sizes[r])
            self.images[int(image_id)] = (h, w)
            for b, c in zip(gt_boxes[r], gt_classes[r]):
                if c > 0:
                    self.gt.append((int(image_id), _xywh(b, h, w), int(c)))
            for k in range(int(counts[r])):
                self.dets.append((int(image_id), _xywh(boxes[r, k], h, w),
                                  int(classes[r, k]) + 1, float(scores[r, k])))

    def result(self) -> Dict[str, float]:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
        if not self.images:
            return {"mAP": 0.0, "mAP50": 0.0}
        gt = COCO()
        gt.dataset = {
            "images": [{"id": i, "height": h, "width": w} for i, (h, w) in self.images.items()],
            "categories": [{"id": c} for c in range(1, self.num_classes + 1)],
            "annotations": [{"id": n + 1, "image_id": i, "bbox": b, "area": b[2] * b[3],
                             "category_id": c, "iscrowd": 0}
                            for n, (i, b, c) in enumerate(self.gt)]}
        with contextlib.redirect_stdout(io.StringIO()):
            gt.createIndex()
            if not self.dets:
                return {"mAP": 0.0, "mAP50": 0.0}
            dt = gt.loadRes([{"image_id": i, "bbox": b, "category_id": c, "score": s}
                             for i, b, c, s in self.dets])
            evaluator = COCOeval(gt, dt, "bbox")
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        stats = evaluator.stats
        return {"mAP": float(max(stats[0], 0.0)), "mAP50": float(max(stats[1], 0.0))}


def _xywh(box, h, w):
    ymin, xmin, ymax, xmax = (float(v) for v in box)
    return [xmin * w, ymin * h, (xmax - xmin) * w, (ymax - ymin) * h]
