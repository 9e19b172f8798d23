"""Exception types of the weights importer, one per kind of bad input.

All are ValueErrors (the missing-file ones FileNotFoundErrors too) with a message a user can act on.
"""


class WeightsError(ValueError):
    """Base class: the weights cannot be loaded; the message says why."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """A path that does not exist, or weights="imagenet" with nothing in the local caches."""


class CorruptWeightsError(WeightsError):
    """The file exists but cannot be read (truncated, not the format its name says)."""


class NotMobileNetV3Error(WeightsError):
    """The file holds weights, but not those of any MobileNetV3 variant."""


class ArchitectureMismatchError(WeightsError):
    """A MobileNetV3 file whose variant differs from the model it is loaded into."""
