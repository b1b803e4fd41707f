"""Dynamic int8 export of CharGPT for CPU inference with ONNX Runtime, and the one loader for exported directories.

Route, chosen on measurements (2-core CPU, 256 hidden / 8 heads / 6 layers / 1024 inner, 5,000-token vocabulary,
batch 1, 128 greedy tokens with a key/value cache, one thread, interleaved repetitions, medians; `benchmark_int8`
reproduces them): PyTorch fp32 `generate()` is dominated by per-op and per-step overhead at this size;
`torch.ao.quantization.quantize_dynamic` made it only 1.1x faster at 0.48 of the size (and it is deprecated, and its
packed weights cannot go through `save_pretrained`), while ONNX Runtime with int8 weights ran the same decoding 4.4x
faster at 0.26 of the size (the same graph in fp32: 2.7x). So the export is an ONNX graph written here, node by node,
from the model's weights:

* every Linear layer becomes `com.microsoft.DynamicQuantizeMatMul`: symmetric int8 weights with one scale per output
  channel, activations quantized per call (dynamic quantization, no calibration data needed);
* token and position embeddings are stored as int8 rows with one scale per row; when the LM head is tied to the token
  embedding, ONE int8 table (stored transposed, hidden x vocab) serves both the embedding lookup (a Gather along the
  vocabulary axis) and the head, so the largest matrix is not stored twice;
* LayerNorms, biases and the (tiny) classification head stay in float32;
* the graph takes `past_key.{i}`/`past_value.{i}` and returns `present_key.{i}`/`present_value.{i}`, so generation
  feeds one new token per step.

The graph only knows causal attention without a padding mask: prompts for generation are unpadded, and batches for
classification or embeddings are right-padded (a real token never attends to padding on its right). The loader checks
both. `load_int8(dir)` returns an `Int8CharGPT` with the calls the rest of the package uses on a PyTorch model:
`model(input_ids, attention_mask).logits`, `model.generate(...)` (greedy or sampling, streamers, stop tokens,
`num_return_sequences`) and `model.embed(...)`.
"""

import copy
import datetime
import json
import logging
import math
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from transformers import GenerationConfig, HfArgumentParser
from transformers.generation.logits_process import (
    LogitsProcessorList,
    MinNewTokensLengthLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from .configuration_chargpt import CharGPTConfig
from .modeling_chargpt import mean_pool


logger = logging.getLogger(__name__)

EXPORT_INFO_FILE = "chargpt_int8.json"
ONNX_FILE = "model_int8.onnx"
EXPORT_FORMAT = "chargpt-int8-onnx"
EXPORT_FORMAT_VERSION = 1
_OPSET = 17  # LayerNormalization is a standard op from opset 17
_IR_VERSION = 8  # the oldest IR that opset 17 needs, so older ONNX Runtime releases read the file too
_INSTALL_HINT = "pip install 'chargpt[int8]' (or: pip install onnx onnxruntime)"


def is_int8_export(path) -> bool:
    """True if `path` is a directory written by `export_int8`."""
    return os.path.isfile(os.path.join(str(path), EXPORT_INFO_FILE))


def _require(module: str):
    try:
        return __import__(module)
    except ImportError as err:
        raise ImportError(f"The int8 export needs the `{module}` package: {_INSTALL_HINT}.") from err


# ----------------------------------------------------------------------------------------------------------------------
# Building the ONNX graph
# ----------------------------------------------------------------------------------------------------------------------


# Weights that go into a matrix product use 7 bits ([-63, 63]). On CPUs without VNNI (AVX2 only, like the machine
# this was measured on) ONNX Runtime multiplies uint8 activations by int8 weights with an instruction that adds pairs
# of products in saturating 16-bit arithmetic: full-range weights overflowed there and gave 10x the error of 7-bit ones
# (which matched exact integer arithmetic to 1e-6). ONNX Runtime's own quantizer calls this `reduce_range`. Tables
# that are only looked up (untied token embeddings, positions) keep the full 8 bits.
MATMUL_QMAX = 63
LOOKUP_QMAX = 127


def quantize_rows(weight: torch.Tensor, qmax: int = LOOKUP_QMAX) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric integer codes per row: `weight[r] ~= q[r] * scale[r]` with q in [-qmax, qmax], stored as int8.
    Returns (rows, cols) int8 and (rows,) float32. An all-zero row gets a tiny scale and zero codes."""
    if not 1 <= qmax <= 127:
        raise ValueError(f"qmax must be in [1, 127], got {qmax}.")
    w = weight.detach().float().cpu()
    scale = w.abs().amax(dim=1).clamp(min=1e-12) / qmax
    q = torch.round(w / scale[:, None]).clamp(-qmax, qmax).to(torch.int8)
    return q.numpy(), scale.numpy().astype(np.float32)


class _Graph:
    """A small helper around onnx.helper: named initializers and nodes with generated output names."""

    def __init__(self):
        self.onnx = _require("onnx")
        self.nodes, self.initializers, self._count = [], [], 0

    def init(self, name: str, array) -> str:
        array = np.asarray(array)  # not np.ascontiguousarray: it turns a 0-d scalar into shape (1,)
        self.initializers.append(self.onnx.numpy_helper.from_array(array.copy(order="C"), name))
        return name

    def const(self, value, dtype=np.int64) -> str:
        self._count += 1
        return self.init(f"const_{self._count}", np.array(value, dtype=dtype))

    def op(self, op_type: str, inputs: list[str], output: str | None = None, domain: str = "", **attrs) -> str:
        self._count += 1
        output = output or f"{op_type.lower()}_{self._count}"
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [output], domain=domain, **attrs))
        return output


def _linear(g: _Graph, x: str, module: torch.nn.Linear, name: str, int8: bool) -> str:
    """y = x @ W.T + b; int8: one scale per output channel, activations quantized on the fly."""
    bias = [g.init(f"{name}.bias", module.bias.detach().float().numpy())] if module.bias is not None else []
    if int8:
        q, scale = quantize_rows(module.weight, MATMUL_QMAX)  # (out, in)
        inputs = [x, g.init(f"{name}.qweight_t", q.T), g.init(f"{name}.scale", scale)]
        return g.op("DynamicQuantizeMatMul", inputs + ([""] + bias if bias else []), domain="com.microsoft")
    y = g.op("MatMul", [x, g.init(f"{name}.weight_t", module.weight.detach().float().numpy().T)])
    return g.op("Add", [y, bias[0]]) if bias else y


def _embedding(g: _Graph, table: str, scale: str | None, indices: str, transposed: bool) -> str:
    """Rows of an embedding table for `indices` (any shape S) -> S + (C,), dequantizing int8 rows when `scale`."""
    if transposed:  # (C, V): gather columns -> (C,) + S, then move C last
        rows = g.op("Gather", [table, indices], axis=1)
        rows = g.op("Transpose", [rows], perm=[1, 2, 0])  # (C, B, T) -> (B, T, C)
    else:
        rows = g.op("Gather", [table, indices], axis=0)
    if scale is None:
        return rows
    row_scale = g.op("Unsqueeze", [g.op("Gather", [scale, indices], axis=0), g.const([-1])])  # S + (1,)
    return g.op("Mul", [g.op("Cast", [rows], to=1), row_scale])  # to=1: float32


def _layer_norm(g: _Graph, x: str, module: torch.nn.LayerNorm, name: str) -> str:
    inputs = [x, g.init(f"{name}.weight", module.weight.detach().float().numpy())]
    if module.bias is not None:
        inputs.append(g.init(f"{name}.bias", module.bias.detach().float().numpy()))
    return g.op("LayerNormalization", inputs, axis=-1, epsilon=float(module.eps))


def _activation(g: _Graph, x: str, name: str) -> str:
    """The config's activation from standard ops (ONNX Runtime fuses the GELU patterns)."""
    if name == "relu":
        return g.op("Relu", [x])
    if name == "silu":
        return g.op("Mul", [x, g.op("Sigmoid", [x])])
    half_x = g.op("Mul", [x, g.const(0.5, np.float32)])
    if name == "gelu":  # 0.5 x (1 + erf(x / sqrt 2))
        inner = g.op("Erf", [g.op("Mul", [x, g.const(1 / math.sqrt(2), np.float32)])])
    elif name == "gelu_new":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = g.op("Mul", [g.op("Mul", [x, x]), x])
        poly = g.op("Add", [x, g.op("Mul", [cube, g.const(0.044715, np.float32)])])
        inner = g.op("Tanh", [g.op("Mul", [poly, g.const(math.sqrt(2 / math.pi), np.float32)])])
    else:
        raise ValueError(f"The int8 export does not know the activation {name!r}.")
    return g.op("Mul", [half_x, g.op("Add", [inner, g.const(1.0, np.float32)])])


def _attention(g: _Graph, x: str, attn, i: int, future: str, config, int8: bool) -> str:
    """Causal self-attention over the cache plus the new tokens; writes present_key/value.{i}."""
    n_head, head_dim = config.n_head, config.n_embd // config.n_head
    qkv = _linear(g, x, attn.c_attn, f"h.{i}.attn.c_attn", int8)  # (B, T, 3C)
    qkv = g.op("Reshape", [qkv, g.const([0, 0, 3, n_head, head_dim])])
    qkv = g.op("Transpose", [qkv], perm=[2, 0, 3, 1, 4])  # (B, T, 3, H, D) -> (3, B, H, T, D)
    q, k, v = (g.op("Gather", [qkv, g.const(j)], axis=0) for j in range(3))  # each (B, H, T, D)
    k = g.op("Concat", [f"past_key.{i}", k], f"present_key.{i}", axis=2)  # (B, H, P + T, D)
    v = g.op("Concat", [f"past_value.{i}", v], f"present_value.{i}", axis=2)
    q = g.op("Mul", [q, g.const(1 / math.sqrt(head_dim), np.float32)])
    scores = g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])])  # (B, H, T, P + T)
    scores = g.op("Where", [future, g.const(np.finfo(np.float32).min, np.float32), scores])
    y = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])  # (B, H, T, D)
    y = g.op("Reshape", [g.op("Transpose", [y], perm=[0, 2, 1, 3]), g.const([0, 0, config.n_embd])])
    return _linear(g, y, attn.c_proj, f"h.{i}.attn.c_proj", int8)


def _block(g: _Graph, block, x: str, i: int, future: str, config, int8: bool) -> str:
    h = _layer_norm(g, x, block.ln_1, f"h.{i}.ln_1")
    x = g.op("Add", [x, _attention(g, h, block.attn, i, future, config, int8)])
    h = _layer_norm(g, x, block.ln_2, f"h.{i}.ln_2")
    h = _activation(g, _linear(g, h, block.mlp.c_fc, f"h.{i}.mlp.c_fc", int8), config.activation_function)
    return g.op("Add", [x, _linear(g, h, block.mlp.c_proj, f"h.{i}.mlp.c_proj", int8)])


def model_task(model) -> str:
    """'causal-lm' or 'sequence-classification', from the head the model carries."""
    if getattr(model, "lm_head", None) is not None:
        return "causal-lm"
    if getattr(model, "score", None) is not None:
        return "sequence-classification"
    raise ValueError(
        f"{type(model).__name__} has neither an LM head (lm_head) nor a classification head (score); export a "
        f"CharGPTForCausalLM or CharGPTForSequenceClassification."
    )


def _check_exportable(model):
    base = getattr(model, "transformer", None)
    needed = ("wte", "wpe", "h", "ln_f")
    if base is None or not all(hasattr(base, n) for n in needed):
        raise ValueError(
            f"{type(model).__name__} does not have CharGPT's layout (transformer.wte/wpe/h/ln_f); the int8 export "
            f"writes the graph for that layout only."
        )
    if model.config.activation_function not in ("gelu", "gelu_new", "relu", "silu"):
        raise ValueError(f"Unsupported activation {model.config.activation_function!r} for the int8 export.")
    return base


def build_onnx_model(model, int8: bool = True):
    """The ONNX graph of a CharGPT causal LM or classifier (int8 weights, or float32 when `int8=False`, which is
    used to check the graph itself against PyTorch). Inputs: input_ids (B, T), logits_from (1,) and the cache;
    outputs: logits (B, T - logits_from, V or num_labels), hidden_states (B, T, C), present_key/value.{i}."""
    onnx = _require("onnx")
    task, base, config = model_task(model), _check_exportable(model), model.config
    g = _Graph()
    past_len = g.op("Shape", ["past_key.0"], start=2, end=3)  # (1,)
    total = g.op("Add", [past_len, g.op("Shape", ["input_ids"], start=1, end=2)])
    p0, p1 = g.op("Squeeze", [past_len]), g.op("Squeeze", [total])
    positions = g.op("Range", [p0, p1, g.const(1)])  # (T,) absolute positions of the new tokens
    keys = g.op("Range", [g.const(0), p1, g.const(1)])  # (P + T,)
    future = g.op("Greater", [g.op("Unsqueeze", [keys, g.const([0])]), g.op("Unsqueeze", [positions, g.const([1])])])

    tied = task == "causal-lm" and model.lm_head.weight is base.wte.weight
    if int8:
        wte_q, wte_scale = quantize_rows(base.wte.weight, MATMUL_QMAX if tied else LOOKUP_QMAX)
        table = g.init("wte.qweight_t" if tied else "wte.qweight", wte_q.T if tied else wte_q)
        tokens = _embedding(g, table, g.init("wte.scale", wte_scale), "input_ids", transposed=tied)
        wpe_q, wpe_scale = quantize_rows(base.wpe.weight)
        pos = _embedding(g, g.init("wpe.qweight", wpe_q), g.init("wpe.scale", wpe_scale), positions, False)
    else:
        tokens = _embedding(g, g.init("wte.weight", base.wte.weight.detach().float().numpy()), None, "input_ids", False)
        pos = _embedding(g, g.init("wpe.weight", base.wpe.weight.detach().float().numpy()), None, positions, False)
    x = g.op("Add", [tokens, pos])  # (B, T, C) + (T, C)
    for i, block in enumerate(base.h):
        x = _block(g, block, x, i, future, config, int8)
    hidden = _layer_norm(g, x, base.ln_f, "ln_f")
    g.op("Identity", [hidden], "hidden_states")
    selected = g.op("Slice", [hidden, "logits_from", g.const([np.iinfo(np.int64).max]), g.const([1])])
    if task == "sequence-classification":  # a few labels: float32, quantizing it would save nothing
        g.op("Identity", [_linear(g, selected, model.score, "score", int8=False)], "logits")
    elif tied and int8:
        g.op("DynamicQuantizeMatMul", [selected, table, "wte.scale"], "logits", domain="com.microsoft")
    elif tied:
        g.op("MatMul", [selected, g.init("lm_head.weight_t", base.wte.weight.detach().float().numpy().T)], "logits")
    else:
        g.op("Identity", [_linear(g, selected, model.lm_head, "lm_head", int8)], "logits")
    return _onnx_model(onnx, g, config)


def _onnx_model(onnx, g: _Graph, config):
    TP, H, D = onnx.TensorProto, config.n_head, config.n_embd // config.n_head
    info = onnx.helper.make_tensor_value_info
    inputs = [info("input_ids", TP.INT64, ["batch", "sequence"]), info("logits_from", TP.INT64, [1])]
    outputs = [info("logits", TP.FLOAT, None), info("hidden_states", TP.FLOAT, None)]
    for i in range(config.n_layer):
        for kind in ("key", "value"):
            inputs.append(info(f"past_{kind}.{i}", TP.FLOAT, ["batch", H, "past_sequence", D]))
            outputs.append(info(f"present_{kind}.{i}", TP.FLOAT, None))
    graph = onnx.helper.make_graph(g.nodes, "chargpt", inputs, outputs, g.initializers)
    opsets = [onnx.helper.make_opsetid("", _OPSET), onnx.helper.make_opsetid("com.microsoft", 1)]
    return onnx.helper.make_model(graph, opset_imports=opsets, ir_version=_IR_VERSION, producer_name="chargpt")


# ----------------------------------------------------------------------------------------------------------------------
# Running an exported directory
# ----------------------------------------------------------------------------------------------------------------------

# transformers' own values for generation settings a GenerationConfig leaves unset (None).
_GENERATION_DEFAULTS = {"do_sample": False, "temperature": 1.0, "top_k": 50, "top_p": 1.0, "repetition_penalty": 1.0}
# Settings this loop does not implement, with the value that means "off"; anything else is refused, not ignored.
_UNSUPPORTED_GENERATION = {
    "num_beams": 1, "num_beam_groups": 1, "penalty_alpha": None, "typical_p": 1.0, "min_p": None, "top_h": None,
    "epsilon_cutoff": 0.0, "eta_cutoff": 0.0, "no_repeat_ngram_size": 0, "bad_words_ids": None,
    "suppress_tokens": None, "begin_suppress_tokens": None, "sequence_bias": None, "guidance_scale": None,
    "force_words_ids": None, "constraints": None, "stop_strings": None, "dola_layers": None,
    "return_dict_in_generate": False, "output_scores": False, "output_logits": False,
}


class Int8CharGPT:
    """A CharGPT int8 export running on ONNX Runtime; build it with `load_int8(directory)`.

    Attributes: `config` (CharGPTConfig), `generation_config` (causal LMs), `task` ('causal-lm' or
    'sequence-classification'), `export_info` (the export's JSON description), `device` (cpu), `dtype` (float32).
    """

    def __init__(self, path: str, session, config: CharGPTConfig, generation_config, export_info: dict):
        self.path, self.session, self.config = path, session, config
        self.generation_config, self.export_info = generation_config, export_info
        self.task = export_info["task"]
        self.device, self.dtype = torch.device("cpu"), torch.float32
        self._head_dim = config.n_embd // config.n_head

    def eval(self):
        return self  # inference only; mirrors nn.Module.eval() so callers need no special case

    def _run(self, input_ids: np.ndarray, past: list | None, logits_from: int):
        """One graph call: ids (B, T) after `past` -> logits (B, T - logits_from, .), hidden (B, T, C), presents."""
        B, T = input_ids.shape
        past_len = 0 if past is None else past[0].shape[2]
        if past_len + T > self.config.n_positions:
            raise ValueError(
                f"Sequence too long: {past_len + T} tokens ({past_len} cached + {T} new) but the model's context "
                f"length is n_positions={self.config.n_positions}. Truncate the input, or keep prompt length + "
                f"max_new_tokens <= {self.config.n_positions} when generating."
            )
        if past is None:
            empty = np.zeros((B, self.config.n_head, 0, self._head_dim), dtype=np.float32)
            past = [empty] * (2 * self.config.n_layer)
        feed = {"input_ids": input_ids.astype(np.int64, copy=False), "logits_from": np.array([logits_from], np.int64)}
        for i in range(self.config.n_layer):
            feed[f"past_key.{i}"], feed[f"past_value.{i}"] = past[2 * i], past[2 * i + 1]
        logits, hidden, *presents = self.session.run(None, feed)
        return logits, hidden, presents

    def _check_ids(self, input_ids, attention_mask):
        """Token ids as numpy plus each row's length, refusing padding the graph cannot mask (only right padding)."""
        ids = torch.as_tensor(input_ids)
        if ids.dim() != 2 or ids.numel() == 0 or ids.is_floating_point():
            raise ValueError(f"input_ids must be a non-empty (batch, sequence) integer tensor, got {tuple(ids.shape)}.")
        if int(ids.min()) < 0 or int(ids.max()) >= self.config.vocab_size:
            raise ValueError(f"input_ids holds ids outside the vocabulary [0, {self.config.vocab_size}).")
        if attention_mask is None:
            return ids.numpy(), torch.full((ids.shape[0],), ids.shape[1])
        mask = torch.as_tensor(attention_mask).bool()
        lengths = mask.sum(dim=1)
        right_padded = mask == (torch.arange(ids.shape[1])[None, :] < lengths[:, None])
        if mask.shape != ids.shape or not bool(right_padded.all()) or int(lengths.min()) == 0:
            raise ValueError(
                "The int8 model handles right padding only (and no empty rows): tokenize with "
                "tokenizer.padding_side = 'right', or pass no attention_mask for unpadded input."
            )
        return ids.numpy(), lengths

    def __call__(self, input_ids=None, attention_mask=None, **kwargs):
        """Like the PyTorch forward: `.logits` is (B, T, V) for a causal LM, (B, num_labels) for a classifier,
        pooled at each row's last real token. `.hidden_states` holds the last hidden states (B, T, C)."""
        unknown = {k for k, v in kwargs.items() if v is not None} - {"use_cache", "return_dict"}
        if unknown:
            raise TypeError(f"Int8CharGPT does not support the arguments {sorted(unknown)}.")
        ids, lengths = self._check_ids(input_ids, attention_mask)
        logits, hidden, _ = self._run(ids, None, 0)
        logits = torch.from_numpy(logits)
        if self.task == "sequence-classification":
            logits = logits[torch.arange(ids.shape[0]), lengths - 1]  # (B, T, L) -> (B, L)
        return SimpleNamespace(logits=logits, hidden_states=torch.from_numpy(hidden))

    forward = __call__

    @torch.no_grad()
    def embed(self, input_ids, attention_mask=None, normalize=True):
        """Masked-mean sentence embeddings (B, C), L2-normalised by default, as `CharGPTPreTrainedModel.embed`."""
        ids, _ = self._check_ids(input_ids, attention_mask)
        hidden = torch.from_numpy(self._run(ids, None, ids.shape[1] - 1)[1])
        pooled = mean_pool(hidden, None if attention_mask is None else torch.as_tensor(attention_mask))
        return F.normalize(pooled, dim=-1) if normalize else pooled

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, generation_config=None, streamer=None, **kwargs):
        """Greedy or sampled continuation with the key/value cache, with `model.generate()`'s semantics for the
        settings CharGPT uses (do_sample, temperature, top_k, top_p, repetition_penalty, max_new_tokens /
        max_length, min_new_tokens, eos_token_id (one or several), pad_token_id, num_return_sequences) and the same
        streamer protocol (`put(prompt)`, `put(token)` per step, `end()`). Returns (B * n, prompt + new) token ids;
        rows that stopped early are padded with pad_token_id. Other settings (beam search, ...) raise ValueError."""
        if self.task != "causal-lm":
            raise ValueError("This int8 export is a classifier; generate() needs a causal LM export.")
        gen = copy.deepcopy(generation_config or self.generation_config or GenerationConfig())
        unused = gen.update(**kwargs)
        if unused:
            raise ValueError(f"Int8CharGPT.generate() got unknown arguments {sorted(unused)}.")
        _check_supported(gen)
        ids, _ = self._check_ids(input_ids, attention_mask)
        if attention_mask is not None and not bool(torch.as_tensor(attention_mask).bool().all()):
            raise ValueError("Int8CharGPT.generate() takes unpadded prompts: generate one prompt (or equal-length "
                             "prompts) per call.")
        ids = torch.from_numpy(ids).repeat_interleave(gen.num_return_sequences or 1, dim=0)
        prompt_len = ids.shape[1]
        max_new = gen.max_new_tokens if gen.max_new_tokens is not None else (gen.max_length or 20) - prompt_len
        if max_new < 1 or prompt_len + max_new > self.config.n_positions:
            raise ValueError(
                f"Cannot generate {max_new} tokens after a {prompt_len}-token prompt: need at least 1 and prompt + "
                f"max_new_tokens <= n_positions={self.config.n_positions}."
            )
        eos = gen.eos_token_id
        eos = torch.tensor([] if eos is None else ([eos] if isinstance(eos, int) else list(eos)), dtype=torch.long)
        pad = gen.pad_token_id if gen.pad_token_id is not None else self.config.pad_token_id or 0
        processors, do_sample = _logits_processors(gen, prompt_len, eos), _setting(gen, "do_sample")
        if streamer is not None:
            streamer.put(ids.clone())
        unfinished = torch.ones(ids.shape[0], dtype=torch.bool)
        step_ids, past = ids.numpy(), None
        for _ in range(max_new):
            logits, _, past = self._run(step_ids, past, step_ids.shape[1] - 1)
            scores = processors(ids, torch.from_numpy(logits[:, -1, :]).clone())
            if do_sample:
                next_tokens = torch.multinomial(scores.softmax(dim=-1), num_samples=1).squeeze(1)
            else:
                next_tokens = scores.argmax(dim=-1)
            next_tokens = torch.where(unfinished, next_tokens, torch.full_like(next_tokens, pad))
            ids = torch.cat([ids, next_tokens[:, None]], dim=1)
            if streamer is not None:
                streamer.put(next_tokens.clone())
            unfinished &= ~torch.isin(next_tokens, eos)
            if not bool(unfinished.any()):
                break
            step_ids = next_tokens[:, None].numpy()
        if streamer is not None:
            streamer.end()
        return ids


def _setting(gen: GenerationConfig, name: str):
    value = getattr(gen, name, None)
    return _GENERATION_DEFAULTS[name] if value is None else value


def _check_supported(gen: GenerationConfig):
    for name, off in _UNSUPPORTED_GENERATION.items():
        value = getattr(gen, name, None)
        if value is not None and value != off:
            raise ValueError(
                f"Int8CharGPT.generate() supports greedy decoding and sampling only; {name}={value!r} is not "
                f"supported. Use the PyTorch model for it."
            )


def _logits_processors(gen: GenerationConfig, prompt_len: int, eos: torch.Tensor) -> LogitsProcessorList:
    """transformers' own processors, in the order `generate()` applies them."""
    processors = LogitsProcessorList()
    if _setting(gen, "repetition_penalty") != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(penalty=_setting(gen, "repetition_penalty")))
    if gen.min_new_tokens and len(eos):
        processors.append(MinNewTokensLengthLogitsProcessor(prompt_len, gen.min_new_tokens, eos))
    if _setting(gen, "do_sample"):
        if _setting(gen, "temperature") != 1.0:
            processors.append(TemperatureLogitsWarper(_setting(gen, "temperature")))
        if _setting(gen, "top_k"):
            processors.append(TopKLogitsWarper(top_k=_setting(gen, "top_k")))
        if _setting(gen, "top_p") < 1.0:
            processors.append(TopPLogitsWarper(top_p=_setting(gen, "top_p")))
    return processors


def load_int8(path, num_threads: int | None = None) -> Int8CharGPT:
    """Load a directory written by `export_int8` (the only loader for it). `num_threads`: ONNX Runtime intra-op
    threads (default: its own choice, one per physical core)."""
    ort = _require("onnxruntime")
    path = str(path)
    if not is_int8_export(path):
        raise ValueError(f"{path} is not an int8 export (no {EXPORT_INFO_FILE}); write one with `chargpt export-int8`.")
    with open(os.path.join(path, EXPORT_INFO_FILE), encoding="utf-8") as f:
        info = json.load(f)
    if info.get("format") != EXPORT_FORMAT or info.get("format_version", 0) > EXPORT_FORMAT_VERSION:
        raise ValueError(
            f"{path} holds export format {info.get('format')!r} version {info.get('format_version')}; this chargpt "
            f"reads {EXPORT_FORMAT!r} up to version {EXPORT_FORMAT_VERSION}. Upgrade chargpt or re-export."
        )
    config = CharGPTConfig.from_pretrained(path)
    generation_config = None
    if os.path.isfile(os.path.join(path, "generation_config.json")):
        generation_config = GenerationConfig.from_pretrained(path)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if num_threads:
        options.intra_op_num_threads = num_threads
    graph = os.path.join(path, info["onnx_file"])
    try:
        session = ort.InferenceSession(graph, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own types (InvalidProtobuf, Fail, NoSuchFile)
        raise ValueError(
            f"Could not load the int8 graph {graph}: {type(err).__name__}: {err}. The file may be truncated or "
            f"damaged: export the model again with `chargpt export-int8`."
        ) from err
    return Int8CharGPT(path, session, config, generation_config, info)


# ----------------------------------------------------------------------------------------------------------------------
# Export and agreement checks
# ----------------------------------------------------------------------------------------------------------------------


def weights_bytes(path) -> int:
    """Bytes of the weight files in a model directory (safetensors, PyTorch bins or the int8 ONNX graph)."""
    suffixes = (".safetensors", ".bin", ".onnx", ".pt")
    return sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path) if n.endswith(suffixes))


def directory_bytes(path) -> int:
    return sum(os.path.getsize(os.path.join(root, n)) for root, _, names in os.walk(path) for n in names)


def _unique_parameter_bytes(model) -> int:
    """What save_pretrained stores: every distinct tensor once (tied weights count once)."""
    seen = {}
    for tensor in list(model.parameters()) + list(model.buffers()):
        seen[tensor.data_ptr()] = tensor.numel() * tensor.element_size()
    return sum(seen.values())


def export_int8(model, tokenizer, output_dir, source: str | None = None, overwrite: bool = False,
                num_threads: int | None = None, eval_texts: list[str] | None = None,
                eval_labels: list[int] | None = None) -> dict:
    """Write an int8 ONNX Runtime export of `model` (a CharGPT causal LM or classifier) with its tokenizer to
    `output_dir`, atomically (built in a temporary sibling directory, then renamed). Returns the export description
    that is also written to `chargpt_int8.json`: method, sizes, an agreement check against the float model on a fixed
    probe (max |logit difference|, top-1 agreement, and for causal LMs the greedy continuation) and, given
    `eval_texts` (and `eval_labels` for a classifier), `compare_on_texts` on them."""
    onnx = _require("onnx")
    _require("onnxruntime")
    from .inference import atomic_output_dir  # imported here: inference loads this module lazily, too

    task = model_task(model)
    model = model.to(device="cpu", dtype=torch.float32).eval()
    source_bytes = weights_bytes(source) if source and os.path.isdir(source) else _unique_parameter_bytes(model)
    with atomic_output_dir(output_dir, overwrite=overwrite, source=source) as staging:
        onnx.save_model(build_onnx_model(model, int8=True), os.path.join(staging, ONNX_FILE))
        config = model.config.to_dict()
        config.pop("auto_map", None)  # the export holds no modeling code; only chargpt.quantization.load_int8 reads it
        _write_json(os.path.join(staging, "config.json"), config)
        if task == "causal-lm":
            model.generation_config.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        info = {
            "format": EXPORT_FORMAT,
            "format_version": EXPORT_FORMAT_VERSION,
            "task": task,
            "onnx_file": ONNX_FILE,
            "method": (
                "ONNX Runtime dynamic int8: Linear weights int8 per output channel (symmetric), activations "
                "quantized per call (com.microsoft.DynamicQuantizeMatMul); token/position embeddings int8 per row; "
                "LayerNorms, biases and the classification head float32"
            ),
            "tied_embedding_stored_once": task == "causal-lm" and model.lm_head.weight is model.transformer.wte.weight,
            "source": str(source) if source else None,
            "source_weights_bytes": int(source_bytes),
            "int8_weights_bytes": os.path.getsize(os.path.join(staging, ONNX_FILE)),
            "opset": _OPSET,
            "versions": _versions(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        info["size_ratio"] = round(info["int8_weights_bytes"] / info["source_weights_bytes"], 4)
        _write_json(os.path.join(staging, EXPORT_INFO_FILE), info)
        int8_model = load_int8(staging, num_threads=num_threads)
        info["probe_check"] = probe_agreement(model, int8_model)
        if eval_texts:
            info["evaluation"] = compare_on_texts(model, int8_model, tokenizer, eval_texts, eval_labels)
        _write_json(os.path.join(staging, EXPORT_INFO_FILE), info)
    logger.info("Wrote the int8 export to %s (%.2f of the float32 weights).", output_dir, info["size_ratio"])
    return info


def _versions() -> dict:
    import onnxruntime
    import transformers

    from . import __version__

    return {"chargpt": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "onnxruntime": onnxruntime.__version__}


def _write_json(path, data):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=2)
        f.write("\n")


@torch.no_grad()
def probe_agreement(model, int8_model: Int8CharGPT, n_tokens: int = 32, n_new: int = 16) -> dict:
    """Compare the float and int8 models on fixed pseudo-random token ids (no text needed)."""
    config = model.config
    T = min(n_tokens, config.n_positions)
    gen = torch.Generator().manual_seed(0)
    low = 5 if config.vocab_size > 5 else 0  # skip the special tokens where there are others
    ids = torch.randint(low, config.vocab_size, (4, T), generator=gen)
    ref, got = model(input_ids=ids).logits, int8_model(input_ids=ids).logits
    result = {
        "max_abs_logit_diff": round(float((ref - got).abs().max()), 5),
        "logit_scale": round(float(ref.abs().max()), 5),
        "top1_agreement": round(float((ref.argmax(-1) == got.argmax(-1)).float().mean()), 4),
    }
    n_new = min(n_new, config.n_positions - 8)
    if int8_model.task == "causal-lm" and n_new > 0:
        a = model.generate(ids[:1, :8], attention_mask=torch.ones(1, 8, dtype=torch.long), **_greedy(n_new, config))
        b = int8_model.generate(ids[:1, :8], **_greedy(n_new, config))
        a, b = a[0, 8:], b[0, 8:]
        same = (a == b).long()
        result["greedy_tokens_matching_before_first_difference"] = int(same.cumprod(0).sum())
        result["greedy_tokens_compared"] = int(len(a))
    return result


@torch.no_grad()
def compare_on_texts(model, int8_model: Int8CharGPT, tokenizer, texts: list[str], labels: list[int] | None = None,
                     batch_size: int = 16) -> dict:
    """Agreement on real text. Causal LM: perplexity of each model (all tokens after <bos>, texts truncated to the
    context) and next-token top-1 agreement. Classifier: accuracy of each (when labels are given) and agreement."""
    if not texts:
        raise ValueError("compare_on_texts needs at least one text.")
    if int8_model.task == "causal-lm":
        nll, agree, count = {"fp32": 0.0, "int8": 0.0}, 0, 0
        for text in texts:
            enc = tokenizer(text, truncation=True, max_length=model.config.n_positions, return_tensors="pt")
            ids = enc["input_ids"]
            if ids.shape[1] < 2:
                continue
            outs = {"fp32": model(input_ids=ids).logits[0, :-1], "int8": int8_model(input_ids=ids).logits[0, :-1]}
            for name, logits in outs.items():
                nll[name] += float(F.cross_entropy(logits.float(), ids[0, 1:], reduction="sum"))
            agree += int((outs["fp32"].argmax(-1) == outs["int8"].argmax(-1)).sum())
            count += ids.shape[1] - 1
        if count == 0:
            raise ValueError("None of the texts has a character to predict.")
        ppl = {k: math.exp(v / count) for k, v in nll.items()}
        return {"texts": len(texts), "tokens": count, "perplexity_fp32": round(ppl["fp32"], 4),
                "perplexity_int8": round(ppl["int8"], 4),
                "perplexity_change_pct": round(100 * (ppl["int8"] / ppl["fp32"] - 1), 3),
                "next_token_top1_agreement": round(agree / count, 4)}
    from .inference import classify_texts

    preds = {name: [r["label_id"] for r in classify_texts(m, tokenizer, texts, batch_size=batch_size)]
             for name, m in (("fp32", model), ("int8", int8_model))}
    result = {"texts": len(texts),
              "prediction_agreement": round(float(np.mean(np.equal(preds["fp32"], preds["int8"]))), 4)}
    if labels is not None:
        for name, p in preds.items():
            result[f"accuracy_{name}"] = round(float(np.mean(np.equal(p, labels))), 4)
        result["accuracy_change"] = round(result["accuracy_int8"] - result["accuracy_fp32"], 4)
    return result


# ----------------------------------------------------------------------------------------------------------------------
# Benchmark: python -m chargpt.quantization --model_dir DIR  (or call benchmark_int8)
# ----------------------------------------------------------------------------------------------------------------------


def _greedy(n_new: int, config) -> dict:
    """Exactly n_new greedy tokens (stop tokens suppressed until then), the same for every backend."""
    return dict(do_sample=False, max_new_tokens=n_new, min_new_tokens=n_new, pad_token_id=config.pad_token_id)


def make_random_model(output_dir, vocab_size: int = 5000, n_positions: int = 512, n_embd: int = 256, n_head: int = 8,
                      n_layer: int = 6, n_inner: int = 1024, seed: int = 0) -> str:
    """A randomly initialised CharGPT causal LM with a `vocab_size`-token vocabulary of CJK characters, for size and
    speed measurements (random weights time and compress like trained ones; they say nothing about quality)."""
    from .modeling_chargpt import CharGPTForCausalLM
    from .tokenization_chargpt import CharGPTTokenizer

    tokenizer = CharGPTTokenizer.from_texts(["".join(chr(0x4E00 + i) for i in range(vocab_size - 5))],
                                            model_max_length=n_positions)
    torch.manual_seed(seed)
    config = CharGPTConfig(vocab_size=len(tokenizer), n_positions=n_positions, n_embd=n_embd, n_head=n_head,
                           n_layer=n_layer, n_inner=n_inner)
    CharGPTForCausalLM(config).save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return str(output_dir)


def benchmark_int8(model_dir, int8_dir=None, new_tokens: int = 128, prompt_tokens: int = 16, repeats: int = 5,
                   num_threads: int | None = None, compare_torch_dynamic: bool = True,
                   compare_onnx_fp32: bool = True) -> dict:
    """Size and batch-1 greedy generation speed of the int8 export against the float32 PyTorch model (KV cache on
    both), with optional reference arms: PyTorch `quantize_dynamic` int8 and the same ONNX graph in float32.
    Every arm runs once to warm up, then the arms alternate `repeats` times; medians are reported."""
    from .inference import load_model

    threads = num_threads or torch.get_num_threads()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = load_model(model_dir, task="causal-lm")
        with tempfile.TemporaryDirectory() as tmp:
            if int8_dir is None:
                int8_dir = os.path.join(tmp, "int8")
                from .inference import load_tokenizer

                export_int8(model, load_tokenizer(model_dir), int8_dir, source=model_dir)
            arms = {"torch_fp32": model, "onnx_int8": load_int8(int8_dir, num_threads=threads)}
            extra_sizes = {}
            if compare_torch_dynamic:
                arms["torch_dynamic_int8"], extra_sizes["torch_dynamic_int8_state_dict_bytes"] = _torch_dynamic(model)
            if compare_onnx_fp32:
                arms["onnx_fp32"] = _onnx_session_model(model, threads)
            result = _time_arms(arms, model.config, new_tokens, prompt_tokens, repeats)
            int8_bytes = weights_bytes(int8_dir)
    finally:
        torch.set_num_threads(previous_threads)
    fp32_bytes = weights_bytes(model_dir)
    c = model.config
    result.update({
        "model": {"n_embd": c.n_embd, "n_head": c.n_head, "n_layer": c.n_layer, "n_inner": c.n_inner,
                  "n_positions": c.n_positions, "vocab_size": c.vocab_size,
                  "parameters": sum(p.numel() for p in model.parameters())},
        "threads": threads, "new_tokens": new_tokens, "prompt_tokens": prompt_tokens, "repeats": repeats,
        "sizes": {"fp32_weights_bytes": fp32_bytes, "int8_weights_bytes": int8_bytes,
                  "int8_size_ratio": round(int8_bytes / fp32_bytes, 4), **extra_sizes},
        "versions": _versions(),
    })
    return result


def _torch_dynamic(model):
    import io
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated; this arm is a reference only
        quantized = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)
    buffer = io.BytesIO()
    torch.save(quantized.state_dict(), buffer)
    return quantized, buffer.tell()


def _onnx_session_model(model, threads: int) -> Int8CharGPT:
    ort = _require("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    graph = build_onnx_model(model, int8=False).SerializeToString()
    session = ort.InferenceSession(graph, sess_options=options, providers=["CPUExecutionProvider"])
    return Int8CharGPT("<memory>", session, model.config, model.generation_config, {"task": "causal-lm"})


@torch.no_grad()
def _time_arms(arms: dict, config, new_tokens: int, prompt_tokens: int, repeats: int) -> dict:
    if prompt_tokens + new_tokens > config.n_positions:
        raise ValueError(f"prompt_tokens + new_tokens must be <= n_positions={config.n_positions}.")
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, config.vocab_size, (1, prompt_tokens), generator=gen)
    ids[0, 0] = config.bos_token_id
    kwargs = _greedy(new_tokens, config)
    outputs, times = {}, {name: [] for name in arms}
    for name, arm in arms.items():  # warm-up (allocations, ONNX Runtime's first-run setup)
        outputs[name] = arm.generate(ids, attention_mask=torch.ones_like(ids), **kwargs)[0, prompt_tokens:]
        if len(outputs[name]) != new_tokens:
            raise RuntimeError(f"{name} generated {len(outputs[name])} tokens instead of {new_tokens}.")
    for _ in range(repeats):
        for name, arm in arms.items():
            start = time.perf_counter()
            arm.generate(ids, attention_mask=torch.ones_like(ids), **kwargs)
            times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(t) for name, t in times.items()}
    reference = outputs["torch_fp32"]
    return {
        "seconds_median": {k: round(v, 4) for k, v in median.items()},
        "seconds_all": {k: [round(x, 4) for x in v] for k, v in times.items()},
        "tokens_per_second": {k: round(new_tokens / v, 1) for k, v in median.items()},
        "speedup_vs_torch_fp32": {k: round(median["torch_fp32"] / v, 3) for k, v in median.items()},
        "greedy_tokens_matching_fp32_before_first_difference": {
            k: int((o == reference).long().cumprod(0).sum()) for k, o in outputs.items()
        },
    }


@dataclass
class BenchmarkArguments:
    model_dir: str = field(metadata={"help": "A float32 CharGPT causal-LM directory (created with random weights when "
                                             "--make_random_model is set and it does not exist)."})
    int8_dir: str | None = field(default=None, metadata={"help": "An existing int8 export of model_dir; default: "
                                                                 "export into a temporary directory."})
    new_tokens: int = field(default=128, metadata={"help": "Greedy tokens generated per run."})
    prompt_tokens: int = field(default=16, metadata={"help": "Prompt length in tokens."})
    repeats: int = field(default=5, metadata={"help": "Timed runs per arm (interleaved); the median is reported."})
    num_threads: int | None = field(default=None, metadata={"help": "Threads for PyTorch and ONNX Runtime."})
    compare_torch_dynamic: bool = field(default=True, metadata={"help": "Also time torch quantize_dynamic int8."})
    compare_onnx_fp32: bool = field(default=True, metadata={"help": "Also time the ONNX graph in float32."})
    make_random_model: bool = field(default=False, metadata={"help": "Create a random model in model_dir first."})
    vocab_size: int = field(default=5000, metadata={"help": "Random model: vocabulary size."})
    n_embd: int = field(default=256, metadata={"help": "Random model: hidden size."})
    n_head: int = field(default=8, metadata={"help": "Random model: attention heads."})
    n_layer: int = field(default=6, metadata={"help": "Random model: layers."})
    n_inner: int = field(default=1024, metadata={"help": "Random model: feed-forward width."})
    output_json: str | None = field(default=None, metadata={"help": "Also write the result to this JSON file."})


def main(argv=None):
    (args,) = HfArgumentParser(BenchmarkArguments).parse_args_into_dataclasses(args=argv)
    if args.make_random_model and not os.path.isdir(args.model_dir):
        make_random_model(args.model_dir, args.vocab_size, n_embd=args.n_embd, n_head=args.n_head,
                          n_layer=args.n_layer, n_inner=args.n_inner)
    result = benchmark_int8(args.model_dir, args.int8_dir, args.new_tokens, args.prompt_tokens, args.repeats,
                            args.num_threads, args.compare_torch_dynamic, args.compare_onnx_fp32)
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if args.output_json:
        _write_json(args.output_json, result)
    return 0


__all__ = [
    "Int8CharGPT",
    "load_int8",
    "is_int8_export",
    "export_int8",
    "build_onnx_model",
    "quantize_rows",
    "probe_agreement",
    "compare_on_texts",
    "benchmark_int8",
    "make_random_model",
]


if __name__ == "__main__":
    raise SystemExit(main())
