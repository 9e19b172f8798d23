"""The task registry: classification, detection, segmentation, keyed by the recorded head_type.

A run folder records its head in model_config.json (`head_type`: none for a classifier,
'ssdlite', 'lraspp' / 'raspp'); a .tflite file shows its task in its outputs. The entry scripts
(export_tflite.py, evaluate.py) look the task up here and call its spec, so a fourth task is a
new module that registers itself, with no edit to the scripts.
"""

import dataclasses
from typing import Callable, Dict, Optional, Tuple


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    name: str
    head_types: Tuple[Optional[str], ...]     # model_config.json head_type values
    formats: Tuple[str, ...]                  # export formats the task offers
    # export(model path, export.ExportConfig, data override or None, log) -> {format: report}
    export: Callable
    # evaluate(model paths, evaluation config) -> {"task": ..., "results": [...]}
    evaluate: Callable
    # is_file(interpreter output details) -> does this .tflite belong to the task
    is_file: Callable[[bytes], bool]


_TASKS: Dict[str, TaskSpec] = {}


class UnknownTaskError(ValueError):
    """A model whose head_type no registered task handles."""


def register(spec: TaskSpec) -> TaskSpec:
    _TASKS[spec.name] = spec
    return spec


def names() -> Tuple[str, ...]:
    return tuple(_TASKS)


def get(name: str) -> TaskSpec:
    if name not in _TASKS:
        raise UnknownTaskError(f"unknown task {name!r}; tasks are {', '.join(_TASKS)}")
    return _TASKS[name]


def for_head_type(head_type: Optional[str]) -> TaskSpec:
    for spec in _TASKS.values():
        if head_type in spec.head_types:
            return spec
    raise UnknownTaskError(f"no task handles head_type {head_type!r} (known: "
                           f"{[h for s in _TASKS.values() for h in s.head_types]})")


def for_model(path: str) -> TaskSpec:
    """The task of a trained model (run folder, final/, .keras) or a .tflite file."""
    if path.endswith(".tflite"):
        try:
            with open(path, "rb") as f:
                content = f.read()
        except OSError as e:
            raise UnknownTaskError(f"cannot read {path!r}: {e.strerror or e}") from None
        for spec in _TASKS.values():
            if spec.is_file(content):
                return spec
        raise UnknownTaskError(f"{path!r}: no task recognises this file's outputs")
    from mobilenet_v3.training import run_dir
    return for_head_type(run_dir.head_type(path))
