"""The exporter: model -> ONNX -> quantize once (offline, streaming) -> verify -> artifacts."""

from .errors import ExportError, UnstreamableModel
from .pipeline import ExportConfig, ExportResult, export_streaming

__all__ = ["ExportConfig", "ExportError", "ExportResult", "UnstreamableModel", "export_streaming"]
