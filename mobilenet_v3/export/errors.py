"""What the exporter raises for bad input and for a file the guard refused."""


class ExportError(ValueError):
    """Bad input to the exporter: a clear message, nothing written."""


class Int8AgreementError(ExportError):
    """An integer file disagreed with its Keras model too often: it was not written."""
