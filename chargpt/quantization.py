"""The int8 export under its first name; the code lives in `chargpt.int8` (graph, runtime, export). This module keeps
`from chargpt.quantization import ...` working."""

from .int8 import (
    EXPORT_INFO_FILE,
    Int8CharGPT,
    compare_on_texts,
    directory_bytes,
    export_int8,
    is_int8_export,
    load_int8,
    check_export,
    weights_bytes,
)


__all__ = [
    "EXPORT_INFO_FILE",
    "Int8CharGPT",
    "compare_on_texts",
    "directory_bytes",
    "export_int8",
    "is_int8_export",
    "load_int8",
    "check_export",
    "weights_bytes",
]
