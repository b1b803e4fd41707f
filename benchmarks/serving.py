"""Serving benchmark: time to first token and generated tokens per second for 1, 4 and 16 concurrent streaming
clients, through the OpenAI API as a user's application meets it, for

- `chargpt serve` on the chat model's own folder (PyTorch fp32),
- `chargpt serve` on its int8 export (ONNX Runtime),
- `transformers serve` on its native export (transformers' Qwen3 / GPT-2 class), without and with continuous batching.

    python -m benchmarks.serving --model_dir runs/demo/chat-model --output /tmp/serving.json

Every client sends a different user message from the chat prompts below and gets exactly `--max_tokens` tokens
(min_tokens; for transformers serve, which has no such field, the benchmark's copy of the export says so in its
generation_config.json), sampled at the model's own settings (seeded); time to first token is measured at the first
streamed piece of text, tokens per second as all completion tokens of a round over the round's wall time. Each arm
runs alone; servers bind 127.0.0.1.
"""

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from transformers import HfArgumentParser


PROMPTS = [
    "你好",
    "今天天气怎么样",
    "你喜欢看电影吗",
    "周末一起去爬山吧",
    "我有点累了",
    "晚饭吃什么",
    "最近在忙什么",
    "早上好",
    "你是哪里人",
    "这首歌真好听",
    "明天要下雨了",
    "我考试通过了",
    "推荐一本书吧",
    "好久不见",
    "你会做饭吗",
    "我们去公园散步吧",
]


@dataclass
class ServingArguments:
    model_dir: str = field(metadata={"help": "A trained CharGPT chat model folder (e.g. the demo's chat-model)."})
    output: str | None = field(default=None, metadata={"help": "Write the results as JSON here."})
    concurrency: list[int] = field(default_factory=lambda: [1, 4, 16], metadata={"help": "Client counts."})
    max_tokens: int = field(default=48, metadata={"help": "Tokens per reply (min_tokens too where the API has it)."})
    rounds: int = field(default=2, metadata={"help": "Rounds per client count; medians are reported."})
    arms: list[str] = field(
        default_factory=lambda: ["pytorch", "int8", "transformers-serve", "transformers-serve-cb"],
        metadata={"help": "What to measure."},
    )
    num_threads: int | None = field(default=None, metadata={"help": "torch / ONNX Runtime threads (default: all)."})


def _request(client, model: str, prompt: str, max_tokens: int, seed: int, min_tokens: bool) -> dict:
    """One streaming chat request: seconds to the first text, total seconds, completion tokens."""
    extra = {"min_tokens": max_tokens} if min_tokens else {}
    start = time.perf_counter()
    first, pieces, usage = None, 0, None
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        max_tokens=max_tokens,
        seed=seed,
        stream=True,
        stream_options={"include_usage": True},
        extra_body=extra,
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces += 1
            first = first or time.perf_counter() - start
        if getattr(chunk, "usage", None):
            usage = chunk.usage.completion_tokens
    return {"ttft": first, "seconds": time.perf_counter() - start, "tokens": usage if usage is not None else pieces}


def _rounds(base_url: str, model: str, args: ServingArguments, min_tokens: bool) -> dict:
    import openai

    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=600)
    _request(client, model, PROMPTS[0], 4, 0, min_tokens)  # warm-up: load, first call
    results = {}
    for clients in args.concurrency:
        per_round = []
        for r in range(args.rounds):
            barrier = threading.Barrier(clients)

            def one(i, barrier=barrier, r=r):
                barrier.wait()
                return _request(client, model, PROMPTS[i % len(PROMPTS)], args.max_tokens, 1000 * r + i, min_tokens)

            start = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                requests = list(pool.map(one, range(clients)))
            wall = time.perf_counter() - start
            ttfts = sorted(q["ttft"] for q in requests if q["ttft"] is not None)
            per_round.append(
                {
                    "wall_s": wall,
                    "tokens": sum(q["tokens"] for q in requests),
                    "ttft_median_s": statistics.median(ttfts) if ttfts else None,
                    "ttft_max_s": ttfts[-1] if ttfts else None,
                }
            )
        results[str(clients)] = {
            "tokens_per_s": round(statistics.median(p["tokens"] / p["wall_s"] for p in per_round), 1),
            "ttft_median_s": round(statistics.median(p["ttft_median_s"] for p in per_round), 3),
            "ttft_max_s": round(statistics.median(p["ttft_max_s"] for p in per_round), 3),
            "tokens_per_round": per_round[0]["tokens"],
        }
        print(f"  {clients:>2} clients: {results[str(clients)]}", flush=True)
    return results


@contextlib.contextmanager
def server_process(command: list[str], port: int, timeout: float = 180.0):
    """Run a server command in a subprocess; yield its base URL (http://127.0.0.1:PORT) once its /v1/models
    answers, stop it afterwards. Raises RuntimeError with the end of its log when it does not start."""
    import openai

    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"}
        )
        try:
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
            deadline = time.monotonic() + timeout
            while True:
                try:
                    client.models.list()
                    break
                except openai.APIConnectionError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        raise RuntimeError(f"{command[0]} did not start:\n" + log.read()[-3000:]) from None
                    time.sleep(0.5)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=60)


def _command(name: str) -> str:
    path = shutil.which(name, path=os.path.dirname(sys.executable))
    if path is None:
        raise RuntimeError(f"the `{name}` command is not installed beside this Python")
    return path


def transformers_serve(folder: str, batching: bool = False):
    """`transformers serve FOLDER` (a native export) on a free port, as a context manager yielding its URL."""
    from chargpt.serving.app import free_port

    port = free_port()
    command = [_command("transformers"), "serve", folder, "--host", "127.0.0.1", "--port", str(port)]
    return server_process(command + (["--continuous-batching"] if batching else []), port)


def chargpt_serve(folder: str, name: str = "bench"):
    """`chargpt serve FOLDER` on a free port, as a context manager yielding its URL."""
    from chargpt.serving.app import free_port

    port = free_port()
    return server_process(
        [
            _command("chargpt"),
            "serve",
            folder,
            "--port",
            str(port),
            "--model_name",
            name,
            "--max_queue",
            "64",
            "--log_level",
            "warning",
        ],
        port,
    )


def _arm(arm: str, folder: str, args: ServingArguments) -> dict:
    """One server in its own process (as users run it), measured by this process's clients."""
    try:
        if arm in ("pytorch", "int8"):
            with chargpt_serve(folder) as url:
                return _rounds(url, "bench", args, min_tokens=True)
        with transformers_serve(folder, batching=arm.endswith("-cb")) as url:
            return _rounds(url, folder, args, min_tokens=False)
    except Exception as err:  # record why an arm failed; the others still run
        return {"not_run": f"{type(err).__name__}: {err}"}


def main():
    (args,) = HfArgumentParser(ServingArguments).parse_args_into_dataclasses()
    if args.num_threads:
        import torch

        torch.set_num_threads(args.num_threads)
        os.environ["OMP_NUM_THREADS"] = str(args.num_threads)
    from chargpt.export import export_native
    from chargpt.loading import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(args.model_dir)
    results = {"model_dir": args.model_dir, "max_tokens": args.max_tokens, "rounds": args.rounds, "arms": {}}
    with tempfile.TemporaryDirectory(prefix="chargpt-serving-") as tmp:
        folders = {"pytorch": args.model_dir}
        if "int8" in args.arms:
            from chargpt.int8 import export_int8

            export_int8(model, tokenizer, os.path.join(tmp, "int8"), num_threads=args.num_threads)
            folders["int8"] = os.path.join(tmp, "int8")
        if any(a.startswith("transformers-serve") for a in args.arms):
            export_native(model, tokenizer, os.path.join(tmp, "native"))
            folders["native"] = os.path.join(tmp, "native")
            # transformers serve takes no min_tokens: the same work for every arm comes from this copy's defaults
            path = os.path.join(folders["native"], "generation_config.json")
            with open(path, encoding="utf-8") as f:
                generation = json.load(f)
            with open(path, "w", encoding="utf-8") as f:
                json.dump({**generation, "min_new_tokens": args.max_tokens}, f)
        for arm in args.arms:
            print(f"{arm}:", flush=True)
            results["arms"][arm] = _arm(arm, folders.get(arm, folders.get("native")), args)
    print(json.dumps(results, indent=2))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
