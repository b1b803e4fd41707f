"""Peak memory of training and generation, one fresh subprocess per measurement.

Method: tracemalloc sees only Python allocations, not torch's tensor memory, so it is useless here. Instead each
measurement runs in its own Python process (so one measurement's peak cannot hide another's). After imports, model
build and input creation the worker resets the kernel's peak-RSS counter (writing 5 to /proc/self/clear_refs, Linux)
and records the current RSS as the baseline; after the work it reads the peak (VmHWM in /proc/self/status, which is
what `getrusage(RUSAGE_SELF).ru_maxrss` reports). The increase is the memory the training steps (activations,
gradients, AdamW state) or the generation (KV cache, logits) needed on top of the weights and the interpreter.
Where the counter cannot be reset, ru_maxrss alone is used and the increase is relative to the peak so far.

Run as a module: `python -m benchmarks.memory --model chargpt --task train --batch_size 16 --seq_len 256`; it prints
one JSON line. `measure(...)` starts such a worker and parses its line.
"""

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
from pathlib import Path


logger = logging.getLogger(__name__)

METHOD = (
    "One fresh Python process per measurement. After imports, model build and input creation the peak-RSS counter "
    "is reset (/proc/self/clear_refs) and the current RSS taken as the baseline; after the work the peak (VmHWM, "
    "the figure getrusage's ru_maxrss reports) is read. 'peak' is the whole process (interpreter, torch, weights); "
    "'increase' is what two training steps (activations, gradients, AdamW state) or one generate() call (KV cache, "
    "logits) added. tracemalloc is not used: it does not see torch's tensor memory."
)


def _status_mib(field: str) -> float | None:
    """A memory field of /proc/self/status (VmRSS, VmHWM) in MiB, or None off Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # reported in kB
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the peak-RSS counter so that the next peak belongs to the measured work alone."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_mib() -> float:
    hwm = _status_mib("VmHWM")
    # Linux reports ru_maxrss in KiB.
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _worker(args: argparse.Namespace) -> dict:
    import torch

    from .peers import ModelDims, build_causal_lms
    from .speed import generation_config, precision_context

    torch.set_num_threads(args.threads)
    dims = ModelDims(
        vocab_size=args.vocab_size,
        n_embd=args.n_embd,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_inner=args.n_inner,
        n_positions=args.n_positions,
        dropout=args.dropout,
        chargpt_attn_pdrop=args.chargpt_attn_pdrop,
    )
    if args.model == "chargpt-int8":
        from chargpt.int8 import load_int8

        if not args.int8_dir:
            raise ValueError("--model chargpt-int8 needs --int8_dir, an export written by chargpt.int8.")
        model = load_int8(args.int8_dir, num_threads=args.threads)
    else:
        model = build_causal_lms(dims)[args.model]
    batch = torch.randint(5, dims.vocab_size, (args.batch_size, args.seq_len))
    import gc

    gc.collect()
    reset = _reset_peak()
    baseline = _status_mib("VmRSS") if reset else _peak_mib()
    if args.task == "train":
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        for _ in range(args.steps):  # two steps: the second one has AdamW's state allocated
            with precision_context(args.precision):
                loss = model(input_ids=batch, labels=batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    else:
        model.eval()
        with torch.inference_mode():
            model.generate(
                input_ids=batch,
                attention_mask=torch.ones_like(batch),
                generation_config=generation_config(args.new_tokens, sample=False),
            )
    peak = _peak_mib()
    return {"baseline_mib": baseline, "peak_mib": peak, "increase_mib": peak - baseline, "peak_reset": reset}


def measure(
    model: str,
    task: str,
    dims,
    batch_size: int,
    seq_len: int,
    precision: str = "fp32",
    new_tokens: int = 128,
    threads: int = 2,
    int8_dir: str | None = None,
    timeout: float = 900,
) -> dict:
    """Run one measurement in a fresh interpreter and return its numbers with the settings that produced them."""
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.memory",
        "--model",
        model,
        "--task",
        task,
        "--batch_size",
        str(batch_size),
        "--seq_len",
        str(seq_len),
        "--precision",
        precision,
        "--new_tokens",
        str(new_tokens),
        "--threads",
        str(threads),
        "--vocab_size",
        str(dims.vocab_size),
        "--n_embd",
        str(dims.n_embd),
        "--n_layer",
        str(dims.n_layer),
        "--n_head",
        str(dims.n_head),
        "--n_inner",
        str(dims.n_inner),
        "--n_positions",
        str(dims.n_positions),
        "--dropout",
        str(dims.dropout),
    ] + (["--int8_dir", int8_dir] if int8_dir else [])
    if dims.chargpt_attn_pdrop is not None:
        cmd += ["--chargpt_attn_pdrop", str(dims.chargpt_attn_pdrop)]
    repo_root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo_root), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=repo_root, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"memory worker failed ({' '.join(cmd)}):\n{proc.stderr[-3000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"memory worker printed no JSON line; stdout was:\n{proc.stdout[-2000:]}")
    record = json.loads(lines[-1])
    settings = {"model": model, "task": task, "batch_size": batch_size, "precision": precision}
    settings["seq_len" if task == "train" else "prompt_len"] = seq_len
    if task == "generate":
        settings["new_tokens"] = new_tokens
    return {**settings, **record}


def run_memory(args, work_dir: str, save=lambda partial: None) -> dict:
    """Training (fp32, each training shape) and generation (each batch size) peaks of both models, and of the int8
    export's generation when it is available; one subprocess each, run one after another. The int8 export is written
    here first, so that the worker only loads it (exporting runs a check generation that would warm its memory)."""
    from .int8 import export_and_load, int8_unavailable_reason, placeholder_tokenizer
    from .peers import build_causal_lms, dims_from_args

    dims = dims_from_args(args, args.speed_vocab_size)
    runs = []
    generators, int8_dir = ["chargpt", "gpt2"], None
    if int8_unavailable_reason() is None:
        export_and_load(
            build_causal_lms(dims, seed=args.seed)["chargpt"],
            placeholder_tokenizer(dims.vocab_size, dims.n_positions),
            f"{work_dir}/memory_int8",
        )
        generators, int8_dir = generators + ["chargpt-int8"], f"{work_dir}/memory_int8/int8"
    for batch_size, seq_len in args.shapes():
        for model in ("chargpt", "gpt2"):
            runs.append(measure(model, "train", dims, batch_size, seq_len, threads=args.threads))
            logger.info("memory %s", runs[-1])
            save({"method": METHOD, "runs": runs})
    for batch_size in args.generation_batch_sizes():
        for model in generators:
            runs.append(
                measure(
                    model,
                    "generate",
                    dims,
                    batch_size,
                    16,
                    new_tokens=args.generation_new_tokens,
                    threads=args.threads,
                    int8_dir=int8_dir if model == "chargpt-int8" else None,
                )
            )
            logger.info("memory %s", runs[-1])
            save({"method": METHOD, "runs": runs})
    return {"method": METHOD, "runs": runs, "int8": int8_unavailable_reason() or "measured"}


def _parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="One peak-memory measurement (prints a JSON line).")
    parser.add_argument("--model", choices=["chargpt", "gpt2", "chargpt-int8"], required=True)
    parser.add_argument("--task", choices=["train", "generate"], required=True)
    parser.add_argument("--batch_size", type=int, required=True)
    parser.add_argument("--seq_len", type=int, required=True, help="training length, or prompt length to generate")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--new_tokens", type=int, default=128)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--vocab_size", type=int, default=6000)
    parser.add_argument("--n_embd", type=int, default=256)
    parser.add_argument("--n_layer", type=int, default=6)
    parser.add_argument("--n_head", type=int, default=8)
    parser.add_argument("--n_inner", type=int, default=1024)
    parser.add_argument("--n_positions", type=int, default=512)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--chargpt_attn_pdrop", type=float, default=None)
    parser.add_argument("--int8_dir", default=None, help="the int8 export to load for --model chargpt-int8")
    return parser.parse_args(argv)


if __name__ == "__main__":
    print(json.dumps(_worker(_parse())))
