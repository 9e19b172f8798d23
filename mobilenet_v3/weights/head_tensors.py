"""Tensors of a whole detector / segmenter file with their place in our model, and the
all-or-nothing write of them (what every head-file reader produces: official_ssdlite,
deeplab_graph, head_files).

`load(model, tensors, is_class_layer)` writes every tensor into the model, or nothing: a tensor
without a place, or of another shape, is refused by name; the class-dependent layers (the
detector's class predictors, the segmenter's logits) stay as built when the run has other
classes than the file, and are reported. BatchNorm statistics are rebased from the file's
epsilon to each layer's own.
"""

import dataclasses
from typing import Callable, Dict, List, Optional

import numpy as np
import tf_keras

from mobilenet_v3.weights.errors import ArchitectureMismatchError

BN_ATTRS = ("gamma", "beta", "moving_mean", "moving_variance")
CONSTANT_LAYERS = ("seg_pool",)     # the gate's average pool as a frozen depthwise: built, not learnt


@dataclasses.dataclass
class Tensor:
    source: str                     # the name in the file, for messages
    layer: str                      # our layer
    attr: str                       # its Keras weight: kernel, depthwise_kernel, bias, gamma ...
    value: np.ndarray
    bn_epsilon: Optional[float] = None   # the file's BN epsilon (BN tensors only)



def tensors_of(values: Dict[str, np.ndarray], origin: str, place_of: Callable, epsilon_of: Callable,
             model: str) -> List[Tensor]:
    """{file name: value} -> Tensors via `place_of(name)` -> (layer, attr) or None."""
    out = []
    for name, value in values.items():
        place = place_of(name)
        if place is None:
            raise ArchitectureMismatchError(f"{origin!r}: {name!r} {tuple(np.shape(value))} has "
                                            f"no place in our {model}")
        layer, attr = place
        out.append(Tensor(name, layer, attr, np.asarray(value, np.float32),
                          epsilon_of(layer) if attr in BN_ATTRS else None))
    return out


def _batch_norm_values(values: Dict[str, np.ndarray], eps_file: float, eps_ours: float):
    """The same normalisation under our epsilon: the difference goes into the variance
    (var + eps_file - eps_ours), or into gamma where that would be negative."""
    gamma, beta, mean, var = (values[k] for k in BN_ATTRS)
    if not np.isclose(eps_file, eps_ours, rtol=1e-6, atol=0.0):
        shifted = var + eps_file - eps_ours
        if np.all(shifted >= 0):
            var = shifted
        else:
            gamma = gamma * np.sqrt((var + eps_ours) / (var + eps_file))
    return [gamma, beta, mean, var]


def load(model: tf_keras.Model, tensors: List[Tensor],
         is_class_layer: Callable[[str], bool] = lambda name: False, origin: str = "") -> Dict:
    """Writes `tensors` into `model`, all or nothing; class layers of another shape stay new.

    Raises ArchitectureMismatchError naming the first tensor without a place or of another
    shape, or the first model weight no tensor fills.
    """
    where = f"{origin!r}: " if origin else ""
    layers = {layer.name: layer for layer in model.layers}
    plan: Dict[str, Dict[str, Tensor]] = {}
    new_layers = set()
    for t in tensors:
        layer = layers.get(t.layer)
        variable = getattr(layer, t.attr, None) if layer is not None else None
        if variable is None:
            raise ArchitectureMismatchError(
                f"{where}{t.source!r} {tuple(t.value.shape)}: its place {t.layer}.{t.attr} is "
                f"not in {model.name!r} (another architecture or head?)")
        if tuple(variable.shape) != tuple(t.value.shape):
            if is_class_layer(t.layer):
                new_layers.add(t.layer)
                continue
            raise ArchitectureMismatchError(
                f"{where}{t.source!r}: shape {tuple(t.value.shape)}, but {t.layer}.{t.attr} of "
                f"{model.name!r} is {tuple(variable.shape)}: first tensor that disagrees")
        if t.attr in plan.setdefault(t.layer, {}):
            raise ArchitectureMismatchError(f"{where}{t.source!r} and "
                                            f"{plan[t.layer][t.attr].source!r} both fill "
                                            f"{t.layer}.{t.attr}")
        plan[t.layer][t.attr] = t
    for name in new_layers:
        plan.pop(name, None)
    for layer in model.layers:
        if layer.name in CONSTANT_LAYERS or layer.name in new_layers:
            continue
        for variable in layer.weights:
            attr = variable.name.split("/")[-1].split(":")[0]
            if attr not in plan.get(layer.name, {}):
                raise ArchitectureMismatchError(
                    f"{where}model weight {layer.name}.{attr} {tuple(variable.shape)} has no "
                    "tensor in the file (another architecture or head?)")
    adjusted = []
    for name, values in plan.items():
        layer = layers[name]
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            eps_ours = float(layer.epsilon)
            eps_file = next(iter(values.values())).bn_epsilon
            eps_file = eps_ours if eps_file is None else eps_file
            if not np.isclose(eps_file, eps_ours, rtol=1e-6, atol=0.0):
                adjusted.append(name)
            arrays = {k: v.value for k, v in values.items()}
            layer.set_weights([np.asarray(v, np.float32)
                               for v in _batch_norm_values(arrays, eps_file, eps_ours)])
        else:
            for attr, t in values.items():
                getattr(layer, attr).assign(t.value)
    written = [t for values in plan.values() for t in values.values()]
    return {"tensors": len(written), "layers": len(plan),
            "weights": int(sum(t.value.size for t in written)),
            "new_layers": sorted(new_layers), "bn_epsilon_adjusted": adjusted}


def model_tensors(model: tf_keras.Model) -> List[Tensor]:
    """Every weight of one of our head models as Tensors (BN with the layer's own epsilon),
    for starting another run from it."""
    out = []
    for layer in model.layers:
        if layer.name in CONSTANT_LAYERS:
            continue
        eps = float(layer.epsilon) if isinstance(
            layer, tf_keras.layers.BatchNormalization) else None
        for weight in layer.weights:
            attr = weight.name.split("/")[-1].split(":")[0]
            out.append(Tensor(f"{layer.name}/{attr}", layer.name, attr,
                              np.asarray(weight.numpy(), np.float32), eps))
    return out
