"""Dynamic int8 export of CharGPT for CPU inference with ONNX Runtime, and the one loader for exported directories:
`graph` builds the ONNX graph, `runtime` runs an export (`load_int8`), `export` writes one (`export_int8`).

Route, chosen on measurements (benchmarks/NOTES.md, "Why the int8 export is an ONNX graph"; `python -m
benchmarks.int8` reproduces them): at CharGPT's sizes PyTorch fp32 `generate()` is dominated by per-op and per-step
overhead, which `torch.ao.quantization.quantize_dynamic` does not remove (and it is deprecated, and its packed weights
cannot go through `save_pretrained`), while ONNX Runtime with int8 weights removes much of it. So the export is an
ONNX graph written here, node by node, from the model's weights:

* every Linear layer becomes `com.microsoft.DynamicQuantizeMatMul`: symmetric int8 weights with one scale per output
  channel, activations quantized per call (dynamic quantization, no calibration data needed);
* token and (learned) position embeddings are stored as int8 rows with one scale per row; when the LM head is tied to
  the token embedding, ONE int8 table (stored transposed, hidden x vocab) serves both the embedding lookup (a Gather
  along the vocabulary axis) and the head, so the largest matrix is not stored twice;
* norms (LayerNorm, or RMSNorm written from ops), biases, rotary cos/sin tables and the (tiny) classification head
  stay in float32;
* the graph takes `past_key.{i}`/`past_value.{i}` and returns `present_key.{i}`/`present_value.{i}`, so generation
  feeds one new token per step.

The graph only knows causal attention without a padding mask: prompts for generation are unpadded, and batches for
classification or embeddings are right-padded (a real token never attends to padding on its right). The loader checks
both. `load_int8(dir)` returns an `Int8CharGPT` with the calls the rest of the package uses on a PyTorch model:
`model(input_ids, attention_mask).logits`, `model.generate(...)` (greedy or sampling, streamers, stop tokens,
`num_return_sequences`) and `model.embed(...)`.
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
from .graph import LOOKUP_QMAX, MATMUL_QMAX, build_onnx_model, model_task, quantize_rows
from .runtime import Int8CharGPT, load_int8, session_model


__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_FORMAT_VERSION",
    "EXPORT_INFO_FILE",
    "ONNX_FILE",
    "LOOKUP_QMAX",
    "MATMUL_QMAX",
    "CHECK_TOLERANCE",
    "ExportCheckError",
    "Int8CharGPT",
    "build_onnx_model",
    "compare_on_texts",
    "directory_bytes",
    "export_int8",
    "greedy_settings",
    "is_int8_export",
    "load_int8",
    "model_task",
    "check_export",
    "quantize_rows",
    "relative_difference",
    "session_model",
    "weights_bytes",
]
