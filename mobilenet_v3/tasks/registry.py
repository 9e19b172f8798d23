"""The task registry: classification, detection, segmentation, keyed by the recorded head_type.

A run folder records its head in model_config.json (`head_type`: none for a classifier,
'ssdlite', 'lraspp' / 'raspp'); a .tflite file shows its task in its outputs. The entry scripts
(train.py, export_tflite.py, evaluate.py) look the task up here, by name or by model, and call
its spec, so a fourth task is a new module of this package that registers itself, with no edit
to the scripts. The specs take plain values (`Options`), never flags: those stay in the scripts.
"""

import dataclasses
from typing import Any, Callable, Dict, FrozenSet, Mapping, Optional, Tuple


@dataclasses.dataclass(frozen=True)
class Options:
    """An entry script's option values by name (its flags there), and the names of those given
    explicitly rather than left at their default."""
    values: Mapping[str, Any]
    given: FrozenSet[str] = frozenset()

    def __getitem__(self, name: str):
        return self.values[name]

    def __contains__(self, name: str) -> bool:
        return name in self.values


def plain_backbone(options: Options) -> Dict:
    """ModelConfig.from_flat keywords of the classifier's backbone: output stride 32, and
    `reduced_tail` halving the channels between C4 and C5 (the paper's detection tail)."""
    return {"reduced_tail": options["reduced_tail"], "rf2": False, "output_stride": 32}


def no_checks(config) -> None:
    """TrainingSpec.check of a task that trains with every TrainConfig setting."""


@dataclasses.dataclass(frozen=True)
class TrainingSpec:
    """What train.py needs of a task besides its data config (TaskSpec.data_config)."""
    # make_task(TrainConfig, Options) -> the training.Task to train, or None for the Trainer's
    # default (classification, built after the strategy)
    make_task: Callable
    # final_metrics(Trainer.run result) -> the metrics of train.py's final line
    final_metrics: Callable[[Dict], str]
    # model_options(Options) -> the task's ModelConfig.from_flat keywords (its backbone form)
    model_options: Callable[[Options], Dict] = plain_backbone
    # check(TrainConfig): raises ValueError for settings the task cannot train with
    check: Callable = no_checks


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
    # data_config(Options of the data flags, image size, seed) -> the task's data config
    data_config: Optional[Callable] = None
    training: Optional[TrainingSpec] = None   # None: train.py does not train the task


_TASKS: Dict[str, TaskSpec] = {}


class UnknownTaskError(ValueError):
    """A model whose head_type no registered task handles."""


def register(spec: TaskSpec) -> TaskSpec:
    _TASKS[spec.name] = spec
    return spec


def names() -> Tuple[str, ...]:
    return tuple(_TASKS)


def trainable_names() -> Tuple[str, ...]:
    """The tasks train.py trains (`--task`)."""
    return tuple(name for name, spec in _TASKS.items() if spec.training is not None)


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
