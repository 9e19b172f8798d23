"""Tasks: one registered spec each (tasks/registry.py); importing this package registers the
built-in ones."""

from mobilenet_v3.tasks.registry import (TaskSpec, UnknownTaskError, for_head_type,
                                         for_model, get, names, register)
from mobilenet_v3.tasks import classification, detection, segmentation  # noqa: F401

__all__ = ["TaskSpec", "UnknownTaskError", "for_head_type", "for_model", "get", "names",
           "register"]
