"""A network as channel spaces, and the NetAdapt proposals as edits of one space's width.

A *space* is a set of channels that several layers must agree on: a bottleneck's expansion
(expand 1x1 -> depthwise -> SE -> project), or a bottleneck width shared by a residual group
(every project output of the group, and the next layer's input), the stem's output, the last
1x1 conv. The paper's two proposal kinds (section 4.2) are then one operation, a space made
narrower: (1) an expansion space; (2) a width space, which keeps the residual adds valid by
construction. An edit that would change the network's structure (an expansion of the input's
size disappears, a residual appears) is refused.

Networks are explicit `ArchSpec`s (model_config.json's `spec`): channels as written.
"""

import dataclasses
import json
from typing import Dict, List, Optional, Tuple

from mobilenet_v3.modeling.config import ModelConfig
from mobilenet_v3.specs import ArchSpec, Bneck, ScaledArch, scale_arch

CHANNEL_STEP = 8     # every width stays a multiple of 8 (make_divisible's, what XNNPACK packs)
EXPANSION, WIDTH, LAST_CONV = "expansion", "width", "last_conv"
STEM = "stem"
LAST = "last"


def explicit_spec(config: ModelConfig, name: Optional[str] = None) -> ArchSpec:
    """The rows `config` builds, channels as built (its width multiplier and variants applied),
    so that edits change channels directly."""
    scaled = config.scaled_arch
    spec = scaled.spec
    blocks = tuple(Bneck(kernel=b.kernel, exp=b.exp, out=b.out, se=b.se_channels is not None,
                         nl=b.nl, stride=b.stride, dilation=b.dilation) for b in scaled.blocks)
    return dataclasses.replace(
        spec, name=name or spec.name, stem_channels=scaled.stem_channels, blocks=blocks,
        last_conv_channels=scaled.last_conv_channels, head_channels=scaled.head_channels)


def spec_of(config: ModelConfig) -> ArchSpec:
    """The rows `config` builds: its explicit spec, or its table scaled (explicit_spec)."""
    return config.arch if config.backbone.spec is not None else explicit_spec(config)


def with_spec(config: ModelConfig, spec: ArchSpec) -> ModelConfig:
    """`config` building `spec`'s rows (an explicit spec takes no multiplier or variant)."""
    return config.replace(spec=spec, alpha=1.0, minimalistic=False, reduced_tail=False,
                          rf2=False)


@dataclasses.dataclass(frozen=True)
class Spaces:
    """Which space each layer's input and output channels belong to."""

    stem: str
    expansion: Tuple[str, ...]    # per block (its input space when it has no expansion)
    se: Tuple[Optional[str], ...]
    inputs: Tuple[str, ...]
    outputs: Tuple[str, ...]
    last: str = LAST


def spaces(spec: ArchSpec) -> Spaces:
    scaled = scale_arch(spec, 1.0)
    current, exps, ses, ins, outs = STEM, [], [], [], []
    for i, b in enumerate(scaled.blocks, start=1):
        ins.append(current)
        exps.append(f"b{i}.exp" if b.has_expansion else current)
        ses.append(f"b{i}.se" if b.se_channels else None)
        current = current if b.has_residual else f"b{i}.out"
        outs.append(current)
    return Spaces(STEM, tuple(exps), tuple(ses), tuple(ins), tuple(outs))


def widths(spec: ArchSpec) -> Dict[str, int]:
    """Every space's channel count."""
    scaled, sp = scale_arch(spec, 1.0), spaces(spec)
    result = {STEM: scaled.stem_channels, LAST: scaled.last_conv_channels}
    for b, exp, se, out in zip(scaled.blocks, sp.expansion, sp.se, sp.outputs):
        result[exp], result[out] = b.exp, b.out
        if se:
            result[se] = b.se_channels
    return result


def kind_of(space: str) -> str:
    if space == LAST:
        return LAST_CONV
    return EXPANSION if space.endswith(".exp") else WIDTH


def proposal_spaces(spec: ArchSpec) -> List[str]:
    """The spaces NetAdapt may shrink, in network order: every expansion, every width group
    (the stem's included), the last 1x1 conv. SE squeezes follow their expansion."""
    sp, seen, result = spaces(spec), set(), []
    for space in (sp.stem,) + tuple(x for pair in zip(sp.expansion, sp.outputs) for x in pair) \
            + (sp.last,):
        if space not in seen:
            seen.add(space)
            result.append(space)
    return result


def _structure(spec: ArchSpec):
    scaled = scale_arch(spec, 1.0)
    return [(b.has_expansion, b.has_residual) for b in scaled.blocks]


def set_width(spec: ArchSpec, space: str, channels: int) -> Optional[ArchSpec]:
    """`spec` with `space` at `channels`; None when that would change the structure (an
    expansion the size of its input vanishes, a residual add appears) or is not a width."""
    if channels < CHANNEL_STEP or channels % CHANNEL_STEP:
        return None
    sp = spaces(spec)
    stem = channels if space == sp.stem else spec.stem_channels
    last = channels if space == sp.last else spec.last_conv_channels
    blocks = tuple(dataclasses.replace(
        b, exp=channels if sp.expansion[i] == space else b.exp,
        out=channels if sp.outputs[i] == space else b.out) for i, b in enumerate(spec.blocks))
    edited = dataclasses.replace(spec, stem_channels=stem, blocks=blocks,
                                 last_conv_channels=last)
    if edited == spec or _structure(edited) != _structure(spec):
        return None
    return edited


def key(spec: ArchSpec, resolution: int, classes: int) -> str:
    """The cache key of one network: its rows, input size and classes."""
    return json.dumps({"spec": dataclasses.asdict(spec), "resolution": resolution,
                       "classes": classes}, sort_keys=True, separators=(",", ":"))


def describe_edit(parent: ArchSpec, child: ArchSpec) -> str:
    """'b4.exp 96 -> 88' for each space whose width differs."""
    a, b = widths(parent), widths(child)
    changed = [s for s in proposal_spaces(parent) if a.get(s) != b.get(s)]
    return ", ".join(f"{s} {a[s]} -> {b[s]}" for s in changed) or "unchanged"


def scaled(spec: ArchSpec) -> ScaledArch:
    return scale_arch(spec, 1.0)


def modeling_spec(record) -> ArchSpec:
    """An ArchSpec from its dict form (history.json, proposals.json) or as it is."""
    if isinstance(record, ArchSpec):
        return record
    from mobilenet_v3.modeling.config import spec_from_dict
    return spec_from_dict(record)
