"""The exporter: model -> ONNX -> quantize once (offline, streaming) -> verify -> artifacts."""

from .errors import ExportError, UnstreamableModel

__all__ = ["ExportConfig", "ExportError", "ExportResult", "UnstreamableModel", "export_streaming"]


def __getattr__(name: str):
    """The pipeline imports esp-ppq, which takes seconds: only when it is asked for (`check` never is)."""
    if name in ("ExportConfig", "ExportResult", "export_streaming"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
