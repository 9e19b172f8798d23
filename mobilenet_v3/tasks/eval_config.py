"""What evaluate.py passes to a task's evaluator: the data of every task, plain fields."""

import dataclasses
from typing import Optional, Sequence


@dataclasses.dataclass
class EvalConfig:
    max_examples: int = 0                 # score the first N images (0: all)
    num_threads: int = 1                  # TFLite interpreter threads
    batch_size: int = 50
    # classification: tfds imagenet2012 or a <wnid>/*.jpg folder
    image_folder: Optional[str] = None
    class_map: Optional[Sequence[str]] = None
    data_dir: Optional[str] = None
    manual_dir: Optional[str] = None
    # detection: an official instances_*.json and its image folder
    annotations: Optional[str] = None
    images: Optional[str] = None
    category_ids: str = "auto"            # auto | identity | sorted (coco_eval.category_ids)
    nms: str = "per_class"                # Keras models: per_class (OD API eval) | fast
    # segmentation: images/ + masks/ (255 = ignore)
    mask_folder: Optional[str] = None
    eval_size: Optional[Sequence[int]] = None   # HxW the network runs at (default: trained)
