"""Tasks: one registered spec each (tasks/registry.py). Importing this package imports every
module in it, so each task module registers itself: a new task is a new file here."""

import importlib
import pkgutil

from mobilenet_v3.tasks.registry import (Options, TaskSpec, TrainingSpec, UnknownTaskError,
                                         for_head_type, for_model, get, names, register,
                                         trainable_names)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Options", "TaskSpec", "TrainingSpec", "UnknownTaskError", "for_head_type",
           "for_model", "get", "names", "register", "trainable_names"]
