"""The layout of an int8 export directory (file names, format id and version) and the optional-dependency check
shared by the graph builder, the runtime and the exporter."""

import os


EXPORT_INFO_FILE = "chargpt_int8.json"
ONNX_FILE = "model_int8.onnx"
EXPORT_FORMAT = "chargpt-int8-onnx"
# 2: the graph is traced from the model (torch.onnx.export); a classifier's graph takes the padding mask and pools
# itself; the export records its checks of the task's own output. Version 1 folders (a graph written node by node,
# whose classifier gives per-position logits that the runtime pools) still load.
EXPORT_FORMAT_VERSION = 2
_INSTALL_HINT = "pip install 'chargpt[int8]' (or: pip install onnx onnxruntime onnxscript)"


def is_int8_export(path) -> bool:
    """True if `path` is a directory written by `export_int8`."""
    return os.path.isfile(os.path.join(str(path), EXPORT_INFO_FILE))


def require(module: str):
    try:
        return __import__(module)
    except ImportError as err:
        raise ImportError(f"The int8 export needs the `{module}` package: {_INSTALL_HINT}.") from err


__all__ = ["EXPORT_INFO_FILE", "ONNX_FILE", "EXPORT_FORMAT", "EXPORT_FORMAT_VERSION", "is_int8_export", "require"]
