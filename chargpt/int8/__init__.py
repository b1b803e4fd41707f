"""Dynamic int8 export of CharGPT for CPU inference with ONNX Runtime, and the one loader for exported directories:
`onnx_export` traces the model to ONNX and quantizes it, `runtime` runs an export (`load_int8`), `export` writes one
(`export_int8`).

The graph is derived from the PyTorch model, not written beside it: `torch.onnx.export(..., dynamo=True)` traces the
model's own forward (causal LM: with its key/value cache as inputs and outputs, so generation feeds one new token per
step; classifier: with its padding mask and its own pooling), and ONNX Runtime's `quantize_dynamic` makes the matrix
products int8 with one scale per output channel and activations quantized per call, and the embedding table int8.
`export_int8` checks the float32 graph and the int8 export against the model on the task's own output and refuses to
write an export that does not reproduce it. The route was chosen on measurements (benchmarks/NOTES.md, "The int8
export route"; `python -m benchmarks.int8_routes` reproduces them).

`load_int8(dir)` returns an `Int8CharGPT` with the calls the rest of the package uses on a PyTorch model:
`model(input_ids, attention_mask).logits`, `model.generate(...)` (greedy or sampling, streamers, stop tokens,
`num_return_sequences`, unpadded prompts) and `model.embed(...)`. A causal LM graph sees no padding mask, so its
batches must be right-padded; a classifier takes either padding side.
"""

from .export import (
    CHECK_TOLERANCE,
    ExportCheckError,
    check_export,
    compare_on_texts,
    directory_bytes,
    export_int8,
    greedy_settings,
    relative_difference,
    weights_bytes,
)
from .format import EXPORT_FORMAT, EXPORT_FORMAT_VERSION, EXPORT_INFO_FILE, ONNX_FILE, is_int8_export
from .onnx_export import ONNX_OPSET, export_float_graph, model_task, quantize_graph
from .runtime import Int8CharGPT, load_int8, session_model


__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_FORMAT_VERSION",
    "EXPORT_INFO_FILE",
    "ONNX_FILE",
    "CHECK_TOLERANCE",
    "ExportCheckError",
    "Int8CharGPT",
    "ONNX_OPSET",
    "compare_on_texts",
    "directory_bytes",
    "export_float_graph",
    "export_int8",
    "greedy_settings",
    "is_int8_export",
    "load_int8",
    "model_task",
    "check_export",
    "quantize_graph",
    "relative_difference",
    "session_model",
    "weights_bytes",
]
