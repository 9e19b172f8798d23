"""COCO 2017's 80 detection categories by their official ids (1..90, ten ids unused).

The OD API's COCO detectors have 91 class slots: 0 background, slot k = category id k; tfds
`coco/2017` numbers the same 80 categories 0..79 in id order (`official_id`).
"""

from typing import List

CATEGORIES = {
    1: "person", 2: "bicycle", 3: "car", 4: "motorcycle", 5: "airplane", 6: "bus", 7: "train",
    8: "truck", 9: "boat", 10: "traffic light", 11: "fire hydrant", 13: "stop sign",
    14: "parking meter", 15: "bench", 16: "bird", 17: "cat", 18: "dog", 19: "horse",
    20: "sheep", 21: "cow", 22: "elephant", 23: "bear", 24: "zebra", 25: "giraffe",
    27: "backpack", 28: "umbrella", 31: "handbag", 32: "tie", 33: "suitcase", 34: "frisbee",
    35: "skis", 36: "snowboard", 37: "sports ball", 38: "kite", 39: "baseball bat",
    40: "baseball glove", 41: "skateboard", 42: "surfboard", 43: "tennis racket",
    44: "bottle", 46: "wine glass", 47: "cup", 48: "fork", 49: "knife", 50: "spoon",
    51: "bowl", 52: "banana", 53: "apple", 54: "sandwich", 55: "orange", 56: "broccoli",
    57: "carrot", 58: "hot dog", 59: "pizza", 60: "donut", 61: "cake", 62: "chair",
    63: "couch", 64: "potted plant", 65: "bed", 67: "dining table", 70: "toilet", 72: "tv",
    73: "laptop", 74: "mouse", 75: "remote", 76: "keyboard", 77: "cell phone",
    78: "microwave", 79: "oven", 80: "toaster", 81: "sink", 82: "refrigerator", 84: "book",
    85: "clock", 86: "vase", 87: "scissors", 88: "teddy bear", 89: "hair drier",
    90: "toothbrush"}
OFFICIAL_IDS = tuple(sorted(CATEGORIES))
UNUSED = "?"       # the OD API label map's name for the ten ids COCO 2017 does not use


def official_id(contiguous: int) -> int:
    """tfds coco/2017's label 0..79 -> the official category id."""
    return OFFICIAL_IDS[int(contiguous)]


def slot_labels(slots: int = 91) -> List[str]:
    """labels.txt of an OD API COCO detector: 'background', then the name of id 1..slots-1."""
    return ["background"] + [CATEGORIES.get(i, UNUSED) for i in range(1, slots)]
