"""The layout of an int8 export directory (file names, format id and version) and the optional-dependency check
shared by the graph builder, the runtime and the exporter."""

import os


EXPORT_INFO_FILE = "chargpt_int8.json"
ONNX_FILE = "model_int8.onnx"
EXPORT_FORMAT = "chargpt-int8-onnx"
# 2: the export records the classifier pooling it was checked with, and its checks compare the task's own output;
# version 1 folders still load (their graph is the same).
EXPORT_FORMAT_VERSION = 2
_INSTALL_HINT = "pip install 'chargpt[int8]' (or: pip install onnx onnxruntime)"


def is_int8_export(path) -> bool:
    """True if `path` is a directory written by `export_int8`."""
    return os.path.isfile(os.path.join(str(path), EXPORT_INFO_FILE))


def require(module: str):
    try:
        return __import__(module)
    except ImportError as err:
        raise ImportError(f"The int8 export needs the `{module}` package: {_INSTALL_HINT}.") from err



__all__ = ["EXPORT_INFO_FILE", "ONNX_FILE", "EXPORT_FORMAT", "EXPORT_FORMAT_VERSION", "is_int8_export", "require"]
