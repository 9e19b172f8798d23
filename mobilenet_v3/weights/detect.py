"""Which MobileNetV3 variant a list of kernel shapes belongs to (large/small, alpha, ...).

Pure shape matching against `plan.plan` for the published variants' parameters; no model is built.
"""

from typing import List, Optional, Sequence, Tuple

from mobilenet_v3.modeling.config import DEFAULT_INPUT_SHAPE, ModelConfig
from mobilenet_v3.weights import plan as plan_lib

NAMES = ("small", "large")
ALPHAS = (1.0, 0.75, 0.5, 0.35, 1.25, 1.5)   # first match wins (identical shapes = same net)

Shapes = Sequence[Tuple[Tuple[int, ...], str]]


def fits(shapes: Shapes, slots: List[plan_lib.Slot]) -> bool:
    return len(shapes) == len(slots) and all(
        tuple(shape) == slot.shape and kind == slot.kind
        for (shape, kind), slot in zip(shapes, slots))


def detect(shapes: Shapes, input_shape=DEFAULT_INPUT_SHAPE,
           **fixed) -> Optional[ModelConfig]:
    """The ModelConfig whose convs have exactly `shapes`, or None.

    `fixed` pins fields (name, alpha, minimalistic) when the caller knows them.
    include_top and classes follow from the shapes (a top is two convs more).
    """
    if not shapes:
        return None
    channels = shapes[0][0][2] if len(shapes[0][0]) == 4 else 3
    input_shape = tuple(input_shape[:2]) + (channels,)
    for name in ([fixed["name"]] if "name" in fixed else NAMES):
        for minimalistic in ([fixed["minimalistic"]] if "minimalistic" in fixed
                             else (False, True)):
            for alpha in ([fixed["alpha"]] if "alpha" in fixed else ALPHAS):
                base = ModelConfig.from_flat(name=name, alpha=alpha, minimalistic=minimalistic,
                                   include_top=False, input_shape=input_shape)
                if fits(shapes, plan_lib.plan(base)):
                    return base
                classes = shapes[-1][0][-1] if len(shapes[-1][0]) == 4 else 0
                if classes >= 1:
                    top = base.replace(include_top=True, classes=int(classes))
                    if fits(shapes, plan_lib.plan(top)):
                        return top
    return None


def describe(config: ModelConfig) -> str:
    """'MobileNetV3-Small 1.0 (1001 classes)' style summary."""
    variant = config.name.capitalize() + ("-minimalistic" if config.minimalistic else "")
    top = f"{config.classes} classes" if config.include_top else "no top"
    return f"MobileNetV3-{variant} {config.alpha:g} ({top})"


def first_difference(shapes: Shapes, slots: List[plan_lib.Slot]):
    """(index, expected slot or None, found shape or None) of the first disagreement."""
    for i in range(max(len(shapes), len(slots))):
        found = tuple(shapes[i][0]) if i < len(shapes) else None
        kind = shapes[i][1] if i < len(shapes) else None
        slot = slots[i] if i < len(slots) else None
        if slot is None or found is None or found != slot.shape or kind != slot.kind:
            return i, slot, found
    return None
