#!/usr/bin/env python
"""GPU checks for CharGPT, run by a person on a machine with a CUDA GPU (a few minutes):

    python benchmarks/gpu_check.py                      # all checks
    python benchmarks/gpu_check.py --only c,d --output_json gpu_check.json

  a. fp16 / bf16 mixed-precision training with transformers' Trainer: the loss is finite and falls.
  b. train_scripts/train_lm.py under `accelerate launch` with the shipped configs (fp16, bf16, FSDP on one GPU, and
     DeepSpeed ZeRO-2 when deepspeed is installed): exit code 0, a finite eval loss, a loadable model directory.
  c. fp16 / bf16 inference against fp32 (same weights): forward logits agree, greedy generation starts the same.
  d. Attention kernels (eager, sdpa, flex_attention, flash_attention_2 when flash_attn is installed) agree on a
     left-padded batch.

Every check prints a PASS / FAIL / SKIP line as it finishes, then a summary table. Exit status: 0 when nothing
failed, 1 when a check failed, 2 when there is no CUDA GPU (nothing is checked) or an argument is wrong. The helpers
take the device and dtype as arguments, so tests can run them on CPU in fp32; the script itself insists on a GPU.
"""

import argparse
import copy
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


if __package__ in (None, ""):
    # Run as a script (python benchmarks/gpu_check.py): make the repository root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from chargpt import CharGPTConfig, CharGPTForCausalLM, CharGPTTokenizer  # noqa: E402


REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "train_scripts" / "accelerate_configs"
# Model size of the train_lm.py runs in check b, in one place: adjust it here if train_lm.py's size flags change.
TRAIN_LM_SIZE = "n_embd=64,n_layer=2,n_head=4,n_positions=64"
# The in-process model of checks a, c and d: small enough for seconds, big enough for real GPU kernels.
MODEL_SIZE = dict(n_embd=256, n_layer=4, n_head=8, n_inner=1024, n_positions=128)
SENTENCES = [
    "今天天气很好,我们去公园散步吧。",
    "这本书讲的是一个很有意思的故事。",
    "周末你有什么安排?打算在家看电影。",
    "下午三点在图书馆门口见面,不见不散。",
    "他每天早上六点起床,先跑步再吃早饭。",
    "这家饭店的菜很好吃,服务也很热情。",
    "明天可能会下雨,出门记得带伞。",
    "我们一起学习中文,每天进步一点点。",
]
PROMPTS = ["今天天气", "这本书讲的", "周末你有什么安排", "我们"]
# Largest logits difference accepted, relative to the fp32 logits' largest magnitude. Half precision rounds every
# matmul input (fp16: 11-bit, bf16: 8-bit mantissa), so bf16 gets the looser bound.
RELATIVE_TOLERANCE = {torch.float16: 1e-2, torch.bfloat16: 5e-2, torch.float32: 1e-4}
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


# ----------------------------------------------------------------------------------------------------------------------
# Shared pieces


def tokenizer() -> CharGPTTokenizer:
    return CharGPTTokenizer.from_texts(SENTENCES, model_max_length=MODEL_SIZE["n_positions"])


def random_model(tok: CharGPTTokenizer, seed: int = 0, new_tokens: int = 16) -> CharGPTForCausalLM:
    """A fixed-seed random CharGPT in fp32, eval mode, dropout off (so runs differ only by numerics), generating
    exactly `new_tokens` greedy tokens (min_new_tokens holds back end-of-turn, so all runs have one length)."""
    from transformers import GenerationConfig

    torch.manual_seed(seed)
    config = CharGPTConfig(vocab_size=len(tok), resid_pdrop=0.0, embd_pdrop=0.0, **MODEL_SIZE)
    model = CharGPTForCausalLM(config).eval()
    model.generation_config = GenerationConfig(
        do_sample=False, max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=config.pad_token_id,
        eos_token_id=model.generation_config.eos_token_id,
    )  # fmt: skip
    return model


def relative_gap(reference: torch.Tensor, other: torch.Tensor) -> float:
    """Largest absolute difference over the reference's largest magnitude (logits have no fixed scale)."""
    reference, other = reference.float(), other.float()
    return ((reference - other).abs().max() / reference.abs().max().clamp(min=1e-6)).item()


def left_padded_batch(tok: CharGPTTokenizer, device) -> dict:
    """Prompts of different lengths, padded on the left as for batched generation."""
    tok.padding_side = "left"
    return tok(PROMPTS, padding=True, return_tensors="pt").to(device)


def verdict(ok: bool, detail: str) -> tuple[str, str]:
    return ("PASS" if ok else "FAIL"), detail


def bf16_unsupported(dtype: torch.dtype | None, device: str) -> tuple[str, str] | None:
    """A SKIP result where bf16 is asked of a GPU without it (before Ampere), else None."""
    if dtype == torch.bfloat16 and device == "cuda" and not torch.cuda.is_bf16_supported():
        return "SKIP", "torch.cuda.is_bf16_supported() is False on this GPU (bf16 needs Ampere or newer)"
    return None


# ----------------------------------------------------------------------------------------------------------------------
# a. Mixed-precision training with Trainer


def lm_blocks(tok: CharGPTTokenizer, block: int = 64, repeats: int = 100) -> list[dict]:
    """The sentences repeated and cut into fixed-length blocks: a corpus a small model learns within steps."""
    stream = [i for _ in range(repeats) for s in SENTENCES for i in tok(s)["input_ids"]]
    starts = range(0, len(stream) - block, block)
    return [{"input_ids": stream[k : k + block], "labels": stream[k : k + block]} for k in starts]


def check_trainer(precision: str, device: str = "cuda", max_steps: int = 40) -> tuple[str, str]:
    """A few dozen Trainer steps with fp16=True (autocast + loss scaling) or bf16=True: finite, falling loss."""
    from transformers import Trainer, TrainingArguments

    if skip := bf16_unsupported(DTYPES.get(precision), device):
        return skip
    tok = tokenizer()
    model = random_model(tok).train()
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, max_steps=max_steps, per_device_train_batch_size=16, learning_rate=1e-3, logging_steps=5,
            save_strategy="no", report_to="none", seed=0, disable_tqdm=True, use_cpu=device == "cpu",
            fp16=precision == "fp16", bf16=precision == "bf16",
        )  # fmt: skip
        trainer = Trainer(model=model, args=args, train_dataset=lm_blocks(tok))
        trainer.train()
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    finite = all(math.isfinite(x) for x in losses)
    return verdict(finite and len(losses) >= 2 and losses[-1] < losses[0], f"loss {losses[0]:.3f} -> {losses[-1]:.3f}")


# ----------------------------------------------------------------------------------------------------------------------
# b. train_lm.py under accelerate launch with the shipped configs


def check_corpus(root: Path) -> tuple[str, str]:
    """A small LCCC-style dialogue file and a tokenizer built from it by build_vocab.py (as a user would); the
    launches below train on them."""
    pairs = [f"{SENTENCES[i % 8]}{i}\t{SENTENCES[(i * 3 + 1) % 8]}{i % 7}" for i in range(160)]
    (root / "pairs.txt").write_text("\n".join(pairs) + "\n", encoding="utf-8")
    run([sys.executable, str(REPO / "train_scripts" / "build_vocab.py"), "--output_dir", "tok",
         "--dialogue_files", "pairs.txt"], root)  # fmt: skip
    return verdict((root / "tok" / "vocab.json").is_file(), f"{len(pairs)} dialogues, tokenizer in {root / 'tok'}")


def run(cmd: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        tail = (result.stdout[-1500:] + "\n" + result.stderr[-3000:]).strip()
        raise RuntimeError(f"{' '.join(cmd[:6])} ... exited {result.returncode}:\n{tail}")
    return result


def check_launch(config: str, root: Path, launch_args: tuple = ()) -> tuple[str, str]:
    """`accelerate launch --config_file CONFIG [launch_args] train_lm.py` with a tiny model: exit code 0 (run()
    raises otherwise), a finite eval loss, and a final directory that loads as an ordinary model."""
    out = root / f"out-{config}"
    # Muon (train_lm.py's default optimizer) does not run under FSDP or DeepSpeed, which shard optimizer states
    optimizer = ("--optim", "adamw_torch_fused") if config.startswith(("fsdp", "deepspeed")) else ()
    run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / f"{config}.yaml"),
         "--main_process_port", str(free_port()), *launch_args, str(REPO / "train_scripts" / "train_lm.py"),
         "--tokenizer_name_or_path", "tok", "--train_files", "pairs.txt", "--config_overrides", TRAIN_LM_SIZE,
         "--max_steps", "20", "--per_device_train_batch_size", "8", "--logging_steps", "5", "--seed", "0",
         "--validation_split_size", "0.1", "--test_split_size", "0", "--eval_strategy", "no",
         "--save_strategy", "no", "--load_best_model_at_end", "false", "--report_to", "none",
         *optimizer, "--output_dir", str(out)], root)  # fmt: skip
    eval_loss = json.loads((out / "eval_results.json").read_text())["eval_loss"]
    CharGPTForCausalLM.from_pretrained(out)  # FSDP/DeepSpeed saves must still be plain safetensors directories
    return verdict(math.isfinite(eval_loss), f"eval_loss {eval_loss:.3f}, model directory loads")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------------------------------------------------
# c. Half-precision inference against fp32


def greedy(model, tok, prompt: str) -> torch.Tensor:
    """The new tokens of the model's (greedy, fixed-length) generation config for one prompt."""
    inputs = tok(prompt, return_tensors="pt").to(model.device)
    with torch.no_grad():
        return model.generate(**inputs)[0, inputs["input_ids"].shape[1] :]


def check_half_inference(dtype: torch.dtype, device: str = "cuda") -> tuple[str, str]:
    """The same random weights in fp32 and in `dtype`: forward logits within RELATIVE_TOLERANCE, and the first
    greedy token equal, except where fp32 itself ranks the two tokens closer than that tolerance (a random model's
    logits are nearly flat, so a rounding-level tie may legitimately go either way)."""
    if skip := bf16_unsupported(dtype, device):
        return skip
    tok = tokenizer()
    full = random_model(tok).to(device)
    half = copy.deepcopy(full).to(dtype)
    batch = left_padded_batch(tok, device)
    with torch.no_grad():
        ref, low = full(**batch).logits, half(**batch).logits
    real = batch["attention_mask"].bool()
    gap, tol = relative_gap(ref[real], low[real]), RELATIVE_TOLERANCE[dtype]
    same = total = first_ok = 0
    for prompt in PROMPTS:
        a, b = greedy(full, tok, prompt), greedy(half, tok, prompt)
        same, total = same + (a == b).sum().item(), total + len(a)
        with torch.no_grad():
            first_logits = full(**tok(prompt, return_tensors="pt").to(device)).logits[0, -1]
        margin = (first_logits[a[0]] - first_logits[b[0]]) / first_logits.abs().max()
        first_ok += bool(a[0] == b[0] or margin.item() <= tol)
    detail = f"logits gap {gap:.2e} (tol {tol:.0e}), same tokens {same}/{total}, first {first_ok}/{len(PROMPTS)}"
    return verdict(gap <= tol and first_ok == len(PROMPTS), detail)


# ----------------------------------------------------------------------------------------------------------------------
# d. Attention kernels agree


def check_attention(dtype: torch.dtype, implementation: str, device: str = "cuda") -> tuple[str, str]:
    """Logits of `implementation` against eager attention, same weights and dtype, on a left-padded batch; only
    real-token positions count (padding rows are undefined: some kernels give NaN for fully masked queries)."""
    if implementation == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        return "SKIP", "flash_attn is not installed (pip install flash-attn)"
    if skip := bf16_unsupported(dtype, device):
        return skip
    tok = tokenizer()
    model = random_model(tok).to(device=device, dtype=dtype)
    batch = left_padded_batch(tok, device)
    real = batch["attention_mask"].bool()
    logits = {}
    for name in ("eager", implementation):
        model.set_attn_implementation(name)
        with torch.no_grad():
            logits[name] = model(**batch).logits[real]
    gap, tol = relative_gap(logits["eager"], logits[implementation]), RELATIVE_TOLERANCE[dtype]
    finite = torch.isfinite(logits[implementation]).all().item()
    return verdict(finite and gap <= tol, f"vs eager: gap {gap:.2e} (tol {tol:.0e}){'' if finite else ', NOT FINITE'}")


# ----------------------------------------------------------------------------------------------------------------------
# Running, reporting


def planned_checks(only: set[str], work: Path) -> list[tuple[str, str, Callable]]:
    """(check letter, name, zero-argument function) for the selected checks, in order."""
    plan = [("a", f"Trainer {p}", lambda p=p: check_trainer(p)) for p in DTYPES]
    plan.append(("b", "build_vocab.py corpus", lambda: check_corpus(work)))
    one_gpu = ("--num_processes", "1")  # FSDP and ZeRO on one GPU: a smoke test any GPU machine can run
    for config, extra in (("fp16", ()), ("bf16", ()), ("fsdp", one_gpu), ("deepspeed_zero2", one_gpu)):
        plan.append(("b", f"launch {config}.yaml", lambda c=config, e=extra: launch_or_skip(c, work, e)))
    plan += [("c", f"{d} vs fp32 inference", lambda d=d: check_half_inference(DTYPES[d])) for d in DTYPES]
    for d in DTYPES:
        for impl in ("sdpa", "flash_attention_2", "flex_attention"):
            plan.append(("d", f"{impl} {d}", lambda d=d, i=impl: check_attention(DTYPES[d], i)))
    return [step for step in plan if step[0] in only]


def launch_or_skip(config: str, work: Path, extra: tuple) -> tuple[str, str]:
    """Skip what this machine cannot run (the bf16 configs before Ampere; DeepSpeed not installed); else
    check_launch."""
    if config != "fp16" and (skip := bf16_unsupported(torch.bfloat16, "cuda")):
        return skip
    if config.startswith("deepspeed") and importlib.util.find_spec("deepspeed") is None:
        return "SKIP", "deepspeed is not installed (pip install deepspeed)"
    if not (work / "tok").is_dir():
        return "SKIP", "no tokenizer: the corpus step failed"
    return check_launch(config, work, extra)


def run_step(check: str, name: str, fn) -> dict:
    """Run one check, timing it; an exception is a FAIL carrying the error (the other checks still run)."""
    start = time.perf_counter()
    try:
        status, detail = fn()
    except Exception as error:  # a check's crash is its result, not the end of the script
        status, detail = "FAIL", f"{type(error).__name__}: {error}"
    row = {"check": check, "name": name, "status": status, "seconds": round(time.perf_counter() - start, 1),
           "detail": detail}  # fmt: skip
    print(f"[{status}] {check}. {name} ({row['seconds']} s): {detail}", flush=True)
    return row


def summary(rows: list[dict], total: float) -> str:
    lines = [f"{'check':<6}{'name':<34}{'status':<8}{'seconds':>8}", "-" * 56]
    lines += [f"{r['check']:<6}{r['name']:<34}{r['status']:<8}{r['seconds']:>8.1f}" for r in rows]
    counts = {s: sum(r["status"] == s for r in rows) for s in ("PASS", "FAIL", "SKIP")}
    lines += ["-" * 56, f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped in {total:.1f} s"]
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="a,b,c,d", help="Comma-separated checks to run (default: a,b,c,d).")
    parser.add_argument("--output_json", default=None, help="Also write the results (and the machine) to this file.")
    args = parser.parse_args(argv)
    if not set(args.only.split(",")) <= set("abcd"):
        parser.error(f"--only takes letters among a,b,c,d, got {args.only!r}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    only = set(args.only.split(","))
    # Every check uses one GPU: with several visible, Trainer would wrap the model in DataParallel. Set before CUDA
    # starts; a CUDA_VISIBLE_DEVICES given by the caller is kept.
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "0")
    if not torch.cuda.is_available():
        print("No CUDA GPU is available (torch.cuda.is_available() is False): gpu_check.py checks nothing here.")
        return 2
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # from_pretrained's loading bars would bury the PASS/FAIL lines
    device = torch.cuda.get_device_name(0)
    print(f"GPU: {device}; torch {torch.__version__} (CUDA {torch.version.cuda})", flush=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="chargpt-gpu-check-") as work:
        plan = planned_checks(only, Path(work))
        rows = [run_step(check, name, fn) for check, name, fn in plan]
    total = time.perf_counter() - start
    print("\n" + summary(rows, total))
    if args.output_json:
        report = {"device": device, "torch": torch.__version__, "results": rows, "total_seconds": round(total, 1)}
        Path(args.output_json).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 1 if any(r["status"] == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
