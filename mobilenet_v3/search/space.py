"""MnasNet's factorized hierarchical search space around a seed network, as data.

The seed's bottleneck rows fall into *groups* (consecutive rows with one output width, as
the paper's tables are laid out). For each group the controller makes the decisions of
GROUP_CHOICES, the same for every row of the group (MnasNet section 4.1). Every choice holds
the seed's own value, so MobileNetV3-Large and -Small are points of their spaces
(`seed_actions`). A sampled network is an explicit `ArchSpec`: it builds, trains, exports
and benchmarks like any other.
"""

import dataclasses
from typing import List, Optional, Sequence, Tuple

from mobilenet_v3.specs import HS, RE, ArchSpec, Bneck, make_divisible


@dataclasses.dataclass(frozen=True)
class Choice:
    name: str
    options: Tuple


# One row per decision, made once per block group.
GROUP_CHOICES = (
    #      name         options
    Choice("kernel",    (3, 5)),             # depthwise kernel
    Choice("se",        (False, True)),      # squeeze-and-excite (a quarter of the expansion)
    Choice("nl",        (RE, HS)),           # non-linearity
    Choice("layers",    (-1, 0, 1)),         # rows, relative to the seed's group (at least 1)
    Choice("expansion", (0.5, 1.0, 1.5)),    # x the seed's expansion sizes
    Choice("width",     (0.75, 1.0, 1.25)),  # x the seed's output channels
)
SEED_VALUES = {"layers": 0, "expansion": 1.0, "width": 1.0}   # the seed's group as it is


def groups(spec: ArchSpec) -> List[Tuple[Bneck, ...]]:
    """The seed's rows cut where the output width changes."""
    result: List[List[Bneck]] = []
    for block in spec.blocks:
        if result and result[-1][-1].out == block.out and block.stride == 1:
            result[-1].append(block)
        else:
            result.append([block])
    return [tuple(g) for g in result]


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    seed: ArchSpec
    choices: Tuple[Choice, ...] = GROUP_CHOICES

    @property
    def groups(self) -> List[Tuple[Bneck, ...]]:
        return groups(self.seed)

    @property
    def sizes(self) -> List[int]:
        """Options per decision, in the controller's order (group by group)."""
        return [len(c.options) for _ in self.groups for c in self.choices]

    def decisions(self) -> List[str]:
        return [f"g{g + 1}.{c.name}" for g in range(len(self.groups)) for c in self.choices]

    def values(self, actions: Sequence[int]) -> List[dict]:
        """Per group, {choice name: chosen value}."""
        if len(actions) != len(self.sizes):
            raise ValueError(f"{len(actions)} actions for a space of {len(self.sizes)} "
                             "decisions")
        per_group, k = [], 0
        for _ in self.groups:
            row = {}
            for choice in self.choices:
                if not 0 <= int(actions[k]) < len(choice.options):
                    raise ValueError(f"action {actions[k]} out of range for {choice.name} "
                                     f"({len(choice.options)} options)")
                row[choice.name] = choice.options[int(actions[k])]
                k += 1
            per_group.append(row)
        return per_group

    def decode(self, actions: Sequence[int], name: Optional[str] = None) -> ArchSpec:
        blocks = []
        for rows, value in zip(self.groups, self.values(actions)):
            count = max(1, len(rows) + value.get("layers", 0))
            rows = list(rows[:count]) + [dataclasses.replace(rows[-1], stride=1)] * max(
                0, count - len(rows))
            for b in rows:
                blocks.append(dataclasses.replace(
                    b, kernel=value.get("kernel", b.kernel), se=value.get("se", b.se),
                    nl=value.get("nl", b.nl),
                    exp=make_divisible(b.exp * value.get("expansion", 1.0)),
                    out=make_divisible(b.out * value.get("width", 1.0))))
        return dataclasses.replace(self.seed, name=name or f"{self.seed.name}-nas",
                                   blocks=tuple(blocks))

    def seed_actions(self) -> Tuple[int, ...]:
        """The actions that decode to the seed itself; a ValueError when the seed is not a
        point of this space (a group whose rows differ in a searched choice)."""
        actions = []
        for g, rows in enumerate(self.groups):
            for choice in self.choices:
                if choice.name in SEED_VALUES:
                    value = SEED_VALUES[choice.name]
                else:
                    found = {getattr(b, choice.name) for b in rows}
                    if len(found) != 1:
                        raise ValueError(f"group {g + 1} of {self.seed.name} mixes "
                                         f"{choice.name} {sorted(found)}: not a point")
                    value = found.pop()
                if value not in choice.options:
                    raise ValueError(f"group {g + 1}: {choice.name}={value!r} is not an "
                                     f"option {choice.options}")
                actions.append(choice.options.index(value))
        return tuple(actions)

    def describe(self, actions: Sequence[int]) -> str:
        """'g1 k3 se RE L+0 e1.0 w1.0 | g2 ...': what a sample chose, compactly."""
        short = {RE: "RE", HS: "HS"}
        parts = []
        for g, value in enumerate(self.values(actions), start=1):
            parts.append(" ".join([f"g{g}"] + [
                f"k{v}" if k == "kernel" else ("se" if v else "-") if k == "se" else
                short.get(v, v) if k == "nl" else f"L{v:+d}" if k == "layers" else
                f"{k[0]}{v}" for k, v in value.items()]))
        return " | ".join(parts)
