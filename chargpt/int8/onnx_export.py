"""The ONNX graphs of a CharGPT model, derived from the PyTorch model itself: `torch.onnx.export(..., dynamo=True)`
traces the model's own forward (its attention, norms, rotary turn, activation and pooling, whichever the config
selects), and ONNX Runtime's `quantize_dynamic` turns the matrix products and the embedding lookup into int8.
Nothing here restates the architecture, so a new model option reaches the export without a line written here, and
`export.check_export` holds every export to the PyTorch model."""

import contextlib
import logging
import os
import tempfile
import warnings

import torch
from torch import nn
from transformers import DynamicCache

from ..export.checks import model_task
from .format import require


# Opset 23 has RMSNormalization and Attention as single ops, which ONNX Runtime runs as fused kernels; at opset 20
# each is a dozen nodes and generation was a third slower (benchmarks/NOTES.md, "The int8 export route").
ONNX_OPSET = 23
# What the quantizer turns into int8: every matrix product with a weight and the embedding lookup. Not ONNX's own
# `Attention` op, which quantize_dynamic mistakes for com.microsoft's and rewrites into a QAttention that ONNX
# Runtime then refuses to load.
QUANTIZED_OPS = ["MatMul", "Gather"]


class CausalLMGraph(nn.Module):
    """The causal LM with a signature ONNX can carry: input_ids (B, T), logits_from (1,) and each layer's past keys
    and values (B, H, P, D) -> logits (B, T - logits_from, V), the final hidden states (B, T, C) and the updated keys
    and values, which the runtime feeds back at the next step."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.tied = model.lm_head.weight is model.transformer.wte.weight
        if self.tied:
            # A tied head traces to a Transpose of the embedding table feeding a MatMul, which quantize_dynamic leaves
            # in float32 (it quantizes a MatMul whose weight is a stored tensor) and dequantizes the int8 table for at
            # every step. A (C, V) copy gives the head an int8 matrix of its own: the same numbers, stored twice.
            self.register_buffer("head_t", model.lm_head.weight.detach().t().contiguous(), persistent=False)

    def forward(self, input_ids, logits_from, past):
        cache = DynamicCache(config=self.model.config)
        for i in range(self.model.config.n_layer):
            cache.update(past[2 * i], past[2 * i + 1], i)
        hidden = self.model.transformer(input_ids, cache=cache, use_cache=True).last_hidden_state  # (B, T, C)
        start = logits_from[0].item()  # a data-dependent slice start: tell the exporter its range
        torch._check(start >= 0)
        torch._check(start < hidden.shape[1])
        kept = hidden[:, start:]
        logits = kept @ self.head_t if self.tied else self.model.lm_head(kept)
        presents = [t for layer in cache.layers for t in (layer.keys, layer.values)]
        return (logits, hidden, *presents)


class ClassifierGraph(nn.Module):
    """The classifier as users call it: input_ids and attention_mask (B, T) -> its pooled logits (B, num_labels),
    through the model's own `pooled_logits`, and the final hidden states (B, T, C) for embeddings."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        hidden = self.model.transformer(input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        return self.model.pooled_logits(hidden, input_ids, attention_mask), hidden


def cache_names(n_layer: int, prefix: str) -> list[str]:
    return [f"{prefix}_{kind}.{i}" for i in range(n_layer) for kind in ("key", "value")]


def _trace_arguments(model, task: str):
    """Example inputs, dynamic shapes and names for the export. Sizes of 2 and more, so that no axis is taken as
    a constant 1; batch, sequence and past length stay free (past length from 0, the first call)."""
    config = model.config
    batch = torch.export.Dim("batch", min=1)
    sequence = torch.export.Dim("sequence", min=1, max=config.n_positions)
    ids = torch.randint(5 if config.vocab_size > 5 else 0, config.vocab_size, (2, 3))
    if task == "sequence-classification":
        mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
        shapes = {"input_ids": {0: batch, 1: sequence}, "attention_mask": {0: batch, 1: sequence}}
        return ClassifierGraph(model), (ids, mask), shapes, ["input_ids", "attention_mask"], ["logits", "hidden_states"]
    past_len = torch.export.Dim("past_sequence", min=0, max=config.n_positions)
    head_dim = config.n_embd // config.n_head
    past = [torch.zeros(2, config.n_head, 4, head_dim) for _ in range(2 * config.n_layer)]
    shapes = {"input_ids": {0: batch, 1: sequence}, "logits_from": None, "past": [{0: batch, 2: past_len}] * len(past)}
    inputs = ["input_ids", "logits_from", *cache_names(config.n_layer, "past")]
    outputs = ["logits", "hidden_states", *cache_names(config.n_layer, "present")]
    return CausalLMGraph(model), (ids, torch.tensor([0]), past), shapes, inputs, outputs


@contextlib.contextmanager
def _quiet():
    """The exporter and the quantizer log progress and advice, and warn about their own internals, through the root
    and torch loggers and `warnings`; a user exporting a model needs none of it (errors still raise)."""
    loggers = [logging.getLogger(name) for name in ("", "torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def export_float_graph(model, path: str) -> str:
    """Trace `model` (a CharGPT causal LM or classifier, float32 on CPU, in eval mode) to a float32 ONNX file at
    `path`, without the per-node stack traces the exporter records for debugging. Returns `path`."""
    onnx = require("onnx")
    require("onnxscript")  # torch.onnx's dynamo exporter is built on it
    wrapper, args, shapes, inputs, outputs = _trace_arguments(model, model_task(model))
    with _quiet(), torch.no_grad():
        program = torch.onnx.export(
            wrapper.eval(),
            args,
            dynamo=True,
            dynamic_shapes=shapes,
            input_names=inputs,
            output_names=outputs,
            opset_version=ONNX_OPSET,
            verbose=False,
        )
    proto = program.model_proto
    for node in proto.graph.node:
        del node.metadata_props[:]
    onnx.save_model(proto, path)
    return path


def quantize_graph(float_path: str, int8_path: str) -> str:
    """ONNX Runtime's dynamic int8 quantization of a float graph: symmetric int8 weights with one scale per output
    channel, in 7 bits (`reduce_range`: on CPUs without VNNI the uint8 x int8 kernel adds pairs of products in
    saturating 16-bit arithmetic, and full-range weights overflow there), activations quantized per call."""
    require("onnxruntime")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(
            float_path,
            int8_path,
            per_channel=True,
            reduce_range=True,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=QUANTIZED_OPS,
        )
    return int8_path


@contextlib.contextmanager
def float_graph_file(model):
    """The float32 graph of `model` in a temporary file, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="chargpt-onnx-") as tmp:
        yield export_float_graph(model, os.path.join(tmp, "model_fp32.onnx"))


__all__ = ["ONNX_OPSET", "QUANTIZED_OPS", "model_task", "export_float_graph", "quantize_graph", "float_graph_file"]
