"""The data path (`--only data`): how fast dialogues become training blocks, and what streaming a large corpus costs.

1. Throughput on the shared dialogue corpora, in characters of dialogue text a second: `tokenizer(texts)` alone, and
   the training data path (chat template + tokenisation + packing: `build_lm_dataset` then `pack_sequences`), slow
   (Python) against fast (Rust) tokenizer, interleaved rounds, with Rust's own threads off (one core); also the path
   as it was before batching (one `apply_chat_template` per dialogue), the slow tokenizer's old cost.
2. Streaming: a JSON-lines corpus of at least `--data_stream_gb` GB made by repeating the shared corpora, then, each in
   a fresh process, `train_causal_lm` with `streaming=True` for a few steps (peak resident memory, data time against
   step time) and the data path alone for a while (tokens a second, resident memory over time).
3. Shards: two gloo processes build their training streams with `split_dataset_by_node`; their sequences must add up
   to the one-process stream, each dialogue seen by exactly one process.

Worker processes: `python -m benchmarks.data --worker train|read|shards ...` print one JSON line.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from transformers import TrainerCallback

from .common import interleaved_times, median, paired_ratio


DIALOGUE_FILES = (
    "lccc/lccc_toy_train_pairs.txt",
    "lccc/lccc_toy_train_dialogs.json",
    "lccc_base/lccc_base_valid_part.json",
    "lccc_base/lccc_base_test_part.json",
    "cped/cped_dialogues.json",
)
KDCONV_GLOB = "kdconv/kdconv_*_*.json"


def dialogue_files(data_dir) -> list[Path]:
    """The shared dialogue corpora present in `data_dir` (the results name them)."""
    data_dir = Path(data_dir)
    files = [data_dir / name for name in DIALOGUE_FILES if (data_dir / name).is_file()]
    files += sorted(data_dir.glob(KDCONV_GLOB))
    if not files:
        raise FileNotFoundError(
            f"No dialogue corpus in {data_dir}; pass --data_dir pointing at the shared data folder."
        )
    return files


def _status_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process in MiB, from /proc (Linux)."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


# ------------------------------------------------------------------------------------------------ 1. throughput


def load_shared_dialogues(data_dir, cache_dir) -> list[list[str]]:
    """Every dialogue of the shared corpora, cleaned as training cleans them (NFKC, LCCC spacing undone)."""
    from chargpt.data import CleaningConfig, load_dialogues

    dataset, _ = load_dialogues(
        dialogue_files(data_dir), cleaning=CleaningConfig(normalization="NFKC"), cache_dir=cache_dir
    )
    return [list(turns) for turns in dataset["turns"]]


def previous_data_path(tokenizer, dialogues, max_length: int, block: int) -> list[list[int]]:
    """The data path before batching, for reference: one `apply_chat_template` call per dialogue, then packing."""
    from chargpt.data.sequences import _chat_messages

    flat = []
    for turns in dialogues:
        ids = tokenizer.apply_chat_template(_chat_messages(turns), tokenize=True, return_dict=False)
        if len(ids) <= max_length:
            flat.extend(ids)
    return [flat[i : i + block] for i in range(0, len(flat) // block * block, block)]


def data_path(tokenizer, dataset, max_length: int, block: int):
    """The training data path as `train_lm.py --packing` runs it: chat-template ids, then packed blocks."""
    from chargpt.data import build_lm_dataset, pack_sequences

    encoded, _ = build_lm_dataset(dataset, tokenizer, max_length)
    return pack_sequences(encoded, block)


def _rates(times: dict, chars: int) -> dict:
    return {name: {"chars_per_s": chars / median(ts), "times_s": ts} for name, ts in times.items()}


def throughput(args, dialogues: list[list[str]]) -> dict:
    """Characters a second of `tokenizer(texts)` and of the data path, slow against fast, one core."""
    import datasets
    from datasets import Dataset

    from chargpt import CharGPTTokenizer, CharGPTTokenizerFast

    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # Rust on one thread: the one-core figure
    datasets.disable_progress_bars()
    texts = [t for turns in dialogues for t in turns]
    chars = sum(len(t) for t in texts)
    kw = dict(min_frequency=2, normalization="NFKC", model_max_length=args.n_positions)
    slow, fast = CharGPTTokenizer.from_texts(texts, **kw), CharGPTTokenizerFast.from_texts(texts, **kw)
    block, reps = args.data_block_len, args.data_repetitions
    tokenize = interleaved_times({"slow": lambda: slow(texts), "fast": lambda: fast(texts)}, reps)
    dataset = Dataset.from_dict({"turns": dialogues})
    path = interleaved_times(
        {
            "slow": lambda: data_path(slow, dataset, args.n_positions, block),
            "fast": lambda: data_path(fast, dataset, args.n_positions, block),
            "slow, previous path": lambda: previous_data_path(slow, dialogues, args.n_positions, block),
        },
        reps,
    )
    start = time.process_time()
    blocks = data_path(fast, dataset, args.n_positions, block)
    cpu = time.process_time() - start
    return {
        "dialogues": len(dialogues), "characters": chars, "block_len": block, "vocab_size": len(fast),
        "tokenize": {**_rates(tokenize, chars), "fast/slow": paired_ratio(tokenize["fast"], tokenize["slow"])},
        "data_path": {**_rates(path, chars), "fast/slow": paired_ratio(path["fast"], path["slow"]),
                      "fast/slow previous path": paired_ratio(path["fast"], path["slow, previous path"])},
        "fast_data_path_chars_per_cpu_s": chars / cpu, "blocks": len(blocks),
        "same_blocks": blocks.to_dict() == data_path(slow, dataset, args.n_positions, block).to_dict(),
    }  # fmt: skip


# ------------------------------------------------------------------------------------------------ 2. streaming


def make_stream_corpus(dialogues: list[list[str]], path: Path, min_bytes: int) -> dict:
    """A JSON-lines file of `dialogues` written over and over until it holds at least `min_bytes` bytes."""
    lines = "".join(json.dumps(turns, ensure_ascii=False) + "\n" for turns in dialogues).encode("utf-8")
    copies = -(-min_bytes // len(lines))
    free = shutil.disk_usage(path.parent).free
    if free < 2 * copies * len(lines):
        raise OSError(
            f"{path.parent} has {free / 2**30:.1f} GiB free; the streaming corpus needs "
            f"{copies * len(lines) / 2**30:.1f} GiB (and room to spare). Use --work_dir elsewhere."
        )
    with open(path, "wb") as f:
        for _ in range(copies):
            f.write(lines)
    tokens = sum(sum(len(t) for t in turns) + len(turns) + 1 for turns in dialogues)  # characters + special tokens
    return {
        "bytes": copies * len(lines),
        "copies": copies,
        "dialogues": copies * len(dialogues),
        "tokens_approx": copies * tokens,
    }


def _worker_command(mode: str, **options) -> list[str]:
    flags = [f"--{k}={v}" for k, v in options.items()]
    return [sys.executable, "-m", "benchmarks.data", "--worker", mode, *flags]


def run_worker(mode: str, timeout: int = 1800, **options) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        _worker_command(mode, **options), capture_output=True, text=True, env=env, cwd=root, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(f"data worker {mode} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def streaming(args, dialogues, work_dir: Path, tokenizer_dir: Path) -> dict:
    """Train from, then read, a corpus of at least --data_stream_gb GB, each in a fresh process."""
    corpus = work_dir / "stream_corpus.jsonl"
    try:
        made = make_stream_corpus(dialogues, corpus, int(args.data_stream_gb * 1e9))
        common = dict(corpus=corpus, tokenizer=tokenizer_dir, threads=args.threads, block=args.data_block_len)
        model = dict(
            n_embd=args.n_embd,
            n_layer=args.n_layer,
            n_head=args.n_head,
            n_inner=args.n_inner,
            n_positions=args.n_positions,
        )
        train = run_worker(
            "train",
            steps=args.data_stream_steps,
            batch=args.data_batch_size,
            out=work_dir / "stream_run",
            **common,
            **model,
        )
        read = run_worker("read", seconds=args.data_read_seconds, **common)
    finally:
        corpus.unlink(missing_ok=True)
    read["share_of_corpus_read"] = read["tokens"] / made["tokens_approx"]
    return {"corpus": made, "train": train, "read": read}


# ------------------------------------------------------------------------------------------------ 3. shards


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shards(data_dir, tokenizer_dir: Path, work_dir: Path) -> dict:
    """Two gloo processes against one, on all the shared corpora (11 files, not a multiple of two: every second
    dialogue each) and on the two LCCC-base files (one file each)."""
    files = dialogue_files(data_dir)
    cases = {
        f"all corpora ({len(files)} files)": files,
        "LCCC-base (2 files)": [f for f in files if "lccc_base" in f.name],
    }
    out = {}
    for name, paths in cases.items():
        if len(paths) < 2:
            continue
        runs = [
            run_worker(
                "shards",
                sources=",".join(str(p) for p in paths),
                tokenizer=tokenizer_dir,
                world=world,
                port=_free_port(),
                out=work_dir / f"shards-{world}.json",
            )
            for world in (1, 2)
        ]
        whole, two = runs
        out[name] = compare_shards(whole["ranks"][0], two["ranks"], len(paths))
    return out


def compare_shards(whole: list[str], ranks: list[list[str]], files: int) -> dict:
    """Every dialogue (its token sequence's digest) seen by exactly one process, and all of them seen."""
    counts = [Counter(r) for r in ranks]
    union, expected = sum(counts, Counter()), Counter(whole)
    repeated_in_corpus = sum(1 for n in expected.values() if n > 1)
    overlap = len(set(counts[0]) & set(counts[1])) if len(counts) == 2 else 0
    return {"files": files, "whole": len(whole), "per_process": [len(r) for r in ranks],
            "union_equals_whole": union == expected, "overlap": overlap, "repeated_in_corpus": repeated_in_corpus,
            "disjoint": overlap <= repeated_in_corpus and union == expected}  # fmt: skip


# ------------------------------------------------------------------------------------------------ the section


def run_data(args, work_dir, save) -> dict:
    from chargpt import CharGPTTokenizerFast

    work_dir = Path(work_dir)
    results = {"method": METHOD, "files": [str(f) for f in dialogue_files(args.data_dir)]}
    dialogues = load_shared_dialogues(args.data_dir, str(work_dir / "datasets-cache"))
    if args.data_max_dialogues:
        dialogues = dialogues[: args.data_max_dialogues]
    results["throughput"] = throughput(args, dialogues)
    save(results)
    tokenizer_dir = work_dir / "data-tokenizer"
    texts = (t for turns in dialogues for t in turns)
    CharGPTTokenizerFast.from_texts(
        texts, min_frequency=2, normalization="NFKC", model_max_length=args.n_positions
    ).save_pretrained(tokenizer_dir)
    results["shards"] = shards(args.data_dir, tokenizer_dir, work_dir)
    save(results)
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="stream-") as tmp:
        results["streaming"] = streaming(args, dialogues, Path(tmp), tokenizer_dir)
    return results


METHOD = (
    "Throughput: characters of cleaned dialogue text a second, medians of interleaved rounds (slow, fast, slow on the "
    "previous path, one after the other), TOKENIZERS_PARALLELISM=false so the fast tokenizer uses one core; 'per "
    "CPU-second' divides by the process's CPU time, the one-core figure whatever the machine's load. Data path = "
    "build_lm_dataset + pack_sequences on an in-memory datasets.Dataset, what train_lm.py --packing runs. Streaming: "
    "fresh processes; peak RSS is the whole process's VmHWM (interpreter, torch, model, optimizer, data); data time "
    "is the time between one optimisation step's end and the next one's start (the Trainer fetches the batch then), "
    "step time the whole interval."
)


# ------------------------------------------------------------------------------------------------ workers


class StepTimer(TrainerCallback):
    """Time waiting for data (between steps) and in steps, and resident memory after each step."""

    def __init__(self):
        self.data, self.step, self.rss, self.last, self.begin = [], [], [], None, None

    def on_train_begin(self, args, state, control, **kwargs):
        self.last = time.perf_counter()

    def on_step_begin(self, args, state, control, **kwargs):
        self.begin = time.perf_counter()
        self.data.append(self.begin - self.last)

    def on_step_end(self, args, state, control, **kwargs):
        self.last = time.perf_counter()
        self.step.append(self.last - self.begin)
        self.rss.append(_status_mib("VmRSS"))


def _train_worker(opts) -> dict:
    import torch

    from chargpt.data import CleaningConfig
    from chargpt.training import DialogueDataArguments, LMModelArguments, LMTrainingArguments, train_causal_lm

    torch.set_num_threads(opts.threads)
    timer = StepTimer()
    start = time.perf_counter()
    train_causal_lm(
        LMModelArguments(tokenizer_name_or_path=opts.tokenizer, n_embd=opts.n_embd, n_layer=opts.n_layer,
                         n_head=opts.n_head, n_inner=opts.n_inner, n_positions=opts.n_positions),
        DialogueDataArguments(train_files=[opts.corpus], streaming=True, packing=True, block_size=opts.block,
                              validation_split_size=0, test_split_size=0),
        CleaningConfig(normalization="NFKC", deduplicate=False),  # the corpus is one file repeated, by design
        LMTrainingArguments(output_dir=opts.out, max_steps=opts.steps, per_device_train_batch_size=opts.batch,
                            eval_strategy="no", save_strategy="no", load_best_model_at_end=False, report_to="none",
                            logging_steps=opts.steps, use_cpu=True, disable_tqdm=True),
        callbacks=[timer],
    )  # fmt: skip
    data, step = timer.data, timer.step
    total = [d + s for d, s in zip(data, step)]
    return {"steps": len(step), "batch_size": opts.batch, "block_len": opts.block,
            "seconds": time.perf_counter() - start, "tokens": len(step) * opts.batch * opts.block,
            "peak_rss_mib": _status_mib("VmHWM"),
            "rss_mib_first_last": [timer.rss[0], timer.rss[-1]], "rss_mib_every_10_steps": timer.rss[::10],
            "data_share": sum(data) / sum(total),
            "data_share_after_first_step": sum(data[1:]) / max(sum(total[1:]), 1e-9),
            "first_step_data_s": data[0], "median_step_s": median(total)}  # fmt: skip


def _read_worker(opts) -> dict:
    """The training stream alone (read, clean, tokenise, pack) for `seconds`, sampling resident memory."""
    from chargpt import CharGPTTokenizerFast
    from chargpt.data import CleaningConfig
    from chargpt.training import DialogueDataArguments
    from chargpt.training.inputs import streamed_train_dataset

    tokenizer = CharGPTTokenizerFast.from_pretrained(opts.tokenizer)
    data = DialogueDataArguments(train_files=[opts.corpus], streaming=True, packing=True, block_size=opts.block)
    stream, _ = streamed_train_dataset(
        data,
        CleaningConfig(normalization="NFKC", deduplicate=False),
        tokenizer,
        tokenizer.model_max_length,
        repeat=False,
    )
    start, start_cpu, tokens, samples = time.perf_counter(), time.process_time(), 0, []
    for rows, row in enumerate(stream, 1):
        tokens += len(row["input_ids"])
        if rows % 2000 == 0:
            samples.append(round(_status_mib("VmRSS"), 1))
        if time.perf_counter() - start > opts.seconds:
            break
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return {"seconds": wall, "tokens": tokens, "tokens_per_s": tokens / wall, "tokens_per_cpu_s": tokens / cpu,
            "peak_rss_mib": _status_mib("VmHWM"), "rss_mib_samples": samples}  # fmt: skip


def _shard_rank(rank: int, opts) -> None:
    """One gloo process: its training stream (one pass, unpacked), as digests, gathered on rank 0."""
    import hashlib

    import torch.distributed as dist

    from chargpt import CharGPTTokenizerFast
    from chargpt.data import CleaningConfig
    from chargpt.training import DialogueDataArguments
    from chargpt.training.inputs import streamed_train_dataset

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{opts.port}", rank=rank, world_size=opts.world)
    tokenizer = CharGPTTokenizerFast.from_pretrained(opts.tokenizer)
    data = DialogueDataArguments(train_files=opts.sources.split(","), streaming=True)
    stream, _ = streamed_train_dataset(
        data,
        CleaningConfig(normalization="NFKC", deduplicate=False),
        tokenizer,
        10**6,
        dist.get_rank(),
        dist.get_world_size(),
        repeat=False,
    )
    mine = [hashlib.blake2b(str(row["input_ids"]).encode(), digest_size=8).hexdigest() for row in stream]
    gathered = [None] * opts.world
    dist.all_gather_object(gathered, mine)
    if rank == 0:
        Path(opts.out).write_text(json.dumps(gathered), encoding="utf-8")
    dist.destroy_process_group()


def _shards_worker(opts) -> dict:
    import torch.multiprocessing as mp

    mp.start_processes(_shard_rank, args=(opts,), nprocs=opts.world, start_method="spawn")
    return {"world_size": opts.world, "ranks": json.loads(Path(opts.out).read_text(encoding="utf-8"))}


def _parse_worker(argv):
    p = argparse.ArgumentParser(description="A data benchmark worker (run by benchmarks/data.py).")
    p.add_argument("--worker", choices=["train", "read", "shards"], required=True)
    for name in ("corpus", "tokenizer", "out", "sources"):
        p.add_argument(f"--{name}")
    for name in (
        "threads",
        "block",
        "steps",
        "batch",
        "world",
        "port",
        "n_embd",
        "n_layer",
        "n_head",
        "n_inner",
        "n_positions",
    ):
        p.add_argument(f"--{name}", type=int, default=1)
    p.add_argument("--seconds", type=float, default=10.0)
    return p.parse_args(argv)


if __name__ == "__main__":
    options = _parse_worker(sys.argv[1:])
    worker = {"train": _train_worker, "read": _read_worker, "shards": _shards_worker}[options.worker]
    print(json.dumps(worker(options)))
