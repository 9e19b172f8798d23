"""weights="imagenet": the published files, where they are published, and the local folders searched.

Searched (nothing is ever downloaded): $MOBILENET_V3_WEIGHTS_DIR (os.pathsep-separated folders), then
keras' cache $KERAS_HOME/models or ~/.keras/models.
"""

import os
from typing import List, Tuple

from mobilenet_v3.modeling.config import ModelConfig
from mobilenet_v3.weights.errors import WeightsError, WeightsNotFoundError

ENV_VAR = "MOBILENET_V3_WEIGHTS_DIR"
KERAS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/"
SLIM_URL = "https://storage.googleapis.com/mobilenet_v3/checkpoints/"
# (name, minimalistic, alpha) with published float weights (keras.applications and TF-Slim).
PUBLISHED = (("large", False, 1.0), ("large", False, 0.75), ("large", True, 1.0),
             ("small", False, 1.0), ("small", False, 0.75), ("small", True, 1.0))
PUBLISHED_UINT8 = (("large", False, 1.0), ("small", False, 1.0), ("large", True, 1.0))


def search_dirs() -> List[str]:
    dirs = [d for d in os.environ.get(ENV_VAR, "").split(os.pathsep) if d]
    keras_home = os.environ.get("KERAS_HOME") or os.path.join(
        os.path.expanduser("~"), ".keras")
    return dirs + [os.path.join(keras_home, "models")]


def _alpha(alpha: float) -> str:
    return f"{float(alpha):g}" if float(alpha) != int(alpha) else f"{float(alpha):.1f}"


def _slim_stem(config: ModelConfig, kind: str) -> str:
    variant = config.name + ("-minimalistic" if config.minimalistic else "")
    return f"v3-{variant}_224_{_alpha(config.alpha)}_{kind}"


def _keras_stem(config: ModelConfig) -> str:
    variant = config.name + ("_minimalistic" if config.minimalistic else "")
    return f"weights_mobilenet_v3_{variant}_224_{_alpha(config.alpha)}_float"


def candidates(config: ModelConfig) -> List[Tuple[str, str]]:
    """(file or folder name, download URL) in order of preference for `config`."""
    key = (config.name, bool(config.minimalistic), float(config.alpha))
    slim = _slim_stem(config, "float")
    slim_files = [(slim + ".tgz", SLIM_URL + slim + ".tgz"), (slim, SLIM_URL + slim + ".tgz"),
                  (slim + ".tflite", SLIM_URL + slim + ".tgz")]
    if key in PUBLISHED_UINT8:
        q = _slim_stem(config, "uint8")
        slim_files += [(q + ".tgz", SLIM_URL + q + ".tgz"), (q + ".tflite", SLIM_URL + q + ".tgz")]
    k = _keras_stem(config)
    keras_top = [(k + ".h5", KERAS_URL + k + ".h5")]
    keras_no_top = [(k + "_no_top_v2.h5", KERAS_URL + k + "_no_top_v2.h5"),
                    (k + "_no_top.h5", KERAS_URL + k + "_no_top.h5")]
    if not config.include_top:
        return keras_no_top + keras_top + slim_files
    if config.classes == 1001:
        return slim_files
    return slim_files[:3] + keras_top + slim_files[3:]


def _check_published(config: ModelConfig) -> None:
    key = (config.name, bool(config.minimalistic), float(config.alpha))
    if key not in PUBLISHED:
        listed = ", ".join(f"{n}{'-minimalistic' if m else ''} {a:g}" for n, m, a in PUBLISHED)
        raise WeightsNotFoundError(f"weights='imagenet': no ImageNet weights are published for "
                                   f"MobileNetV3-{config.name} alpha={config.alpha:g}"
                                   f"{' minimalistic' if config.minimalistic else ''}; "
                                   f"published variants: {listed}")
    if config.include_top and config.classes not in (1000, 1001):
        raise WeightsError(f"weights='imagenet' has 1000 classes (1001 with background), got "
                           f"classes={config.classes}; use include_top=False for a backbone")


def find_imagenet_weights(config: ModelConfig) -> str:
    """The best local file for `config`, or WeightsNotFoundError listing what to download."""
    _check_published(config)
    wanted = candidates(config)
    for folder in search_dirs():
        for name, _ in wanted:
            path = os.path.join(folder, name)
            if os.path.isfile(path) or (os.path.isdir(path) and not os.path.splitext(name)[1]):
                return path
    downloads = [(n, u) for n, u in wanted if n.endswith((".tgz", ".h5"))]
    lines = "\n".join(f"  {name}  <-  {url}" for name, url in downloads)
    raise WeightsNotFoundError(
        "weights='imagenet': no local copy of the ImageNet weights was found, and this package "
        "never downloads anything. Download one of these files (file name <- where it is "
        f"published):\n{lines}\ninto {search_dirs()[-1]} or into a folder named by "
        f"${ENV_VAR} (.tgz archives may also be extracted there). "
        f"Searched: {', '.join(search_dirs())}")
