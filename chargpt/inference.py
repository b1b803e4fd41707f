"""Using a trained CharGPT: loading a model directory (hub-style, with or without remote code, or an int8 export),
generation, classification and sentence similarity, plus the input/output helpers the `chargpt` CLI shares.

Everything here works on either a PyTorch model or an `Int8CharGPT` (chargpt.quantization): both offer
`model(input_ids, attention_mask).logits`, `model.generate(...)`, `model.embed(...)`, `.config` and `.device`.
"""

import contextlib
import csv
import glob
import io
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)
from transformers.utils import logging as hf_logging

from .tokenization_chargpt import normalize_text


logger = logging.getLogger(__name__)

TASKS = ("causal-lm", "sequence-classification", "base")
_AUTO_CLASSES = {
    "causal-lm": AutoModelForCausalLM,
    "sequence-classification": AutoModelForSequenceClassification,
    "base": AutoModel,
}
_ARCHITECTURE_SUFFIX = {"causal-lm": "ForCausalLM", "sequence-classification": "ForSequenceClassification"}
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


# ----------------------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------------------


def check_model_dir(path) -> str:
    """The directory as a string, or a ValueError that says what a model directory is."""
    path = str(path)
    if not os.path.isdir(path):
        raise ValueError(
            f"Model directory {path!r} does not exist. Pass a directory written by save_pretrained, the training "
            f"scripts, `chargpt publish` or `chargpt export-int8` (models cannot be downloaded here)."
        )
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise ValueError(f"{path} has no config.json, so it is not a model directory.")
    return path


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' is CUDA when PyTorch sees a GPU, else CPU; asking for CUDA without one is an error, not a fallback."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"Unknown device {device!r}; use auto, cpu, cuda or cuda:N.") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: PyTorch sees no CUDA GPU here (torch.cuda.is_available() is False); "
                         f"use --device cpu.")
    return resolved


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """'auto' is float16 on CUDA and float32 elsewhere; float16 on CPU is refused (slow and not what training used)."""
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        raise ValueError(f"Unknown dtype {dtype!r}; use one of auto, {', '.join(_DTYPES)}.")
    if dtype == "float16" and device.type == "cpu":
        raise ValueError("float16 is for GPUs; on CPU use float32 (default) or bfloat16.")
    return _DTYPES[dtype]


def load_config(model_dir, trust_remote_code: bool = False):
    from .quantization import is_int8_export

    model_dir = check_model_dir(model_dir)
    if is_int8_export(model_dir):
        from .configuration_chargpt import CharGPTConfig

        return CharGPTConfig.from_pretrained(model_dir)
    return _auto_load(AutoConfig, model_dir, "the model configuration", trust_remote_code)


def remote_class(model_dir, auto_name: str):
    """The class a directory's own code defines for `auto_name` (e.g. "AutoModelForCausalLM"), from the `auto_map` in
    its config.json (tokenizer_config.json for "AutoTokenizer"). With chargpt imported, the Auto classes prefer the
    installed package's registered classes even under trust_remote_code=True, so `--trust_remote_code` loads the
    directory's classes explicitly."""
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    file = "tokenizer_config.json" if auto_name == "AutoTokenizer" else "config.json"
    path = os.path.join(model_dir, file)
    auto_map = {}
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            auto_map = json.load(f).get("auto_map") or {}
    reference = auto_map.get(auto_name)
    if isinstance(reference, (list, tuple)):  # AutoTokenizer: [slow, fast]
        reference = next((r for r in reference if r), None)
    if not reference:
        raise ValueError(
            f"--trust_remote_code: {model_dir} carries no code for {auto_name} (no auto_map entry in {file}). Drop "
            f"--trust_remote_code to use the installed chargpt's classes."
        )
    return get_class_from_dynamic_module(reference, model_dir)


def _auto_load(auto_class, model_dir, what: str, trust_remote_code: bool):
    """auto_class.from_pretrained(model_dir) (the directory's own class with `trust_remote_code`), with loading
    failures turned into one error that names the directory and the likely fix."""
    try:
        if trust_remote_code:
            return remote_class(model_dir, auto_class.__name__).from_pretrained(model_dir, trust_remote_code=True)
        return auto_class.from_pretrained(model_dir, trust_remote_code=False)
    except (ValueError, OSError, KeyError) as err:
        raise ValueError(
            f"Could not load {what} in {model_dir}: {err}\nIf this directory carries its own code (an auto_map in "
            f"config.json or tokenizer_config.json), pass --trust_remote_code to run that code."
        ) from err


def detect_task(config) -> str:
    """'causal-lm' or 'sequence-classification' from config.architectures (default: causal LM)."""
    architectures = getattr(config, "architectures", None) or []
    if any(a.endswith(_ARCHITECTURE_SUFFIX["sequence-classification"]) for a in architectures):
        return "sequence-classification"
    return "causal-lm"


def _check_task(model_dir, config, task: str):
    architectures = getattr(config, "architectures", None) or []
    suffix = _ARCHITECTURE_SUFFIX.get(task)
    if suffix is None:
        return
    if not architectures:
        logger.warning("%s does not record its architecture; assuming it holds a %s model.", model_dir, task)
    elif not any(a.endswith(suffix) for a in architectures):
        needed = "a causal language model" if task == "causal-lm" else "a model fine-tuned for sequence classification"
        raise ValueError(
            f"{model_dir} holds {', '.join(architectures)}, but this command needs {needed} (*{suffix}). Loading it "
            f"anyway would use a randomly initialised head."
        )


_TOKENIZER_FILES = ("vocab.json", "tokenizer.json")
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def load_tokenizer(model_dir, trust_remote_code: bool = False):
    model_dir = check_model_dir(model_dir)
    if not any(os.path.isfile(os.path.join(model_dir, name)) for name in _TOKENIZER_FILES):
        raise ValueError(
            f"{model_dir} has no tokenizer vocabulary ({' or '.join(_TOKENIZER_FILES)}): without it every character "
            f"would read as <unk>. Copy the tokenizer files the model was trained with into the directory (e.g. "
            f"tokenizer.save_pretrained({model_dir!r}))."
        )
    return _auto_load(AutoTokenizer, model_dir, "the tokenizer", trust_remote_code)


def check_model_and_tokenizer(model, tokenizer, model_dir) -> None:
    """Refuse a model directory whose parts do not fit together: a tokenizer with more tokens than the model has
    embeddings, or weights holding NaN or infinite values. Both would give wrong answers without an error."""
    if hasattr(model, "get_input_embeddings"):
        rows = model.get_input_embeddings().num_embeddings
    else:  # an int8 export
        rows = model.config.vocab_size
    if len(tokenizer) > rows:
        raise ValueError(
            f"{model_dir}: the tokenizer has {len(tokenizer)} tokens but the model has embeddings for only {rows} "
            f"(config vocab_size {model.config.vocab_size}), so the tokenizer is not the one the model was trained "
            f"with. Put the model's own tokenizer files in the directory."
        )
    if isinstance(model, torch.nn.Module):
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise ValueError(
                    f"{model_dir}: weight {name} holds NaN or infinite values, so every output would be garbage (a "
                    f"diverged or damaged checkpoint). Use an earlier checkpoint, or retrain with a lower learning "
                    f"rate."
                )


def load_model_and_tokenizer(model_dir, task: str = "causal-lm", device: str = "cpu", dtype: str = "auto",
                             compile: bool = False, trust_remote_code: bool = False):
    """`load_model` and `load_tokenizer`, with the directory checked as a whole (`check_model_and_tokenizer`)."""
    tokenizer = load_tokenizer(model_dir, trust_remote_code=trust_remote_code)
    model = load_model(model_dir, task=task, device=device, dtype=dtype, compile=compile,
                       trust_remote_code=trust_remote_code)
    check_model_and_tokenizer(model, tokenizer, model_dir)
    return model, tokenizer


def load_model(model_dir, task: str = "causal-lm", device: str = "cpu", dtype: str = "auto",
               compile: bool = False, trust_remote_code: bool = False):
    """A model ready for inference: a PyTorch CharGPT (Auto classes; `trust_remote_code` runs the directory's own
    code) or, for an int8 export, `chargpt.quantization.load_int8(model_dir)`. `task` is 'causal-lm',
    'sequence-classification' or 'base' (the decoder alone, from any head's checkpoint, for embeddings).
    `device`/`dtype`/`compile` are the GPU path (e.g. cuda, float16, torch.compile); CPU float32 is the default."""
    from .quantization import is_int8_export, load_int8

    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}.")
    config = load_config(model_dir, trust_remote_code)
    model_dir = str(model_dir)
    if is_int8_export(model_dir):
        if device not in ("auto", "cpu") or dtype not in ("auto", "float32") or compile:
            raise ValueError("An int8 export runs on CPU with ONNX Runtime: drop --device, --dtype and --compile.")
        model = load_int8(model_dir)
        if task != "base" and model.task != task:
            raise ValueError(f"{model_dir} is an int8 export of a {model.task} model; this command needs {task}.")
        return model
    _check_task(model_dir, config, task)
    if not any(os.path.isfile(os.path.join(model_dir, name)) for name in _WEIGHT_FILES):
        raise ValueError(
            f"{model_dir} has no weights ({_WEIGHT_FILES[0]}); loading it would give a randomly initialised model. "
            f"Copy the weights in, or save the model again with save_pretrained."
        )
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    verbosity = hf_logging.get_verbosity()
    if task == "base":  # the head's weights are expected to be left out; don't warn about them
        hf_logging.set_verbosity_error()
    auto_class = _AUTO_CLASSES[task]
    if trust_remote_code:
        auto_class = remote_class(model_dir, auto_class.__name__)
    try:
        model = auto_class.from_pretrained(model_dir, trust_remote_code=trust_remote_code, dtype=torch_dtype)
    except Exception as err:  # safetensors and torch raise their own types for truncated or corrupted files
        raise ValueError(
            f"Could not load the model weights in {model_dir}: {type(err).__name__}: {err}. The weight file may be "
            f"truncated or damaged: copy it again, or save the model again with save_pretrained."
        ) from err
    finally:
        hf_logging.set_verbosity(verbosity)
    model = model.to(torch_device).eval()
    if compile:
        # dynamic=True: one graph for every sequence length instead of a recompilation per prompt length.
        model.forward = torch.compile(model.forward, dynamic=True)
    return model


# ----------------------------------------------------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------------------------------------------------


def sampling_kwargs(temperature=None, top_k=None, top_p=None, repetition_penalty=None, max_new_tokens=None,
                    do_sample=None) -> dict:
    """generate() keyword arguments from the CLI's sampling flags; unset flags keep the model's generation_config.
    temperature 0 means greedy decoding."""
    kwargs = {}
    if temperature is not None:
        if temperature < 0:
            raise ValueError(f"--temperature must be >= 0 (0 = greedy), got {temperature}.")
        if temperature == 0:
            kwargs["do_sample"] = False
        else:
            kwargs.update(temperature=temperature, do_sample=True)
    if top_k is not None:
        if top_k < 0:
            raise ValueError(f"--top_k must be >= 0 (0 = off), got {top_k}.")
        kwargs["top_k"] = top_k
    if top_p is not None:
        if not 0 < top_p <= 1:
            raise ValueError(f"--top_p must be in (0, 1], got {top_p}.")
        kwargs["top_p"] = top_p
    if repetition_penalty is not None:
        if repetition_penalty <= 0:
            raise ValueError(f"--repetition_penalty must be > 0 (1 = off), got {repetition_penalty}.")
        kwargs["repetition_penalty"] = repetition_penalty
    if max_new_tokens is not None:
        if max_new_tokens < 1:
            raise ValueError(f"--max_new_tokens must be >= 1, got {max_new_tokens}.")
        kwargs["max_new_tokens"] = max_new_tokens
    if do_sample is not None and "do_sample" not in kwargs:
        kwargs["do_sample"] = do_sample
    return kwargs


def effective_max_new_tokens(model, kwargs: dict) -> int:
    """max_new_tokens from the kwargs or the model's generation_config (64 if neither says), checked against the
    context: generation needs at least one prompt token, so max_new_tokens < n_positions. A default that does not
    fit (a model with a tiny context) is lowered to half the context; a value the caller asked for is an error."""
    generation_config = getattr(model, "generation_config", None)
    n_positions = model.config.n_positions
    value = kwargs.get("max_new_tokens")
    if value is None:
        value = getattr(generation_config, "max_new_tokens", None) or 64
        if value > n_positions // 2:
            logger.warning("The default max_new_tokens=%d leaves little room in the %d-token context; using %d.",
                           value, n_positions, n_positions // 2)
            value = max(1, n_positions // 2)
    if value >= n_positions:
        raise ValueError(f"max_new_tokens ({value}) must be below the model's context length n_positions="
                         f"{n_positions}, since prompt + reply must fit in it.")
    return value


def encode(tokenizer, text: str, add_bos: bool = True) -> list[int]:
    """Token ids of `text` (after <bos>), without transformers' "longer than the maximum length" warning: callers
    here cut over-long inputs themselves, deliberately."""
    ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))
    return ([tokenizer.bos_token_id] if add_bos and tokenizer.bos_token_id is not None else []) + ids


@dataclass
class Generation:
    prompt: str
    samples: list[str]
    prompt_tokens_dropped: int = 0  # tokens cut from the front of an over-long prompt


@torch.no_grad()
def generate_texts(model, tokenizer, prompts: list[str], num_return_sequences: int = 1, **kwargs) -> list[Generation]:
    """Continue each prompt (after <bos>) `num_return_sequences` times. A prompt longer than n_positions -
    max_new_tokens keeps its most recent tokens; `prompt_tokens_dropped` says how many went."""
    if num_return_sequences < 1:
        raise ValueError(f"--num_return_sequences must be >= 1, got {num_return_sequences}.")
    max_new = effective_max_new_tokens(model, kwargs)
    budget = model.config.n_positions - max_new
    results = []
    for prompt in prompts:
        ids = torch.tensor([encode(tokenizer, prompt)])  # (1, T), starts with <bos>
        dropped = max(0, ids.shape[1] - budget)
        if dropped:
            ids = torch.cat([ids[:, :1], ids[:, 1 + dropped:]], dim=1)  # keep <bos> and the most recent tokens
        out = model.generate(
            ids.to(model.device), attention_mask=torch.ones_like(ids).to(model.device),
            num_return_sequences=num_return_sequences, **{**kwargs, "max_new_tokens": max_new},
        )
        samples = [tokenizer.decode(row[ids.shape[1]:], skip_special_tokens=True) for row in out]
        results.append(Generation(prompt, samples, dropped))
    return results


# ----------------------------------------------------------------------------------------------------------------------
# Classification and embeddings
# ----------------------------------------------------------------------------------------------------------------------


def _batches(tokenizer, texts: list[str], batch_size: int, max_length: int):
    """Right-padded batches in order of length (less padding), yielding (indices, input_ids, mask, truncated)."""
    if batch_size < 1:
        raise ValueError(f"--batch_size must be >= 1, got {batch_size}.")
    encoded = [encode(tokenizer, t) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        rows = [encoded[i][:max_length] for i in idx]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        yield idx, ids, mask, [len(encoded[i]) > max_length for i in idx]


def label_names(config) -> list[str]:
    id2label = getattr(config, "id2label", None) or {}
    return [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(config.num_labels)]


@torch.no_grad()
def classify_texts(model, tokenizer, texts: list[str], batch_size: int = 32) -> list[dict]:
    """One dict per text, in input order: label, label_id, score (probability of that label), probabilities
    (label -> probability), truncated (text longer than the context; its first n_positions tokens were used).
    Multi-label models use sigmoids (and add `labels`, those >= 0.5); regression models give `score` only."""
    check_known_characters(tokenizer, texts)
    names = label_names(model.config)
    problem = getattr(model.config, "problem_type", None)
    results = [None] * len(texts)
    for idx, ids, mask, truncated in _batches(tokenizer, texts, batch_size, model.config.n_positions):
        logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits.float().cpu()
        for row, i in enumerate(idx):
            results[i] = _label_row(logits[row], names, problem, truncated[row])
    return results


def _label_row(logits: torch.Tensor, names: list[str], problem, truncated: bool) -> dict:
    if problem == "regression" or len(names) == 1 and problem is None:
        return {"label": "", "label_id": None, "score": float(logits[0]), "probabilities": {}, "truncated": truncated}
    probs = logits.sigmoid() if problem == "multi_label_classification" else logits.softmax(-1)
    best = int(probs.argmax())
    row = {"label": names[best], "label_id": best, "score": float(probs[best]),
           "probabilities": {n: float(p) for n, p in zip(names, probs)}, "truncated": truncated}
    if problem == "multi_label_classification":
        row["labels"] = [n for n, p in zip(names, probs) if p >= 0.5]
    return row


def check_known_characters(tokenizer, texts: list[str]) -> None:
    """Refuse a text none of whose characters is in the vocabulary: the model would see only <unk> and still answer,
    so the answer would say nothing about the text."""
    unk = tokenizer.unk_token_id
    for n, text in enumerate(texts, start=1):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if ids and unk is not None and all(i == unk for i in ids):
            raise ValueError(
                f"Text {n} ({text[:30]!r}) has no character the model's vocabulary knows (all {len(ids)} read as "
                f"<unk>), so any answer about it would be meaningless. Remove it, or use a model trained on such text."
            )


@torch.no_grad()
def embed_texts(model, tokenizer, texts: list[str], batch_size: int = 32) -> torch.Tensor:
    """(N, n_embd) L2-normalised masked-mean embeddings (`model.embed`), in input order, float32 on CPU."""
    if not hasattr(model, "embed"):
        raise ValueError(f"{type(model).__name__} has no embed() method; load a CharGPT model.")
    check_known_characters(tokenizer, texts)
    out = [None] * len(texts)
    for idx, ids, mask, _ in _batches(tokenizer, texts, batch_size, model.config.n_positions):
        vectors = model.embed(ids.to(model.device), attention_mask=mask.to(model.device)).float().cpu()
        for row, i in enumerate(idx):
            out[i] = vectors[row]
    return torch.stack(out) if out else torch.empty(0, model.config.n_embd)


def cosine_similarity(model, tokenizer, text_a: str, text_b: str) -> float:
    a, b = embed_texts(model, tokenizer, [text_a, text_b])
    return float(a @ b)  # both unit length


def most_similar(model, tokenizer, query: str, candidates: list[str], top_k: int = 5,
                 batch_size: int = 32) -> list[tuple[int, float]]:
    """The `top_k` candidates closest to `query` by cosine similarity: (index into candidates, score), best first."""
    if top_k < 1:
        raise ValueError(f"--top_k must be >= 1, got {top_k}.")
    if not candidates:
        raise ValueError("There are no candidate texts to compare with.")
    query_vec = embed_texts(model, tokenizer, [query])[0]
    scores = embed_texts(model, tokenizer, candidates, batch_size) @ query_vec
    best = scores.topk(min(top_k, len(candidates)))
    return [(int(i), float(s)) for s, i in zip(best.values, best.indices)]


# ----------------------------------------------------------------------------------------------------------------------
# Reading inputs and writing outputs
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class TextRecord:
    row: int  # 1-based: line number for text files, data row for CSV (header excluded), line for JSON lines
    text: str | None  # None when the row has no usable text; `error` says why
    error: str = ""
    fields: dict = field(default_factory=dict)  # all columns of a CSV / JSON-lines row


def _format(path: str) -> str:
    lower = path.lower()
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith(".tsv"):
        return "tsv"
    if lower.endswith((".jsonl", ".json")):
        return "jsonl"
    return "text"


def read_records(path, text_column: str | None = None) -> list[TextRecord]:
    """Texts from a file: plain text (one per line), CSV/TSV with a header, or JSON lines (one object per line),
    the last two read from `text_column` (default "text"). Every row comes back; empty ones carry an `error` instead
    of text, so callers can count and report them. A missing column raises ValueError listing the columns there are."""
    path = str(path)
    if not os.path.isfile(path):
        raise ValueError(f"Input file {path!r} does not exist.")
    kind = _format(path)
    if kind == "text" and text_column is not None:
        raise ValueError(f"--text_column applies to CSV, TSV and JSON-lines files; {path} is read as plain text, "
                         f"one text per line (name it *.csv, *.tsv or *.jsonl to read columns).")
    with open(path, encoding="utf-8-sig", newline="") as f:  # utf-8-sig: drop a byte-order mark at the start
        if kind == "text":
            return [make_record(n, line.rstrip("\r\n")) for n, line in enumerate(f, start=1)]
        if kind == "jsonl":
            return _read_jsonl(f, path, text_column or "text")
        return _read_csv(f, path, text_column or "text", "\t" if kind == "tsv" else ",")


def make_record(row: int, text, fields=None) -> TextRecord:
    """A TextRecord for `text`, or one with error 'empty text' when nothing visible is left of it (whitespace,
    byte-order marks and other invisible characters only: the tokenizer would read it as an empty string)."""
    text = "" if text is None else str(text)
    if not normalize_text(text).strip():
        return TextRecord(row, None, "empty text", fields or {})
    return TextRecord(row, text, "", fields or {})


def _read_csv(f, path, column, delimiter) -> list[TextRecord]:
    reader = csv.DictReader(f, delimiter=delimiter)
    if not reader.fieldnames:
        raise ValueError(f"{path} is empty: a CSV file needs a header row naming its columns.")
    if column not in reader.fieldnames:
        raise ValueError(f"{path} has no column {column!r}; its columns are: {', '.join(reader.fieldnames)}. "
                         f"Choose the text column with --text_column.")
    return [make_record(n, row.get(column), row) for n, row in enumerate(reader, start=1)]


def _read_jsonl(f, path, column) -> list[TextRecord]:
    records = []
    for n, line in enumerate(f, start=1):
        if not line.strip():
            records.append(TextRecord(n, None, "empty line"))
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} line {n} is not valid JSON ({err.msg}); expected one JSON object per line.")
        if not isinstance(obj, dict):
            raise ValueError(f"{path} line {n} is a JSON {type(obj).__name__}; expected an object per line.")
        if column not in obj:
            raise ValueError(f"{path} line {n} has no key {column!r}; its keys are: {', '.join(obj) or '(none)'}. "
                             f"Choose the text column with --text_column.")
        records.append(make_record(n, obj[column], obj))
    return records


def write_rows(rows: list[dict], path: str | None, columns: list[str] | None = None, fmt: str | None = None) -> str:
    """Write rows as CSV or JSON lines (chosen by `fmt` or the file name; default JSON lines) to `path` atomically,
    or return the text when `path` is None."""
    fmt = fmt or ("csv" if path and path.lower().endswith(".csv") else "jsonl")
    buffer = io.StringIO()
    if fmt == "csv":
        columns = columns or list(dict.fromkeys(k for row in rows for k in row))
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    elif fmt == "jsonl":
        for row in rows:
            buffer.write(json.dumps(row, ensure_ascii=False) + "\n")
    else:
        raise ValueError(f"Unknown output format {fmt!r}; use csv or jsonl.")
    if path is not None:
        atomic_write_text(path, buffer.getvalue())
    return buffer.getvalue()


def atomic_write_text(path, text: str):
    """Write a file through a temporary sibling and a rename, so a crash never leaves half a file."""
    path = os.path.abspath(str(path))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_stale_staging(output_dir) -> list[str]:
    """Remove the staging folders (`.NAME.tmp-PID-*`, and their `.old` backups) that an interrupted or killed earlier
    publish/export of `output_dir` left beside it, when the process that made them is gone; a leftover without a
    process id (older chargpt) is reported, not removed. Returns what it removed."""
    output_dir = os.path.abspath(str(output_dir))
    parent, name = os.path.dirname(output_dir), os.path.basename(output_dir)
    removed = []
    for leftover in sorted(glob.glob(os.path.join(glob.escape(parent), f".{glob.escape(name)}.tmp-*"))):
        pid = os.path.basename(leftover)[len(name) + 6 :].split("-")[0]
        if not pid.isdigit():
            logger.warning("%s looks like a staging folder left by an interrupted run; remove it if no chargpt "
                           "command is writing %s.", leftover, output_dir)
        elif not _pid_alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)
            removed.append(leftover)
            logger.warning("Removed %s, left by an interrupted earlier run (process %s).", leftover, pid)
    return removed


def _check_replaceable(output_dir: str, source, overwrite: bool) -> None:
    """Refuse destinations whose replacement would lose something: the source model itself or anything holding it,
    a non-empty directory without `overwrite`, or (even with it) a directory that is not a flat folder of files as
    publish and export write them."""
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"{output_dir} exists and is not a directory.")
    if source is not None:
        source = os.path.realpath(str(source))
        real_out = os.path.realpath(output_dir)
        if real_out == source or source.startswith(real_out + os.sep):
            raise ValueError(
                f"output_dir {output_dir} is the model directory {source} or contains it; replacing it would delete "
                f"the model. Choose an output_dir outside the model directory."
            )
    if not os.path.isdir(output_dir) or not os.listdir(output_dir):
        return
    if not overwrite:
        raise ValueError(f"{output_dir} already exists and is not empty; pass --overwrite to replace it.")
    foreign = [n for n in os.listdir(output_dir)
               if os.path.islink(os.path.join(output_dir, n)) or not os.path.isfile(os.path.join(output_dir, n))]
    if foreign:
        raise ValueError(
            f"--overwrite replaces {output_dir} as a whole, but it holds folders or links ({', '.join(sorted(foreign)[:5])}"
            f"), so it is not an earlier publish or export output. Choose a new output_dir, or move them first."
        )


@contextlib.contextmanager
def atomic_output_dir(output_dir, overwrite: bool = False, source=None):
    """Yield a temporary directory beside `output_dir`; on success it replaces `output_dir` (which must be absent or
    empty unless `overwrite`, and must not be or contain `source`), on failure or interruption it is removed.
    Readers never see a half-written directory; leftovers of killed earlier runs are cleaned first."""
    output_dir = os.path.abspath(str(output_dir))
    _check_replaceable(output_dir, source, overwrite)
    parent = os.path.dirname(output_dir)
    os.makedirs(parent, exist_ok=True)
    clean_stale_staging(output_dir)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(output_dir)}.tmp-{os.getpid()}-", dir=parent)
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_umask())
        if os.path.isdir(output_dir):
            backup = staging + ".old"
            os.rename(output_dir, backup)
            os.rename(staging, output_dir)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.rename(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


__all__ = [
    "TASKS",
    "load_model",
    "load_tokenizer",
    "load_model_and_tokenizer",
    "check_model_and_tokenizer",
    "check_known_characters",
    "remote_class",
    "clean_stale_staging",
    "load_config",
    "detect_task",
    "resolve_device",
    "resolve_dtype",
    "sampling_kwargs",
    "effective_max_new_tokens",
    "generate_texts",
    "encode",
    "Generation",
    "classify_texts",
    "label_names",
    "embed_texts",
    "cosine_similarity",
    "most_similar",
    "read_records",
    "TextRecord",
    "make_record",
    "write_rows",
    "atomic_write_text",
    "atomic_output_dir",
]
