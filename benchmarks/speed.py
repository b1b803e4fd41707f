"""Speed: matrix-multiply peak, training throughput (with MFU) and generation throughput, CharGPT vs the GPT-2 peer.

Every comparison runs both models in the same process, interleaved (A B A B ...), and reports medians over
repetitions after warm-up plus the median of the per-round ratios (see common.interleaved_times).
"""

import contextlib
import copy
import logging
import time

import torch
import torch.nn.functional as F
from transformers import CompileConfig, GenerationConfig

from .common import best_ratio, interleaved_times, median, paired_ratio
from .peers import ModelDims, build_causal_lms, dims_from_args, parameter_count


logger = logging.getLogger(__name__)

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def matmul_peak(dtype: torch.dtype, shapes=((1024, 1024, 1024), (2048, 256, 1024), (4096, 1024, 256)), reps: int = 7):
    """Best measured matrix-multiply rate in GFLOP/s for `dtype`, over a few shapes (M, K, N).

    Both `torch.mm` and `F.linear` are tried because on some CPUs they reach different kernels (oneDNN vs MKL); the
    best of all is this machine's peak for MFU. Returns {"gflops": best, "by_shape": {...}}.
    """
    by_shape = {}
    for m, k, n in shapes:
        a = torch.randn(m, k).to(dtype)
        b = torch.randn(k, n).to(dtype)
        w = b.t().contiguous()  # F.linear takes the weight as (N, K)
        for op_name, op in (("mm", lambda a=a, b=b: torch.mm(a, b)), ("linear", lambda a=a, w=w: F.linear(a, w))):
            op()  # warm-up: first call allocates and picks a kernel
            times = []
            for _ in range(reps):
                start = time.perf_counter()
                op()
                times.append(time.perf_counter() - start)
            # The fastest repetition, not the median: a peak is what the machine can do, and on a shared machine
            # slower repetitions measure the neighbours.
            by_shape[f"{op_name} {m}x{k}x{n}"] = 2 * m * k * n / min(times) / 1e9
    return {"gflops": max(by_shape.values()), "by_shape": by_shape}


def train_flops_per_token(model: torch.nn.Module, dims: ModelDims, seq_len: int) -> float:
    """Model FLOPs per trained token: 6 x (matmul parameters) + 12 x n_layer x n_embd x seq_len (attention scores and
    values, forward and backward, the PaLM appendix B count). Position embeddings do no matmul and are left out; the
    tied token embedding counts once, as the LM head's matmul."""
    matmul_params = parameter_count(model) - dims.n_positions * dims.n_embd
    return 6 * matmul_params + 12 * dims.n_layer * dims.n_embd * seq_len


def precision_context(precision: str):
    """bf16 autocast for "bf16", nothing for "fp32"."""
    dtype = PRECISIONS[precision]
    return torch.autocast("cpu", dtype=dtype) if dtype is not None else contextlib.nullcontext()


def _train_closure(model, batch, precision: str, steps: int):
    """`steps` optimiser steps of `model` on one fixed batch: forward (autocast), backward, AdamW step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def run():
        for _ in range(steps):
            with precision_context(precision):
                loss = model(input_ids=batch, labels=batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    return run


def training_throughput(
    dims: ModelDims,
    batch_size: int,
    seq_len: int,
    precision: str,
    compile_model: bool,
    peak_gflops: float,
    repetitions: int = 5,
    steps_per_rep: int = 2,
    seed: int = 0,
    chargpt_overrides: dict | None = None,
) -> dict:
    """Tokens/s of both models training on the same random batch with the same optimiser, interleaved.
    `chargpt_overrides` changes CharGPT's config alone (probes of proposed defaults; not a like-for-like run)."""
    models = build_causal_lms(dims, seed=seed, chargpt_overrides=chargpt_overrides)
    generator = torch.Generator().manual_seed(seed)
    batch = torch.randint(5, dims.vocab_size, (batch_size, seq_len), generator=generator)
    fns, compile_seconds = {}, {}
    for name, model in models.items():
        model.train()
        runner = torch.compile(model) if compile_model else model
        fns[name] = _train_closure(runner, batch, precision, steps_per_rep)
        # The first call compiles (when asked) and warms allocator and kernels; it is timed apart.
        start = time.perf_counter()
        fns[name]()
        compile_seconds[name] = time.perf_counter() - start
    times = interleaved_times(fns, repetitions, warmup=0)
    tokens = batch_size * seq_len * steps_per_rep
    flops_per_token = train_flops_per_token(models["chargpt"], dims, seq_len)
    result = {
        "batch_size": batch_size,
        "seq_len": seq_len,
        "precision": precision,
        "compile": compile_model,
        "repetitions": repetitions,
        "steps_per_rep": steps_per_rep,
        "first_call_seconds": compile_seconds,
        "flops_per_token": flops_per_token,
        "peak_gflops": peak_gflops,
        "chargpt_overrides": chargpt_overrides or {},
        "ratio": paired_ratio(times["chargpt"], times["gpt2"]),
        "ratio_best": best_ratio(times["chargpt"], times["gpt2"]),
    }
    for name, t in times.items():
        tokens_per_s = tokens / median(t)
        result[name] = {
            "tokens_per_s": tokens_per_s,
            "best_tokens_per_s": tokens / min(t),
            "times_s": t,
            "mfu": tokens_per_s * flops_per_token / (peak_gflops * 1e9) if peak_gflops else None,
        }
    return result


def generation_config(new_tokens: int, sample: bool) -> GenerationConfig:
    """Exactly `new_tokens` tokens (min = max), greedy or top-p 0.9 / temperature 0.7 sampling, KV cache on."""
    return GenerationConfig(
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=sample,
        temperature=0.7 if sample else None,
        top_p=0.9 if sample else None,
        top_k=0 if sample else None,
        use_cache=True,
        pad_token_id=0,
        eos_token_id=4,
        bos_token_id=3,
    )


def generate_closure(model, prompt: torch.Tensor, config: GenerationConfig):
    mask = torch.ones_like(prompt)

    def run():
        with torch.inference_mode():
            out = model.generate(input_ids=prompt, attention_mask=mask, generation_config=config)
        if out.shape[1] != prompt.shape[1] + config.max_new_tokens:
            raise RuntimeError(
                f"generate returned {out.shape[1] - prompt.shape[1]} new tokens, not {config.max_new_tokens}"
            )

    return run


class StaticCacheGenerate:
    """A contender that decodes with CharGPT's `generate(cache_implementation="static")`, the forward compiled by
    transformers' own generate-time compilation (which by default only compiles on accelerators; `compile=True` turns
    it on for the CPU too). The same model and weights as the plain contender: this measures the decode path."""

    def __init__(self, model, compile: bool = True):
        self.model, self.compile = model, compile

    def eval(self):
        self.model.eval()
        return self

    def generate(self, generation_config: GenerationConfig, **kwargs):
        config = copy.deepcopy(generation_config)
        config.cache_implementation = "static"
        if self.compile:
            config.compile_config = CompileConfig(fullgraph=False, dynamic=False, mode="default")
            config.compile_config._compile_all_devices = True
        else:
            config.disable_compile = True
        return self.model.generate(generation_config=config, **kwargs)


def generation_throughput(
    contenders: dict,
    vocab_size: int,
    batch_size: int,
    sample: bool,
    speedups: list[tuple[str, str]],
    new_tokens: int = 128,
    prompt_len: int = 16,
    repetitions: int = 5,
    seed: int = 0,
) -> dict:
    """New tokens/s of each contender (name -> model with .generate), interleaved. `speedups` lists (candidate,
    baseline) pairs; each gets the median per-round speed-up of candidate over baseline (> 1: candidate faster)."""
    generator = torch.Generator().manual_seed(seed)
    prompt = torch.randint(5, vocab_size, (batch_size, prompt_len), generator=generator)
    config = generation_config(new_tokens, sample)
    fns = {}
    for name, model in contenders.items():
        model.eval()
        fns[name] = generate_closure(model, prompt, config)
    times = interleaved_times(fns, repetitions, warmup=1)
    result = {
        "batch_size": batch_size,
        "new_tokens": new_tokens,
        "prompt_len": prompt_len,
        "sample": sample,
        "repetitions": repetitions,
    }
    for name, t in times.items():
        result[name] = {
            "tokens_per_s": batch_size * new_tokens / median(t),
            "best_tokens_per_s": batch_size * new_tokens / min(t),
            "times_s": t,
        }
    result["speedups"] = {f"{a}/{b}": paired_ratio(times[a], times[b]) for a, b in speedups}
    result["speedups_best"] = {f"{a}/{b}": best_ratio(times[a], times[b]) for a, b in speedups}
    return result


def profile_top_ops(fn, rows: int = 12) -> list[dict]:
    """Run `fn` once under torch.profiler and return the ops with the most self CPU time (name, ms, share)."""
    from torch.profiler import ProfilerActivity, profile

    fn()  # warm-up outside the profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    return [
        {"op": e.key, "self_ms": e.self_cpu_time_total / 1e3, "share": e.self_cpu_time_total / total, "calls": e.count}
        for e in events[:rows]
    ]


def gpu_half_generation(dims: ModelDims, batch_sizes, new_tokens: int, repetitions: int) -> dict:
    """fp16 generation on a CUDA device, both models interleaved; recorded as not run where no GPU exists."""
    if not torch.cuda.is_available():
        return {"status": "not run", "reason": "no CUDA device on this machine"}
    models = {name: m.half().cuda().eval() for name, m in build_causal_lms(dims).items()}
    runs = []
    for batch_size in batch_sizes:
        prompt = torch.randint(5, dims.vocab_size, (batch_size, 16), device="cuda")
        config = generation_config(new_tokens, sample=False)
        fns = {}
        for name, model in models.items():
            inner = generate_closure(model, prompt, config)

            def timed(inner=inner):
                inner()
                torch.cuda.synchronize()

            fns[name] = timed
        times = interleaved_times(fns, repetitions, warmup=1)
        runs.append(
            {
                "batch_size": batch_size,
                **{
                    name: {"tokens_per_s": batch_size * new_tokens / median(t), "times_s": t}
                    for name, t in times.items()
                },
                "ratio": paired_ratio(times["chargpt"], times["gpt2"]),
            }
        )
    return {"status": "run", "device": torch.cuda.get_device_name(0), "runs": runs}


def run_speed(args, work_dir: str, save=lambda partial: None) -> dict:
    """The whole speed section. Cheap, decisive measurements first (fp32 eager training, generation, profiles), then
    the slow ones (compiled and bf16 training); `save(result)` is called after each step with the results so far."""
    dims = dims_from_args(args, args.speed_vocab_size)
    precisions = [p.strip() for p in args.train_precisions.split(",") if p.strip()]
    modes = [m.strip() for m in args.train_compile.split(",") if m.strip()]
    result = {"dims": vars(dims), "matmul_peak": {}, "training": [], "probes": []}
    for precision in precisions:
        # bf16 matmuls can be very slow where the CPU lacks bf16 instructions: fewer repetitions there.
        reps = 7 if precision == "fp32" else 3
        result["matmul_peak"][precision] = matmul_peak(PRECISIONS[precision] or torch.float32, reps=reps)
        logger.info("matmul peak %s: %.1f GFLOP/s", precision, result["matmul_peak"][precision]["gflops"])
    configs = [(p, m, shape) for p in precisions for m in modes for shape in args.shapes()]
    configs.sort(key=lambda c: (c[0] != "fp32", c[1] != "eager"))  # fp32 eager first: it decides most
    first_slow = next((i for i, c in enumerate(configs) if c[:2] != ("fp32", "eager")), len(configs))
    for config in configs[:first_slow]:
        result["training"].append(_training_config(args, dims, result["matmul_peak"], *config))
        save(result)
    if args.matched_dropout_probe:
        # Like-for-like implementation check: CharGPT with GPT-2's attention dropout, so both do the same work.
        batch_size, seq_len = args.shapes()[-1]
        peak = result["matmul_peak"].get("fp32", {}).get("gflops")
        result["probes"].append(
            training_throughput(
                dims,
                batch_size,
                seq_len,
                "fp32",
                False,
                peak,
                repetitions=args.train_repetitions,
                steps_per_rep=args.train_steps_per_rep,
                seed=args.seed,
                chargpt_overrides={"attn_pdrop": dims.dropout},
            )
        )
        logger.info("probe CharGPT attn_pdrop=%s: ratio %.2f", dims.dropout, result["probes"][-1]["ratio"])
    models = _generation_section(args, dims, work_dir, result)
    result["gpu_half_generation"] = gpu_half_generation(
        dims, args.generation_batch_sizes(), args.generation_new_tokens, args.generation_repetitions
    )
    if args.profile:
        result["profiles"] = _profiles(models, dims, args.seed)
    save(result)
    for config in configs[first_slow:]:
        result["training"].append(_training_config(args, dims, result["matmul_peak"], *config))
        save(result)
    return result


def _training_config(args, dims: ModelDims, peaks: dict, precision: str, mode: str, shape: tuple) -> dict:
    """One training comparison, or a record saying why it was skipped or failed (shown in the report)."""
    batch_size, seq_len = shape
    settings = {"batch_size": batch_size, "seq_len": seq_len, "precision": precision, "compile": mode == "compile"}
    bf16 = precision == "bf16"
    fp32_peak = peaks.get("fp32", {}).get("gflops")
    slow_bf16 = bf16 and fp32_peak and peaks["bf16"]["gflops"] < 0.25 * fp32_peak
    if slow_bf16 and args.bf16_policy == "auto" and shape != args.shapes()[0]:
        # Without bf16 matrix instructions (AVX512-BF16 / AMX) bf16 is emulated and many times slower than fp32;
        # one shape shows the ratio without spending the run's hour on it.
        return {
            **settings,
            "status": "skipped",
            "reason": f"bf16 matmul peak {peaks['bf16']['gflops']:.1f} GFLOP/s is under a quarter of fp32's "
            f"{fp32_peak:.1f} (no native bf16 on this CPU); measured at the first shape only "
            f"(--bf16_policy all to run every shape)",
        }
    try:
        record = training_throughput(
            dims,
            batch_size,
            seq_len,
            precision,
            mode == "compile",
            peaks[precision]["gflops"],
            repetitions=args.bf16_repetitions if bf16 else args.train_repetitions,
            steps_per_rep=args.bf16_steps_per_rep if bf16 else args.train_steps_per_rep,
            seed=args.seed,
        )
    except Exception as err:  # e.g. no C++ compiler for torch.compile: recorded and shown in the report
        logger.exception("training config %s failed", settings)
        return {**settings, "status": "failed", "error": f"{type(err).__name__}: {err}"[:500]}
    logger.info(
        "train %s: chargpt %.0f tok/s, gpt2 %.0f tok/s, ratio %.2f",
        settings,
        record["chargpt"]["tokens_per_s"],
        record["gpt2"]["tokens_per_s"],
        record["ratio"],
    )
    return record


def _generation_section(args, dims: ModelDims, work_dir: str, result: dict) -> dict:
    """Generation runs of CharGPT fp32, GPT-2 and (when available) the int8 export; returns the fp32 models."""
    from .int8 import export_and_load, int8_unavailable_reason, placeholder_tokenizer

    models = build_causal_lms(dims, seed=args.seed)
    contenders, speedups = dict(models), [("chargpt", "gpt2")]
    result["int8_export"] = {"status": "not run", "reason": int8_unavailable_reason()}
    if result["int8_export"]["reason"] is None:
        tokenizer = placeholder_tokenizer(dims.vocab_size, dims.n_positions)
        int8_model, sizes = export_and_load(models["chargpt"], tokenizer, f"{work_dir}/speed_int8", args.threads)
        contenders["chargpt-int8"] = int8_model
        speedups.append(("chargpt-int8", "chargpt"))
        result["int8_export"] = {"status": "run", **sizes}
    result["generation"] = []
    for batch_size in args.generation_batch_sizes():
        for sample in (False, True):
            runs, pairs = dict(contenders), list(speedups)
            if batch_size == 1 and args.generation_static_compiled:
                # Batch 1 is where per-step overhead dominates: also time the static-cache, compiled decode path.
                runs["chargpt-static-compiled"] = StaticCacheGenerate(models["chargpt"])
                pairs += [("chargpt-static-compiled", "gpt2"), ("chargpt-static-compiled", "chargpt")]
            record = generation_throughput(
                runs,
                dims.vocab_size,
                batch_size,
                sample,
                pairs,
                new_tokens=args.generation_new_tokens,
                repetitions=args.generation_repetitions,
                seed=args.seed,
            )
            result["generation"].append(record)
            logger.info(
                "generate batch %d %s: %s",
                batch_size,
                "sample" if sample else "greedy",
                {k: round(v, 2) for k, v in record["speedups"].items()},
            )
    return models


def _profiles(models: dict, dims: ModelDims, seed: int) -> dict:
    """Where the time goes: top ops of one fp32 training step (16 x 256) and one batch-1 generation (32 tokens)."""
    generator = torch.Generator().manual_seed(seed)
    batch = torch.randint(5, dims.vocab_size, (16, min(256, dims.n_positions)), generator=generator)
    prompt = torch.randint(5, dims.vocab_size, (1, 16), generator=generator)
    profiles = {}
    for name, model in models.items():
        model.train()
        profiles[f"train_16x256_{name}"] = profile_top_ops(_train_closure(model, batch, "fp32", 1))
        model.eval()
        profiles[f"generate_b1_{name}"] = profile_top_ops(generate_closure(model, prompt, generation_config(32, False)))
    return profiles
