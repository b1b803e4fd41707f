"""Exports of a CharGPT model into the formats other engines run, each derived from the PyTorch model and checked
against it (`checks`): `native` writes a transformers checkpoint of a class transformers ships (Qwen3 for rotary
models, GPT-2 for learned positions), which loads without remote code; `gguf` writes a llama.cpp / ollama file.
The int8 ONNX Runtime export lives in `chargpt.int8`."""

from .checks import CHECK_TOLERANCE, ExportCheckError, relative_difference
from .gguf import GGUF_TOLERANCE, export_gguf, load_gguf_in_transformers
from .native import NATIVE_INFO_FILE, TARGETS, UnsupportedOptionError, choose_target, export_native, native_model


__all__ = [
    "CHECK_TOLERANCE",
    "ExportCheckError",
    "GGUF_TOLERANCE",
    "NATIVE_INFO_FILE",
    "TARGETS",
    "UnsupportedOptionError",
    "choose_target",
    "export_gguf",
    "export_native",
    "load_gguf_in_transformers",
    "native_model",
    "relative_difference",
]
