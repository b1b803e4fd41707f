"""The GGUF export in llama.cpp itself (through llama-cpp-python, which compiles llama.cpp; not in CI):

(a) llama.cpp's tokenization of real texts (LCCC utterances, ChnSentiCorp and online-shopping reviews), normalized
    the CharGPT way first, against CharGPT's own ids (where CharGPT has <unk>, llama.cpp has nothing), and what
    happens when a caller forgets to normalize; the chat template's prompt ids in llama-cpp-python's chat formatter;
(b) llama.cpp's greedy continuations of the f32 file against PyTorch's, with the logits' distance for every file
    type, and a greedy chat reply through llama-cpp-python's create_chat_completion;
(c) batch-1 tokens/s of llama.cpp (f32, q8_0) beside PyTorch float32 generate() and CharGPT's int8 ONNX Runtime
    export, the same prompts and thread count for each, median of interleaved repeats;
and what transformers' own GGUF tokenizer loading would need (it cannot build this tokenizer).

    pip install llama-cpp-python      # compiles llama.cpp: several minutes on two cores
    python -m benchmarks.llama_cpp_check --model_dir /tmp/gguf_work/chat-model --num_threads 1 \\
        --output /tmp/gguf_work/llama_cpp_check.json
    python -m benchmarks.llama_cpp_check --make_random_model --model_dir /tmp/gguf_work/random-modern
"""

import csv
import json
import os
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer, HfArgumentParser

from chargpt import CharGPTConfig, CharGPTForCausalLM, CharGPTTokenizerFast
from chargpt.export.checks import relative_difference
from chargpt.export.gguf import export_gguf, gguf_vocabulary
from chargpt.loading import load_model, load_tokenizer

from .common import interleaved_times, machine_info, median, write_json_atomic
from .corpora import CHNSENTICORP, _unspace, load_chnsenticorp


DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LCCC_BASE = "lccc_base/lccc_base_valid_part.json"
ONLINE_SHOPPING = "online_shopping/online_shopping_9_cats.csv"
PROMPTS = ("你好", "今天天气很好，", "我喜欢看电影，")
CHAT = [
    {"role": "user", "content": "你好"},
    {"role": "assistant", "content": "你好！"},
    {"role": "user", "content": "今天天气怎么样？"},
]


@dataclass
class LlamaCppArguments:
    model_dir: str = field(
        metadata={
            "help": "A trained CharGPT causal LM folder of the modern design (created with "
            "random weights when --make_random_model is set and it does not exist)."
        }
    )
    make_random_model: bool = field(
        default=False,
        metadata={
            "help": "Create a random modern model in model_dir "
            "first, its vocabulary the characters of the "
            "texts of (a)."
        },
    )
    n_embd: int = field(default=256, metadata={"help": "Random model: hidden size."})
    n_layer: int = field(default=6, metadata={"help": "Random model: layers."})
    n_head: int = field(default=8, metadata={"help": "Random model: attention heads."})
    n_positions: int = field(default=512, metadata={"help": "Random model: context length."})
    data_dir: str = field(default=str(DEFAULT_DATA_DIR), metadata={"help": "The shared data folder."})
    texts: int = field(default=1000, metadata={"help": "Real texts whose tokenization is compared."})
    new_tokens: int = field(default=50, metadata={"help": "Greedy tokens per prompt."})
    repeats: int = field(default=5, metadata={"help": "Timed runs per engine (interleaved); the median is reported."})
    num_threads: int = field(default=1, metadata={"help": "Threads for every engine."})
    work_dir: str | None = field(
        default=None,
        metadata={"help": "Where the GGUF files and the int8 export go (default: a temporary folder, removed after)."},
    )
    output: str | None = field(default=None, metadata={"help": "Also write the JSON summary to this file."})


# -------------------------------------------------------------------------------------------------------- the texts


def load_texts(data_dir: Path, n: int, seed: int = 0) -> list[tuple[str, str]]:
    """(source, text): 40% LCCC-base utterances, 30% ChnSentiCorp hotel reviews, 30% online-shopping reviews (the
    last with stray byte-order marks and other invisible characters), sampled with `seed`."""
    rng = random.Random(seed)
    with open(data_dir / LCCC_BASE, encoding="utf-8") as f:
        utterances = [_unspace(turn) for dialogue in json.load(f) for turn in dialogue if _unspace(turn)]
    hotel = [review for review, _ in load_chnsenticorp(data_dir / CHNSENTICORP)]
    with open(data_dir / ONLINE_SHOPPING, encoding="utf-8", newline="") as f:
        shopping = [row["review"] for row in csv.DictReader(f) if row["review"].strip()]
    counts = {"lccc_base": n - 2 * (3 * n // 10), "chnsenticorp": 3 * n // 10, "online_shopping": 3 * n // 10}
    pools = {"lccc_base": utterances, "chnsenticorp": hotel, "online_shopping": shopping}
    return [(name, text) for name, k in counts.items() for text in rng.sample(pools[name], k)]


def make_random_modern_model(args, texts: list[str]) -> None:
    """A random modern causal LM whose NFKC vocabulary is the characters of `texts`, saved in args.model_dir."""
    tokenizer = CharGPTTokenizerFast.from_texts(texts, normalization="NFKC", model_max_length=args.n_positions)
    torch.manual_seed(0)
    config = CharGPTConfig.from_preset(
        "modern",
        vocab_size=len(tokenizer),
        n_positions=args.n_positions,
        n_embd=args.n_embd,
        n_layer=args.n_layer,
        n_head=args.n_head,
    )
    CharGPTForCausalLM(config).save_pretrained(args.model_dir)
    tokenizer.save_pretrained(args.model_dir)


# ------------------------------------------------------------------------------------------------ (a) tokenization


def check_tokenization(vocab_llm, tokenizer, texts: list[tuple[str, str]]) -> dict:
    """llama.cpp's ids (add_bos, special tokens parsed) for each text normalized the CharGPT way, against
    CharGPT's ids for the raw text with its <unk> ids removed; and how many differ without the normalization."""
    unk = tokenizer.unk_token_id
    result = {
        "texts": len(texts),
        "characters": 0,
        "equal": 0,
        "unknown_characters": 0,
        "texts_with_unknown": 0,
        "mismatches": [],
        "equal_without_normalizing": 0,
    }
    for source, text in texts:
        chargpt = tokenizer(text)["input_ids"]
        llama = vocab_llm.tokenize(tokenizer.normalize(text).encode("utf-8"), add_bos=True, special=True)
        expected = [i for i in chargpt if i != unk]
        result["characters"] += len(chargpt) - 1
        result["unknown_characters"] += len(chargpt) - len(expected)
        result["texts_with_unknown"] += len(chargpt) != len(expected)
        if llama == expected:
            result["equal"] += 1
        elif len(result["mismatches"]) < 5:
            first = next((i for i, (a, b) in enumerate(zip(llama, expected)) if a != b), min(len(llama), len(expected)))
            result["mismatches"].append(
                {
                    "source": source,
                    "text": text[:80],
                    "at": first,
                    "llama": llama[first : first + 5],
                    "chargpt": expected[first : first + 5],
                }
            )
        raw = vocab_llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        result["equal_without_normalizing"] += raw == expected
    return result


def check_chat_prompt(llm, tokenizer) -> dict:
    """The prompt ids llama-cpp-python's chat formatter builds from the GGUF's template (rendered with bos_token and
    eos_token only, tokenized without a second BOS) for the normalized messages, against CharGPT's
    apply_chat_template."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llm.metadata["tokenizer.chat_template"]
    formatter = Jinja2ChatFormatter(template, eos_token=tokenizer.eos_token, bos_token=tokenizer.bos_token)
    rendered = formatter(messages=normalized(CHAT, tokenizer))
    ids = llm.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True)
    expected = tokenizer.apply_chat_template(CHAT, add_generation_prompt=True, tokenize=True, return_dict=False)
    return {"prompt": rendered.prompt, "ids_equal": ids == list(expected)}


def normalized(messages: list[dict], tokenizer) -> list[dict]:
    """The messages as a llama.cpp caller must send them: their text normalized the CharGPT way."""
    return [{**m, "content": tokenizer.normalize(m["content"])} for m in messages]


def transformers_tokenizer_route(tokenizer, path: str, vocab_size: int) -> dict:
    """What transformers' GGUF tokenizer loading does with the file, and how many tokens its BPE would need beyond
    the model's vocabulary (every merge's result and every single byte must be a token there)."""
    tokens, _, merges = gguf_vocabulary(tokenizer, vocab_size)
    known = set(tokens)
    results = {m.replace(" ", "") for m in merges}
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    missing_bytes = set(bytes_to_unicode().values()) - known
    missing_prefixes = results - known
    try:
        AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))
        outcome = "loaded"
    except Exception as err:  # transformers raises the `tokenizers` Exception type itself
        outcome = f"{type(err).__name__}: {err}"
    return {
        "from_pretrained_gguf_file": outcome,
        "merges": len(merges),
        "tokens_transformers_bpe_would_need_beyond_the_vocabulary": len(missing_bytes | missing_prefixes),
        "of_which_single_bytes": len(missing_bytes),
        "of_which_character_prefixes": len(missing_prefixes - missing_bytes),
        "vocabulary": len(tokens),
    }


# ---------------------------------------------------------------------------------------------- (b) greedy, logits


def llama_greedy(llm, prompt_ids: list[int], n_new: int) -> list[int]:
    """n_new tokens of llama.cpp's greedy sampler after the prompt (end-of-generation tokens not special-cased)."""
    out = []
    for token in llm.generate(prompt_ids, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, reset=True):
        out.append(int(token))
        if len(out) == n_new:
            break
    return out


@torch.no_grad()
def torch_greedy(model, prompt_ids: list[int], n_new: int) -> list[int]:
    ids = torch.tensor([prompt_ids])
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        do_sample=False,
        max_new_tokens=n_new,
        min_new_tokens=0,
        eos_token_id=None,
        pad_token_id=model.config.pad_token_id,
    )
    return out[0, len(prompt_ids) :].tolist()


def matching_prefix(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


@torch.no_grad()
def logits_distance(llm_all, model, sequences: list[list[int]]) -> float:
    """Relative RMS distance of llama.cpp's logits (every position, one pass per sequence) from PyTorch's."""
    got, expected = [], []
    for seq in sequences:
        llm_all.reset()
        llm_all.eval(seq)
        got.append(torch.from_numpy(np.array(llm_all.scores[: len(seq)], dtype=np.float32)))
        expected.append(model(torch.tensor([seq])).logits[0])
    return relative_difference(torch.cat(got), torch.cat(expected))


@torch.no_grad()
def chat_reply(llm, model, tokenizer, n_new: int = 30) -> dict:
    """A greedy chat reply through llama-cpp-python's create_chat_completion (stops at an end-of-generation token:
    <sep> or <eos>) against PyTorch's greedy reply to the same conversation."""
    response = llm.create_chat_completion(
        messages=normalized(CHAT, tokenizer), temperature=0.0, top_k=1, repeat_penalty=1.0, max_tokens=n_new
    )
    ids = torch.tensor(
        [tokenizer.apply_chat_template(CHAT, add_generation_prompt=True, tokenize=True, return_dict=False)]
    )
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        do_sample=False,
        max_new_tokens=n_new,
        min_new_tokens=0,
        eos_token_id=[tokenizer.sep_token_id, tokenizer.eos_token_id],
        pad_token_id=model.config.pad_token_id,
    )
    expected = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    got = response["choices"][0]["message"]["content"]
    return {
        "llama_cpp": got,
        "pytorch": expected,
        "equal": got == expected,
        "finish_reason": response["choices"][0]["finish_reason"],
    }


# ------------------------------------------------------------------------------------------------------ (c) speed


def time_engines(engines: dict, prompts: list[list[int]], n_new: int, repeats: int) -> dict:
    """Batch-1 greedy generation of n_new tokens after each prompt, per engine: median seconds of a round (all
    prompts) over interleaved repeats, and tokens/s from it."""
    runs = {name: (lambda fn=fn: [fn(p, n_new) for p in prompts]) for name, fn in engines.items()}
    times = interleaved_times(runs, repeats, warmup=1)
    seconds = {name: median(t) for name, t in times.items()}
    tokens = n_new * len(prompts)
    return {
        "tokens_per_second": {k: round(tokens / v, 1) for k, v in seconds.items()},
        "speedup_vs_pytorch_fp32": {k: round(seconds["pytorch_fp32"] / v, 2) for k, v in seconds.items()},
        "seconds_all": {k: [round(x, 4) for x in v] for k, v in times.items()},
    }


def int8_engine(model, tokenizer, directory: str, threads: int):
    """CharGPT's int8 ONNX Runtime export as a greedy generator, or the reason it cannot run here."""
    try:
        from chargpt.int8 import export_int8, load_int8

        export_int8(model, tokenizer, directory, overwrite=True)
        int8 = load_int8(directory, num_threads=threads)
    except Exception as err:  # a missing optional package or a failed export check: report it, keep measuring
        return None, f"{type(err).__name__}: {err}"
    return (lambda p, n: torch_greedy(int8, p, n)), None


# ------------------------------------------------------------------------------------------------------------- main


def greedy_agreement(llama: dict, int8, model, tokenizer, n_new: int) -> dict:
    """(b): each engine's greedy continuations of PROMPTS against PyTorch's, and llama.cpp's logits' distance from
    PyTorch's over the prompts and PyTorch's continuations, per file type."""
    prompts = [tokenizer(p)["input_ids"] for p in PROMPTS]
    reference = [torch_greedy(model, p, n_new) for p in prompts]
    engines = {t: (lambda p, n, llm=llm: llama_greedy(llm, p, n)) for t, llm in llama["generate"].items()}
    if int8 is not None:
        engines["chargpt_int8_onnx"] = int8
    greedy = {name: [fn(p, n_new) for p in prompts] for name, fn in engines.items()}
    sequences = [p + r for p, r in zip(prompts, reference)]
    return {
        "prompts": list(PROMPTS),
        "new_tokens": n_new,
        "f32_equal_to_pytorch": greedy["f32"] == reference,
        "tokens_matching_before_first_difference": {
            name: [matching_prefix(g, r) for g, r in zip(gs, reference)] for name, gs in greedy.items()
        },
        "f32_continuations": [tokenizer.decode(g) for g in greedy["f32"]],
        "llama_cpp_logits_relative_difference": {
            t: float(f"{logits_distance(llm, model, sequences):.4g}") for t, llm in llama["logits"].items()
        },
    }


def run(args, work_dir: str) -> dict:
    import llama_cpp

    torch.set_num_threads(args.num_threads)
    texts = load_texts(Path(args.data_dir), args.texts)
    if args.make_random_model and not os.path.isdir(args.model_dir):
        make_random_modern_model(args, [t for _, t in texts])
    model = load_model(args.model_dir, task="causal-lm").to(torch.float32).eval()
    tokenizer = load_tokenizer(args.model_dir)
    files = {t: os.path.join(work_dir, f"model-{t}.gguf") for t in ("f32", "f16", "q8_0")}
    exports = {t: export_gguf(model, tokenizer, path, t, overwrite=True) for t, path in files.items()}
    settings = dict(
        n_ctx=model.config.n_positions,
        n_threads=args.num_threads,
        n_threads_batch=args.num_threads,
        seed=0,
        verbose=False,
    )
    llama = {
        "generate": {t: llama_cpp.Llama(path, **settings) for t, path in files.items()},
        "logits": {t: llama_cpp.Llama(path, logits_all=True, **settings) for t, path in files.items()},
        "vocab": {"f32": llama_cpp.Llama(files["f32"], vocab_only=True, verbose=False)},
    }
    int8, int8_problem = int8_engine(model, tokenizer, os.path.join(work_dir, "int8"), args.num_threads)
    engines = {
        "pytorch_fp32": lambda p, n: torch_greedy(model, p, n),
        "llama_cpp_f32": lambda p, n: llama_greedy(llama["generate"]["f32"], p, n),
        "llama_cpp_q8_0": lambda p, n: llama_greedy(llama["generate"]["q8_0"], p, n),
        **({"chargpt_int8_onnx": int8} if int8 is not None else {}),
    }
    c = model.config
    result = {
        "model": {
            "dir": args.model_dir,
            "random_weights": args.make_random_model,
            "n_embd": c.n_embd,
            "n_layer": c.n_layer,
            "n_head": c.n_head,
            "n_inner": c.n_inner,
            "vocab_size": c.vocab_size,
            "n_positions": c.n_positions,
            "parameters": sum(p.numel() for p in model.parameters()),
        },
        "llama_cpp_python": llama_cpp.__version__,
        "llama_cpp_system_info": llama_cpp.llama_print_system_info().decode().strip(),
        "gguf_files": {
            t: {
                "bytes": e["bytes"],
                "transformers_relative_difference": e["checks"]["relative_difference"],
                "tolerance": e["checks"]["tolerance"],
            }
            for t, e in exports.items()
        },
        "a_tokenization": check_tokenization(llama["vocab"]["f32"], tokenizer, texts),
        "a_chat_prompt": check_chat_prompt(llama["generate"]["f32"], tokenizer),
        "b_greedy": greedy_agreement(llama, int8, model, tokenizer, args.new_tokens),
        "b_chat_reply": chat_reply(llama["generate"]["f32"], model, tokenizer),
        "c_speed": {
            "threads": args.num_threads,
            "repeats": args.repeats,
            "prompts": len(PROMPTS),
            "new_tokens_per_prompt": args.new_tokens,
            "int8_onnx": int8_problem or "measured",
            **time_engines(engines, [tokenizer(p)["input_ids"] for p in PROMPTS], args.new_tokens, args.repeats),
        },
        "transformers_gguf_tokenizer": transformers_tokenizer_route(tokenizer, files["f32"], c.vocab_size),
    }
    for group in llama.values():
        for llm in group.values():
            llm.close()
    return result


def main(argv=None):
    (args,) = HfArgumentParser(LlamaCppArguments).parse_args_into_dataclasses(args=argv)
    if args.work_dir:
        os.makedirs(args.work_dir, exist_ok=True)
        result = run(args, args.work_dir)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = run(args, tmp)
    print(json.dumps(result, ensure_ascii=False, indent=1))
    if args.output:
        write_json_atomic(Path(args.output), {**result, "machine": machine_info()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
