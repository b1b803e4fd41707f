"""Two routes to CharGPT's int8 ONNX export, measured side by side:

* `hand`: the first route, a graph written node by node from the weights (`benchmarks/int8_hand_graph.py`);
* `standard`: the ecosystem's route, `torch.onnx.export(..., dynamo=True)` of the PyTorch model with its KV cache,
  then `onnxruntime.quantization.quantize_dynamic` (int8 weights per output channel, 7-bit `reduce_range`);
* variants of it (`STANDARD_VARIANTS`): the tied LM head given its own copy of the table in the export wrapper
  (the quantizer leaves a tied head, Transpose of the embedding -> MatMul, in float32), and opset 23, where
  RMSNorm and attention export as single ONNX ops (RMSNormalization, Attention) instead of a dozen nodes each.

The standard graph is exported through a wrapper that takes and gives exactly the hand graph's inputs and outputs
(`input_ids`, `logits_from`, `past_key.{i}`/`past_value.{i}` -> `logits`, `hidden_states`, `present_*`), so the same
`Int8CharGPT` runtime drives both and every figure compares like with like:

    python -m benchmarks.int8_routes --model_dir /tmp/routes/course --make_random_model --preset course \
        --num_threads 1 --repeats 5 --output_json benchmarks/results/int8_routes_course.json
"""

import json
import os
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from transformers import HfArgumentParser

from chargpt import CharGPTConfig, CharGPTForCausalLM, CharGPTForSequenceClassification
from chargpt.configuration_chargpt import CLASSIFIER_POOLINGS
from chargpt.int8 import Int8CharGPT, compare_on_texts, greedy_settings, weights_bytes
from chargpt.int8.export import library_versions
from chargpt.int8.onnx_export import CausalLMGraph
from chargpt.int8.runtime import _session_options
from chargpt.loading import load_model, load_tokenizer

from .common import interleaved_times, machine_info, median, write_json_atomic
from .int8 import _time_arms, make_random_model, placeholder_tokenizer
from .int8_hand_graph import build_onnx_model


# ------------------------------------------------------------------------------------------------ the standard route


class SharedHeadGraph(CausalLMGraph):
    """The package's causal-LM export wrapper without its head copy: a tied head stays the embedding table's
    Transpose feeding a MatMul, which quantize_dynamic leaves in float32 (the plain standard route)."""

    def __init__(self, model):
        super().__init__(model)
        self.tied = False  # forward then applies model.lm_head, the shared table


def flat_cache_graph(model, separate_head: bool):
    return CausalLMGraph(model) if separate_head else SharedHeadGraph(model)


class PooledClassifier(nn.Module):
    """The classifier as users call it: ids and a 2D padding mask -> pooled logits (B, num_labels)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits


def _cache_names(n_layer: int, prefix: str) -> list[str]:
    return [f"{prefix}_{kind}.{i}" for i in range(n_layer) for kind in ("key", "value")]


def export_standard_lm(
    model, path: str, past_min: int = 0, separate_head: bool = False, opset: int | None = None
) -> float:
    """torch.onnx.export(dynamo=True) of the causal LM with dynamic batch, sequence and past length into `path`;
    returns the seconds it took. `past_min`: the smallest past length the exported shapes admit; 0 exports
    (torch 2.13), and check_float_lm runs the graph at past length 0 (its first call) and above. `opset`: None
    is the exporter's default (20 in torch 2.13)."""
    c = model.config
    B, T, P, H, D = 2, 3, 4, c.n_head, c.n_embd // c.n_head
    batch = torch.export.Dim("batch", min=1, max=1024)
    seq = torch.export.Dim("sequence", min=1, max=c.n_positions)
    past_len = torch.export.Dim("past_sequence", min=past_min, max=c.n_positions)
    past = [torch.randn(B, H, P, D) for _ in range(2 * c.n_layer)]
    args = (torch.randint(5, c.vocab_size, (B, T)), torch.tensor([0]), past)
    shapes = {"input_ids": {0: batch, 1: seq}, "logits_from": None, "past": [{0: batch, 2: past_len}] * len(past)}
    start = time.perf_counter()
    torch.onnx.export(
        flat_cache_graph(model.eval(), separate_head).eval(),
        args,
        path,
        dynamo=True,
        dynamic_shapes=shapes,
        external_data=False,
        input_names=["input_ids", "logits_from", *_cache_names(c.n_layer, "past")],
        output_names=["logits", "hidden_states", *_cache_names(c.n_layer, "present")],
        opset_version=opset,
    )
    return time.perf_counter() - start


def export_standard_classifier(model, path: str, opset: int | None = None) -> float:
    """torch.onnx.export(dynamo=True) of a CharGPTForSequenceClassification: input_ids, attention_mask -> logits."""
    c = model.config
    batch, seq = torch.export.Dim("batch", min=1, max=1024), torch.export.Dim("sequence", min=1, max=c.n_positions)
    ids = torch.randint(5, c.vocab_size, (3, 7))
    mask = torch.tensor([[1] * 7, [1] * 5 + [0] * 2, [1] * 2 + [0] * 5])
    start = time.perf_counter()
    torch.onnx.export(
        PooledClassifier(model.eval()).eval(),
        (ids, mask),
        path,
        dynamo=True,
        external_data=False,
        dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
        input_names=["input_ids", "attention_mask"],
        output_names=["logits"],
        opset_version=opset,
    )
    return time.perf_counter() - start


def quantize_standard(fp32_path: str, int8_path: str, op_types: tuple[str, ...] | None = None) -> float:
    """ONNX Runtime's dynamic int8 quantizer with the settings that match the hand graph's arithmetic: symmetric
    int8 weights, one scale per output channel, 7-bit range (the AVX2 overflow described in chargpt/int8/graph.py).
    `op_types`: the op types to quantize (None: the quantizer's default, all it knows)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    start = time.perf_counter()
    quantize_dynamic(
        fp32_path,
        int8_path,
        per_channel=True,
        reduce_range=True,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=list(op_types) if op_types else None,
    )
    return time.perf_counter() - start


# How each standard graph is made. At opset 23 the exporter writes ONNX's own `Attention` op, which quantize_dynamic
# (onnxruntime 1.32) mistakes for com.microsoft's Attention and turns into a QAttention that ONNX Runtime then
# refuses ("Unrecognized attribute: is_causal"), so those variants quantize MatMul and Gather only.
STANDARD_VARIANTS = {
    "standard": {"separate_head": False, "opset": None, "op_types": None},
    "standard_head": {"separate_head": True, "opset": None, "op_types": None},
    "standard_op23": {"separate_head": False, "opset": 23, "op_types": ("MatMul", "Gather")},
    "standard_op23_head": {"separate_head": True, "opset": 23, "op_types": ("MatMul", "Gather")},
}


def session(path_or_model, config, task: str, generation_config=None, threads: int | None = None) -> Int8CharGPT:
    """The project's runtime over a graph file (or in-memory ModelProto), with the loader's session options."""
    import onnxruntime as ort

    source = path_or_model if isinstance(path_or_model, str) else path_or_model.SerializeToString()
    sess = ort.InferenceSession(source, sess_options=_session_options(ort, threads), providers=["CPUExecutionProvider"])
    return Int8CharGPT(str(path_or_model)[:200], sess, config, generation_config, {"task": task})


# ------------------------------------------------------------------------------------------------------ the two routes


def build_routes(model, directory: str, threads: int) -> dict:
    """The hand int8 graph and every STANDARD_VARIANTS graph of `model` as files in `directory`, with their export
    times; each standard variant keeps its float32 graph for the correctness check (it differs from PyTorch by
    rounding only, so any real difference is the exporter's, not quantization's)."""
    import onnx

    paths = {"hand_int8": os.path.join(directory, "hand_int8.onnx")}
    start = time.perf_counter()
    onnx.save_model(build_onnx_model(model, int8=True), paths["hand_int8"])
    seconds = {"hand_int8": time.perf_counter() - start}
    for name, variant in STANDARD_VARIANTS.items():
        fp32, int8 = (os.path.join(directory, f"{name}_{kind}.onnx") for kind in ("fp32", "int8"))
        export_s = export_standard_lm(model, fp32, separate_head=variant["separate_head"], opset=variant["opset"])
        quantize_s = quantize_standard(fp32, int8, variant["op_types"])
        paths.update({f"{name}_fp32": fp32, f"{name}_int8": int8})
        seconds.update(
            {
                f"{name}_int8": export_s + quantize_s,
                f"{name}_torch_onnx_export": export_s,
                f"{name}_quantize_dynamic": quantize_s,
            }
        )
    gen, c = model.generation_config, model.config
    return {
        "paths": paths,
        "export_seconds": {k: round(v, 2) for k, v in seconds.items()},
        "sessions": {name: session(p, c, "causal-lm", gen, threads) for name, p in paths.items()},
    }


def graph_summary(path: str) -> dict:
    """What a graph is made of: file bytes, initializer bytes per data type and the count of each op type, so that a
    size or speed difference between the routes can be traced to the nodes that cause it."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(path)
    graph = proto.graph
    by_dtype, ops = {}, {}
    for tensor in graph.initializer:
        name = onnx.TensorProto.DataType.Name(tensor.data_type)
        by_dtype[name] = by_dtype.get(name, 0) + numpy_helper.to_array(tensor).nbytes
    for node in graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    # torch.onnx writes each node's stack trace and module path as metadata; it is debugging aid, not weights, and
    # a one-line strip removes it, so the size without it is the route's fair size too.
    for node in graph.node:
        del node.metadata_props[:]
    return {
        "file_bytes": os.path.getsize(path),
        "bytes_without_node_metadata": proto.ByteSize(),
        "initializer_bytes_by_dtype": by_dtype,
        "nodes": len(graph.node),
        "op_types": dict(sorted(ops.items(), key=lambda kv: -kv[1])),
    }


# ------------------------------------------------------------------------------------------------------- correctness


@torch.no_grad()
def check_float_lm(model, graph: Int8CharGPT, atol: float = 1e-4) -> dict:
    """The float32 graph against PyTorch, as tests/test_quantization.py checks the hand graph: 24 tokens of a batch
    of 2 at once, and through the cache (12, then 8, then one at a time; the first call has an empty cache, past
    length 0)."""
    ids = torch.randint(5, model.config.vocab_size, (2, 24), generator=torch.Generator().manual_seed(1))
    expected = model(ids).logits.numpy()
    whole = graph(ids).logits.numpy()
    steps, past = [], None
    for start, end in ((0, 12), (12, 20), (20, 21), (21, 22), (22, 23), (23, 24)):
        logits, _, past = graph._run(ids[:, start:end].numpy(), past, 0)
        steps.append(logits)
    cached = np.concatenate(steps, axis=1)
    diffs = {"whole": float(np.abs(whole - expected).max()), "through_cache": float(np.abs(cached - expected).max())}
    return {"max_abs_diff": diffs, "atol": atol, "matches": all(d <= atol for d in diffs.values())}


def _move_norm_weights(model, seed: int = 0):
    """Norm weights start at one and biases at zero; move them, so that a graph which dropped a norm shows it."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.LayerNorm, nn.RMSNorm)) and module.weight is not None:
                module.weight.add_(0.3 * torch.randn(module.weight.shape, generator=gen))
    return model


@torch.no_grad()
def check_classifier(preset: str, pooling: str, directory: str, opset: int | None = None, atol: float = 1e-4) -> dict:
    """Export a small CharGPTForSequenceClassification of `preset` (moved norm weights, 3 labels) by the standard
    route and compare its pooled logits with PyTorch's on a right-padded batch of four different lengths (float32:
    this checks the exported graph itself; the pooling runs inside it)."""
    import onnxruntime as ort

    torch.manual_seed(0)
    config = CharGPTConfig.from_preset(
        preset,
        vocab_size=300,
        n_positions=64,
        n_embd=64,
        n_head=4,
        n_layer=2,
        num_labels=3,
        classifier_pooling=pooling,
        initializer_range=0.2,
    )
    model = _move_norm_weights(CharGPTForSequenceClassification(config).eval())
    path = os.path.join(directory, f"classifier_{preset}_{pooling}_{opset}.onnx")
    seconds = export_standard_classifier(model, path, opset)
    lengths = torch.tensor([20, 13, 6, 1])
    mask = (torch.arange(20)[None, :] < lengths[:, None]).long()
    ids = torch.randint(5, 300, (4, 20), generator=torch.Generator().manual_seed(2)).masked_fill(mask == 0, 0)
    expected = model(input_ids=ids, attention_mask=mask).logits.numpy()
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    diff = float(np.abs(got - expected).max())
    return {
        "preset": preset,
        "pooling": pooling,
        "opset": opset,
        "batch": "4 rows, right-padded to lengths 20/13/6/1",
        "output_shape": list(got.shape),
        "max_abs_diff": diff,
        "atol": atol,
        "matches": got.shape == expected.shape and diff <= atol,
        "export_seconds": round(seconds, 2),
    }


# ------------------------------------------------------------------------------------------------------------ speed


@torch.no_grad()
def time_batch(arms: dict, config, batch: int, new_tokens: int, prompt_tokens: int, repeats: int) -> dict:
    """Greedy generation of `batch` different equal-length prompts at once (one warm-up each, then interleaved
    rounds). tokens/s counts every row's new tokens: batch * new_tokens / median seconds."""
    ids = torch.randint(5, config.vocab_size, (batch, prompt_tokens), generator=torch.Generator().manual_seed(1))
    ids[:, 0] = config.bos_token_id
    kwargs = greedy_settings(new_tokens, config)
    runs = {name: (lambda arm=arm: arm.generate(ids, **kwargs)) for name, arm in arms.items()}
    times = interleaved_times(runs, repeats, warmup=1)
    medians = {name: median(t) for name, t in times.items()}
    return {
        "batch": batch,
        "seconds_median": {k: round(v, 4) for k, v in medians.items()},
        "seconds_all": {k: [round(x, 4) for x in v] for k, v in times.items()},
        "tokens_per_second": {k: round(batch * new_tokens / v, 1) for k, v in medians.items()},
    }


def heldout_texts(path: str, count: int, sep: str) -> list[str]:
    """The first `count` dialogues of an LCCC JSON file (a list of dialogues, or {"train": [...]}) the model was not
    trained on, as plain text: LCCC's character spacing removed, turns joined by the tokenizer's separator."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    dialogues = data["train"] if isinstance(data, dict) else data
    return [sep.join(turn.replace(" ", "") for turn in dialogue) for dialogue in dialogues[:count]]


def decision(result: dict, name: str = "standard_int8") -> dict:
    """The adoption rule: the standard route is adopted unless it is more than 15% slower at batch 1 or more than
    1.5x the hand graph's size."""
    speed = result["batch1"]["tokens_per_second"]
    slowdown = 1 - speed[name] / speed["hand_int8"]
    size = result["sizes"][f"{name}_bytes"] / result["sizes"]["hand_int8_bytes"]
    return {
        "batch1_slowdown_vs_hand": round(slowdown, 4),
        "size_vs_hand": round(size, 4),
        "slower_than_15pct": slowdown > 0.15,
        "larger_than_1_5x": size > 1.5,
        "adopt_standard": not (slowdown > 0.15 or size > 1.5),
    }


# ------------------------------------------------------------------------------------------------------ one model


def make_random_preset_model(
    output_dir: str,
    preset: str,
    vocab_size: int = 5000,
    n_positions: int = 512,
    n_embd: int = 256,
    n_head: int = 8,
    n_layer: int = 6,
    seed: int = 0,
) -> str:
    """The benchmark's random model in another preset (n_inner: the preset's default width). The course preset is
    benchmarks.int8.make_random_model itself, 1024 inner."""
    if preset == "course":
        return make_random_model(output_dir, vocab_size, n_positions, n_embd, n_head, n_layer, 1024, seed)
    tokenizer = placeholder_tokenizer(vocab_size, model_max_length=n_positions)
    torch.manual_seed(seed)
    config = CharGPTConfig.from_preset(
        preset, vocab_size=len(tokenizer), n_positions=n_positions, n_embd=n_embd, n_head=n_head, n_layer=n_layer
    )
    CharGPTForCausalLM(config).save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return str(output_dir)


def measure_model(args) -> dict:
    """Export every route, check the float graphs, then time and compare; every figure of one model."""
    torch.set_num_threads(args.num_threads)
    model = load_model(args.model_dir, task="causal-lm").to(torch.float32).eval()
    c = model.config
    with tempfile.TemporaryDirectory() as tmp:
        routes = build_routes(model, tmp, args.num_threads)
        sessions = routes["sessions"]
        result = {
            "float32_graph_checks": {
                name: check_float_lm(model, sessions[f"{name}_fp32"]) for name in STANDARD_VARIANTS
            },
            "export_seconds": routes["export_seconds"],
            "graphs": {k: graph_summary(p) for k, p in routes["paths"].items()},
        }
        fp32_bytes = weights_bytes(args.model_dir)
        int8_names = ("hand_int8", *(f"{name}_int8" for name in STANDARD_VARIANTS))
        result["sizes"] = {"fp32_safetensors_bytes": fp32_bytes}
        for name in int8_names:
            size = os.path.getsize(routes["paths"][name])
            result["sizes"].update({f"{name}_bytes": size, f"{name}_ratio_to_fp32": round(size / fp32_bytes, 4)})
        arms = {"torch_fp32": model, **{name: sessions[name] for name in int8_names}}
        result["batch1"] = _time_arms(arms, c, args.new_tokens, args.prompt_tokens, args.repeats)
        int8_arms = {k: arms[k] for k in int8_names}
        result["batch8"] = time_batch(int8_arms, c, 8, args.new_tokens, args.prompt_tokens, args.repeats)
        if args.heldout_file:
            tokenizer = load_tokenizer(args.model_dir)
            texts = heldout_texts(args.heldout_file, args.heldout_texts, tokenizer.sep_token)
            result["heldout"] = {
                "file": args.heldout_file,
                **{k: compare_on_texts(model, arms[k], tokenizer, texts) for k in int8_arms},
            }
    result["decision"] = {f"{name}_int8": decision(result, f"{name}_int8") for name in STANDARD_VARIANTS}
    result["model"] = {
        "dir": args.model_dir,
        "preset_fields": {
            k: getattr(c, k)
            for k in ("position_embedding_type", "normalization", "activation_function", "gated_mlp", "qk_norm", "bias")
        },
        "n_embd": c.n_embd,
        "n_head": c.n_head,
        "n_layer": c.n_layer,
        "n_inner": c.n_inner,
        "n_positions": c.n_positions,
        "vocab_size": c.vocab_size,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    return result


@dataclass
class RoutesArguments:
    model_dir: str = field(
        metadata={
            "help": "A float32 CharGPT causal-LM directory (created with random weights when "
            "--make_random_model is set and it does not exist)."
        }
    )
    make_random_model: bool = field(default=False, metadata={"help": "Create a random model in model_dir first."})
    preset: str = field(default="course", metadata={"help": "Random model: preset (course or modern)."})
    vocab_size: int = field(default=5000, metadata={"help": "Random model: vocabulary size."})
    new_tokens: int = field(default=128, metadata={"help": "Greedy tokens generated per run."})
    prompt_tokens: int = field(default=16, metadata={"help": "Prompt length in tokens."})
    repeats: int = field(default=5, metadata={"help": "Timed runs per arm (interleaved); the median is reported."})
    num_threads: int = field(default=1, metadata={"help": "Threads for PyTorch and ONNX Runtime."})
    heldout_file: str | None = field(
        default=None, metadata={"help": "LCCC JSON dialogues the model was not trained on, for the perplexity change."}
    )
    heldout_texts: int = field(default=300, metadata={"help": "How many dialogues of heldout_file to score."})
    check_classifiers: bool = field(
        default=True,
        metadata={
            "help": "Also export classifiers of the model's preset (both poolings) and check them against PyTorch."
        },
    )
    output_json: str | None = field(default=None, metadata={"help": "Also write the result to this JSON file."})


def main(argv=None):
    (args,) = HfArgumentParser(RoutesArguments).parse_args_into_dataclasses(args=argv)
    if args.make_random_model and not os.path.isdir(args.model_dir):
        make_random_preset_model(args.model_dir, args.preset, args.vocab_size)
    result = {
        "machine": machine_info(),
        "versions": library_versions(),
        "threads": args.num_threads,
        "repeats": args.repeats,
        "new_tokens": args.new_tokens,
        "prompt_tokens": args.prompt_tokens,
        **measure_model(args),
    }
    if args.check_classifiers:
        preset = "modern" if result["model"]["preset_fields"]["position_embedding_type"] == "rope" else "course"
        with tempfile.TemporaryDirectory() as tmp:
            result["classifier_checks"] = [
                check_classifier(preset, p, tmp, opset) for p in CLASSIFIER_POOLINGS for opset in (None, 23)
            ]
    print(json.dumps({k: v for k, v in result.items() if k not in ("machine", "graphs")}, indent=1))
    if args.output_json:
        write_json_atomic(args.output_json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
