"""The int8 export's first route, kept as the reference arm of benchmarks/int8_routes.py (the package now derives its
graph from the model with torch.onnx.export; benchmarks/NOTES.md, "The int8 export route", has the comparison).

The ONNX graph of a CharGPT model, written node by node from its weights: int8 matrix products with one scale
per output channel (`com.microsoft.DynamicQuantizeMatMul`), int8 embedding rows, float32 norms, biases and rotary
tables, and key/value cache inputs and outputs for one-token-a-step decoding. Every architecture option of
`CharGPTConfig` has its graph form here: LayerNorm or RMSNorm, learned or rotary positions, plain or gated MLP,
every activation, optional QK-norm."""

import math
from typing import NamedTuple

import numpy as np
import torch

from chargpt.configuration_chargpt import ACTIVATIONS
from chargpt.int8.format import require
from chargpt.int8.onnx_export import model_task
from chargpt.modeling_chargpt import rotary_cos_sin


ONNX_OPSET = 17  # LayerNormalization is a standard op from opset 17
_IR_VERSION = 8  # the oldest IR that opset 17 needs, so older ONNX Runtime releases read the file too


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
        self.onnx = require("onnx")
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


def _norm(g: _Graph, x: str, module: torch.nn.Module, name: str) -> str:
    """A block or final norm over the last axis: ONNX LayerNormalization, or RMSNorm built from ops."""
    if isinstance(module, torch.nn.LayerNorm):
        inputs = [x, g.init(f"{name}.weight", module.weight.detach().float().numpy())]
        if module.bias is not None:
            inputs.append(g.init(f"{name}.bias", module.bias.detach().float().numpy()))
        return g.op("LayerNormalization", inputs, axis=-1, epsilon=float(module.eps))
    if isinstance(module, torch.nn.RMSNorm):
        return _rms_norm(g, x, module, name)
    raise ValueError(f"The int8 export handles LayerNorm and RMSNorm; {name} is a {type(module).__name__}.")


def _rms_norm(g: _Graph, x: str, module: torch.nn.RMSNorm, name: str) -> str:
    """x / sqrt(mean(x^2 over the last axis) + eps) * weight in float32, as torch.nn.RMSNorm computes it. Opset 17
    has no RMSNormalization; written as Pow/ReduceMean/Add/Sqrt/Div/Mul, the pattern that ONNX Runtime's optimizer
    can fuse into one SimplifiedLayerNormalization kernel."""
    eps = module.eps if module.eps is not None else torch.finfo(torch.float32).eps  # torch's default when None
    square = g.op("Pow", [x, g.const(2.0, np.float32)])
    mean_square = g.op("ReduceMean", [square], axes=[-1], keepdims=1)  # (..., 1); axes is an attribute up to opset 17
    y = g.op("Div", [x, g.op("Sqrt", [g.op("Add", [mean_square, g.const(eps, np.float32)])])])
    if module.weight is None:
        return y
    return g.op("Mul", [y, g.init(f"{name}.weight", module.weight.detach().float().numpy())])


def _activation(g: _Graph, x: str, name: str) -> str:
    """The config's activation from standard ops (ONNX Runtime fuses the GELU patterns)."""
    if name == "relu":
        return g.op("Relu", [x])
    if name == "relu2":  # squared ReLU
        relu = g.op("Relu", [x])
        return g.op("Mul", [relu, relu])
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


class _Rotary(NamedTuple):
    """What every attention layer of a rotary model shares: cos and sin (T, head_dim) of the new tokens' positions and
    the Slice inputs (starts, ends, axes) that cut a head's channels into its two halves."""

    cos: str
    sin: str
    first_half: list[str]
    second_half: list[str]


def _rotary(g: _Graph, config, positions: str) -> _Rotary:
    """cos/sin for `positions` (T,), gathered from float32 tables of every position. The tables are filled by the
    model's own `rotary_cos_sin`, so the graph turns q and k by exactly PyTorch's angles (n_positions x head_dim
    numbers each, small beside the weights)."""
    head_dim, half = config.n_embd // config.n_head, config.n_embd // config.n_head // 2
    all_positions = torch.arange(config.n_positions)[None]  # (1, N)
    cos, sin = rotary_cos_sin(all_positions, head_dim, config.rope_theta, torch.float32)  # each (1, 1, N, D)
    cos, sin = (
        g.op("Gather", [g.init(f"rope.{name}", table[0, 0].numpy()), positions], axis=0)
        for name, table in (("cos", cos), ("sin", sin))
    )  # each (T, D), broadcast over (B, H, T, D)
    last_axis = g.const([-1])
    first_half = [g.const([0]), g.const([half]), last_axis]
    return _Rotary(cos, sin, first_half, [g.const([half]), g.const([head_dim]), last_axis])


def _rotate(g: _Graph, x: str, rope: _Rotary) -> str:
    """apply_rotary: x * cos + rotate_half(x) * sin with rotate_half(x) = concat(-x[..., d/2:], x[..., :d/2]), which
    turns channel pair (i, i + d/2) of each head (B, H, T, D) by its angle."""
    first, second = g.op("Slice", [x, *rope.first_half]), g.op("Slice", [x, *rope.second_half])
    rotated = g.op("Concat", [g.op("Neg", [second]), first], axis=-1)
    return g.op("Add", [g.op("Mul", [x, rope.cos]), g.op("Mul", [rotated, rope.sin])])


def _attention(g: _Graph, x: str, attn, i: int, future: str, config, int8: bool, rope: _Rotary | None) -> str:
    """Causal self-attention over the cache plus the new tokens; writes present_key/value.{i}. As in PyTorch, QK-norm
    and then the rotary turn apply to the new keys before they join the cache."""
    n_head, head_dim = config.n_head, config.n_embd // config.n_head
    qkv = _linear(g, x, attn.c_attn, f"h.{i}.attn.c_attn", int8)  # (B, T, 3C)
    qkv = g.op("Reshape", [qkv, g.const([0, 0, 3, n_head, head_dim])])
    qkv = g.op("Transpose", [qkv], perm=[2, 0, 3, 1, 4])  # (B, T, 3, H, D) -> (3, B, H, T, D)
    q, k, v = (g.op("Gather", [qkv, g.const(j)], axis=0) for j in range(3))  # each (B, H, T, D)
    if config.qk_norm:  # per head: RMSNorm over head_dim
        q, k = _rms_norm(g, q, attn.q_norm, f"h.{i}.attn.q_norm"), _rms_norm(g, k, attn.k_norm, f"h.{i}.attn.k_norm")
    if rope is not None:
        q, k = _rotate(g, q, rope), _rotate(g, k, rope)
    k = g.op("Concat", [f"past_key.{i}", k], f"present_key.{i}", axis=2)  # (B, H, P + T, D)
    v = g.op("Concat", [f"past_value.{i}", v], f"present_value.{i}", axis=2)
    q = g.op("Mul", [q, g.const(1 / math.sqrt(head_dim), np.float32)])
    scores = g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])])  # (B, H, T, P + T)
    scores = g.op("Where", [future, g.const(np.finfo(np.float32).min, np.float32), scores])
    y = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])  # (B, H, T, D)
    y = g.op("Reshape", [g.op("Transpose", [y], perm=[0, 2, 1, 3]), g.const([0, 0, config.n_embd])])
    return _linear(g, y, attn.c_proj, f"h.{i}.attn.c_proj", int8)


def _mlp(g: _Graph, x: str, mlp, i: int, config, int8: bool) -> str:
    """c_proj(act(c_fc(x))), or gated: c_fc's fused output (B, T, 2 * n_inner) = [gate, up], c_proj(act(gate) * up)."""
    h = _linear(g, x, mlp.c_fc, f"h.{i}.mlp.c_fc", int8)
    if config.gated_mlp:
        n = config.n_inner
        last_axis = g.const([-1])
        gate = g.op("Slice", [h, g.const([0]), g.const([n]), last_axis])
        up = g.op("Slice", [h, g.const([n]), g.const([2 * n]), last_axis])
        h = g.op("Mul", [_activation(g, gate, config.activation_function), up])  # (B, T, n_inner)
    else:
        h = _activation(g, h, config.activation_function)
    return _linear(g, h, mlp.c_proj, f"h.{i}.mlp.c_proj", int8)


def _block(g: _Graph, block, x: str, i: int, future: str, config, int8: bool, rope: _Rotary | None) -> str:
    h = _norm(g, x, block.ln_1, f"h.{i}.ln_1")
    x = g.op("Add", [x, _attention(g, h, block.attn, i, future, config, int8, rope)])
    h = _norm(g, x, block.ln_2, f"h.{i}.ln_2")
    return g.op("Add", [x, _mlp(g, h, block.mlp, i, config, int8)])


def _check_exportable(model):
    base = getattr(model, "transformer", None)
    needed = ("wte", "wpe", "h", "ln_f")  # wpe is None in a rotary model, but the attribute is there
    if base is None or not all(hasattr(base, n) for n in needed):
        raise ValueError(
            f"{type(model).__name__} does not have CharGPT's layout (transformer.wte/wpe/h/ln_f); the int8 export "
            f"writes the graph for that layout only."
        )
    if model.config.activation_function not in ACTIVATIONS:
        raise ValueError(f"Unsupported activation {model.config.activation_function!r} for the int8 export.")
    if (base.wpe is None) != (model.config.position_embedding_type == "rope"):
        raise ValueError(
            f"position_embedding_type={model.config.position_embedding_type!r} does not match the model's "
            f"transformer.wpe ({'absent' if base.wpe is None else 'present'}); the int8 export cannot tell which "
            f"positions the model uses."
        )
    return base


def _positions(g: _Graph) -> tuple[str, str]:
    """Absolute positions of the new tokens (T,), counted after the cache, and the causal mask (T, P + T) that is
    True where a key lies in a query's future."""
    past_len = g.op("Shape", ["past_key.0"], start=2, end=3)  # (1,)
    total = g.op("Add", [past_len, g.op("Shape", ["input_ids"], start=1, end=2)])
    p0, p1 = g.op("Squeeze", [past_len]), g.op("Squeeze", [total])
    positions = g.op("Range", [p0, p1, g.const(1)])  # (T,) absolute positions of the new tokens
    keys = g.op("Range", [g.const(0), p1, g.const(1)])  # (P + T,)
    future = g.op("Greater", [g.op("Unsqueeze", [keys, g.const([0])]), g.op("Unsqueeze", [positions, g.const([1])])])
    return positions, future


def _embeddings(g: _Graph, base, positions: str, tied: bool, int8: bool) -> tuple[str, str | None]:
    """Token embeddings plus learned positions (none for rotary models) -> (B, T, C), and the int8 token table that a
    tied LM head reuses (None in float32)."""
    table, pos = None, None
    if int8:
        wte_q, wte_scale = quantize_rows(base.wte.weight, MATMUL_QMAX if tied else LOOKUP_QMAX)
        table = g.init("wte.qweight_t" if tied else "wte.qweight", wte_q.T if tied else wte_q)
        tokens = _embedding(g, table, g.init("wte.scale", wte_scale), "input_ids", transposed=tied)
        if base.wpe is not None:
            wpe_q, wpe_scale = quantize_rows(base.wpe.weight)
            pos = _embedding(g, g.init("wpe.qweight", wpe_q), g.init("wpe.scale", wpe_scale), positions, False)
    else:
        tokens = _embedding(g, g.init("wte.weight", base.wte.weight.detach().float().numpy()), None, "input_ids", False)
        if base.wpe is not None:
            pos = _embedding(g, g.init("wpe.weight", base.wpe.weight.detach().float().numpy()), None, positions, False)
    x = tokens if pos is None else g.op("Add", [tokens, pos])  # (B, T, C) + (T, C)
    return x, table


def build_onnx_model(model, int8: bool = True):
    """The ONNX graph of a CharGPT causal LM or classifier (int8 weights, or float32 when `int8=False`, which is
    used to check the graph itself against PyTorch). Inputs: input_ids (B, T), logits_from (1,) and the cache;
    outputs: logits (B, T - logits_from, V or num_labels), hidden_states (B, T, C), present_key/value.{i}."""
    onnx = require("onnx")
    task, base, config = model_task(model), _check_exportable(model), model.config
    g = _Graph()
    positions, future = _positions(g)
    tied = task == "causal-lm" and model.lm_head.weight is base.wte.weight
    x, table = _embeddings(g, base, positions, tied, int8)
    rope = _rotary(g, config, positions) if base.wpe is None else None
    for i, block in enumerate(base.h):
        x = _block(g, block, x, i, future, config, int8, rope)
    hidden = _norm(g, x, base.ln_f, "ln_f")
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
    opsets = [onnx.helper.make_opsetid("", ONNX_OPSET), onnx.helper.make_opsetid("com.microsoft", 1)]
    return onnx.helper.make_model(graph, opset_imports=opsets, ir_version=_IR_VERSION, producer_name="chargpt")
