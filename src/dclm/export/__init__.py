"""`dclm export`: DCLM checkpoints for other runtimes: GGUF for stock llama.cpp / ollama, ONNX for ONNX Runtime.

Names are imported on first use, so `import dclm.export.cli` (done for `dclm --help`) loads neither torch
nor the optional exporters.
"""

from dclm.lazy import lazy_exports

_EXPORTS = {
    "GGUFExportConfig": "dclm.export.configs",
    "GGUFExportResult": "dclm.export.gguf",
    "export_gguf": "dclm.export.gguf",
    "ONNXExportConfig": "dclm.export.configs",
    "ONNXExportResult": "dclm.export.onnx",
    "export_onnx": "dclm.export.onnx",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
