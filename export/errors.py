"""Errors the user sees as one line on stderr (exit code 2)."""


class ExportError(Exception):
    """The export cannot go on; the message names what is wrong and where."""


class UnstreamableModel(ExportError):
    """The model has a layer or a setting that cannot stream exactly; the message names the node."""
