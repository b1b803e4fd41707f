"""The package's int8 export (chargpt.int8: ONNX Runtime, int8 weights) as a benchmark contender, and the int8
export's own speed benchmark against PyTorch fp32 and two reference routes:

    python -m benchmarks.int8 --model_dir /tmp/rand256 --make_random_model --num_threads 1 --repeats 5

When the export cannot run here (module or onnx/onnxruntime missing) every int8 measurement of the main benchmark is
recorded as not run, with the reason, instead of failing the whole benchmark.
"""

import copy
import json
import os
import tempfile
from dataclasses import dataclass, field

import torch
from transformers import HfArgumentParser

from chargpt import CharGPTConfig, CharGPTForCausalLM, CharGPTTokenizer
from chargpt.int8 import (
    Int8CharGPT,
    export_float_graph,
    export_int8,
    greedy_settings,
    load_int8,
    session_model,
    weights_bytes,
)
from chargpt.int8.export import library_versions
from chargpt.loading import load_model, load_tokenizer

from .common import interleaved_times, median, write_json_atomic


def int8_unavailable_reason() -> str | None:
    """None when the int8 export can run here, else why not."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as err:
        return f"int8 export unavailable: {err}"
    return None


def placeholder_tokenizer(vocab_size: int, model_max_length: int = 512) -> CharGPTTokenizer:
    """A tokenizer of exactly `vocab_size` ids (CJK characters after the five specials), for exporting models with
    random weights in the speed and memory runs, where no real vocabulary exists."""
    return CharGPTTokenizer.from_texts(
        ["".join(chr(0x4E00 + i) for i in range(vocab_size - 5))], model_max_length=model_max_length
    )


def export_and_load(model, tokenizer, directory: str, threads: int | None = None):
    """Export `model` (CharGPT causal LM or classifier) to int8 in `directory`, save the float32 model beside it, and
    return (int8 model, sizes) with the bytes of both weight files and their ratio."""
    fp32_dir, int8_dir = os.path.join(directory, "fp32"), os.path.join(directory, "int8")
    model.save_pretrained(fp32_dir)
    tokenizer.save_pretrained(fp32_dir)
    info = export_int8(model, tokenizer, int8_dir, source=fp32_dir, num_threads=threads)
    sizes = {"fp32_weights_bytes": weights_bytes(fp32_dir), "int8_weights_bytes": weights_bytes(int8_dir)}
    sizes["size_ratio"] = sizes["int8_weights_bytes"] / sizes["fp32_weights_bytes"]
    sizes["checks"] = info.get("checks")
    return load_int8(int8_dir, num_threads=threads), sizes


def make_random_model(
    output_dir,
    vocab_size: int = 5000,
    n_positions: int = 512,
    n_embd: int = 256,
    n_head: int = 8,
    n_layer: int = 6,
    n_inner: int = 1024,
    seed: int = 0,
) -> str:
    """A randomly initialised CharGPT causal LM with a `vocab_size`-token vocabulary of CJK characters, for size and
    speed measurements (random weights time and compress like trained ones; they say nothing about quality)."""
    tokenizer = placeholder_tokenizer(vocab_size, model_max_length=n_positions)
    torch.manual_seed(seed)
    config = CharGPTConfig(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        n_embd=n_embd,
        n_head=n_head,
        n_layer=n_layer,
        n_inner=n_inner,
    )
    CharGPTForCausalLM(config).save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return str(output_dir)


def benchmark_int8(
    model_dir,
    int8_dir=None,
    new_tokens: int = 128,
    prompt_tokens: int = 16,
    repeats: int = 5,
    num_threads: int | None = None,
    compare_torch_dynamic: bool = True,
    compare_onnx_fp32: bool = True,
) -> dict:
    """Size and batch-1 greedy generation speed of the int8 export against the float32 PyTorch model (KV cache on
    both), with optional reference arms: PyTorch `quantize_dynamic` int8 and the same ONNX graph in float32.
    Every arm runs once to warm up, then the arms alternate `repeats` times; medians are reported."""
    threads = num_threads or torch.get_num_threads()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = load_model(model_dir, task="causal-lm")
        with tempfile.TemporaryDirectory() as tmp:
            if int8_dir is None:
                int8_dir = os.path.join(tmp, "int8")
                export_int8(model, load_tokenizer(model_dir), int8_dir, source=model_dir)
            arms = {"torch_fp32": model, "onnx_int8": load_int8(int8_dir, num_threads=threads)}
            extra_sizes = {}
            if compare_torch_dynamic:
                arms["torch_dynamic_int8"], extra_sizes["torch_dynamic_int8_state_dict_bytes"] = _torch_dynamic(model)
            if compare_onnx_fp32:
                arms["onnx_fp32"] = _onnx_session_model(model, threads, tmp)
            result = _time_arms(arms, model.config, new_tokens, prompt_tokens, repeats)
            int8_bytes = weights_bytes(int8_dir)
    finally:
        torch.set_num_threads(previous_threads)
    fp32_bytes = weights_bytes(model_dir)
    c = model.config
    result.update(
        {
            "model": {
                "n_embd": c.n_embd,
                "n_head": c.n_head,
                "n_layer": c.n_layer,
                "n_inner": c.n_inner,
                "n_positions": c.n_positions,
                "vocab_size": c.vocab_size,
                "parameters": sum(p.numel() for p in model.parameters()),
            },
            "threads": threads,
            "new_tokens": new_tokens,
            "prompt_tokens": prompt_tokens,
            "repeats": repeats,
            "sizes": {
                "fp32_weights_bytes": fp32_bytes,
                "int8_weights_bytes": int8_bytes,
                "int8_size_ratio": round(int8_bytes / fp32_bytes, 4),
                **extra_sizes,
            },
            "versions": library_versions(),
        }
    )
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


def _onnx_session_model(model, threads: int, directory: str) -> Int8CharGPT:
    """The export's float32 graph (before quantization), for reference."""
    path = export_float_graph(model, os.path.join(directory, "model_fp32.onnx"))
    return session_model(path, model.config, "causal-lm", model.generation_config, threads)


@torch.no_grad()
def _time_arms(arms: dict, config, new_tokens: int, prompt_tokens: int, repeats: int) -> dict:
    if prompt_tokens + new_tokens > config.n_positions:
        raise ValueError(f"prompt_tokens + new_tokens must be <= n_positions={config.n_positions}.")
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, config.vocab_size, (1, prompt_tokens), generator=gen)
    ids[0, 0] = config.bos_token_id
    kwargs = greedy_settings(new_tokens, config)
    outputs = {}
    for name, arm in arms.items():  # also the warm-up (allocations, ONNX Runtime's first-run setup)
        outputs[name] = arm.generate(ids, attention_mask=torch.ones_like(ids), **kwargs)[0, prompt_tokens:]
        if len(outputs[name]) != new_tokens:
            raise RuntimeError(f"{name} generated {len(outputs[name])} tokens instead of {new_tokens}.")
    runs = {
        name: (lambda arm=arm: arm.generate(ids, attention_mask=torch.ones_like(ids), **kwargs))
        for name, arm in arms.items()
    }
    times = interleaved_times(runs, repeats, warmup=0)
    median_s = {name: median(t) for name, t in times.items()}
    reference = outputs["torch_fp32"]
    return {
        "seconds_median": {k: round(v, 4) for k, v in median_s.items()},
        "seconds_all": {k: [round(x, 4) for x in v] for k, v in times.items()},
        "tokens_per_second": {k: round(new_tokens / v, 1) for k, v in median_s.items()},
        "speedup_vs_torch_fp32": {k: round(median_s["torch_fp32"] / v, 3) for k, v in median_s.items()},
        "greedy_tokens_matching_fp32_before_first_difference": {
            k: int((o == reference).long().cumprod(0).sum()) for k, o in outputs.items()
        },
    }


@dataclass
class BenchmarkArguments:
    model_dir: str = field(
        metadata={
            "help": "A float32 CharGPT causal-LM directory (created with random weights when "
            "--make_random_model is set and it does not exist)."
        }
    )
    int8_dir: str | None = field(
        default=None,
        metadata={"help": "An existing int8 export of model_dir; default: export into a temporary directory."},
    )
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
        make_random_model(
            args.model_dir,
            args.vocab_size,
            n_embd=args.n_embd,
            n_head=args.n_head,
            n_layer=args.n_layer,
            n_inner=args.n_inner,
        )
    result = benchmark_int8(
        args.model_dir,
        args.int8_dir,
        args.new_tokens,
        args.prompt_tokens,
        args.repeats,
        args.num_threads,
        args.compare_torch_dynamic,
        args.compare_onnx_fp32,
    )
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if args.output_json:
        write_json_atomic(args.output_json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
