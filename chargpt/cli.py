"""The `chargpt` command: use a trained CharGPT from the terminal.

    chargpt chat MODEL_DIR [--script FILE] [--transcript FILE] [sampling flags]
    chargpt generate MODEL_DIR "prompt" ... [--prompt_file FILE] [--num_return_sequences N]
    chargpt classify MODEL_DIR "text" ... [--input_file FILE --text_column COL] [--output FILE.csv|.jsonl]
    chargpt similarity MODEL_DIR "text a" "text b"  |  --query TEXT --candidates_file FILE [--top_k K]
    chargpt export MODEL_DIR OUTPUT --format transformers|gguf|int8 [--type f32|f16|q8_0]
    chargpt export-int8 MODEL_DIR OUTPUT_DIR [--eval_file FILE]
    chargpt publish MODEL_DIR OUTPUT_DIR [--training_dir DIR] [--datasets ...]
    chargpt serve MODEL_DIR [--host 127.0.0.1] [--port 8000]

Every subcommand is an `HfArgumentParser` over dataclass argument groups (as transformers' example scripts), so
`chargpt SUBCOMMAND args.json` reads the same arguments from a JSON file. Leading positional arguments are the model
directory, then the output directory (export-int8, publish) or texts (generate, classify, similarity). A model
directory is anything `save_pretrained` wrote (the training scripts, `publish`) or an int8 export; pass
`--trust_remote_code` to run the modeling code a directory carries instead of this package's.
"""

import argparse
import contextlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from transformers import HfArgumentParser, set_seed
from transformers.utils import logging as hf_logging

from . import __version__
from .chat import COMMANDS_HELP, ChatSession, chat_loop, format_transcript
from .files import atomic_write_text
from .loading import detect_task, load_config, load_model_and_tokenizer
from .publish import PublishArguments, publish
from .tasks import classify_texts, cosine_similarity, generate_texts, label_names, most_similar, sampling_kwargs
from .textio import make_record, read_records, write_rows


@dataclass
class ModelArguments:
    model_dir: str = field(
        metadata={
            "help": "Model directory (first positional argument): save_pretrained output, "
            "a `chargpt publish` directory or a `chargpt export-int8` directory."
        }
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={
            "help": "Run the modeling/tokenizer code stored in the directory (auto_map) instead of this package's."
        },
    )
    device: str = field(default="cpu", metadata={"help": "cpu, cuda, cuda:N or auto (CUDA when available)."})
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = field(
        default="auto", metadata={"help": "Weights dtype: auto is float16 on CUDA, float32 on CPU."}
    )
    compile: bool = field(default=False, metadata={"help": "Wrap the forward pass in torch.compile (GPU path)."})


@dataclass
class SamplingArguments:
    temperature: float | None = field(
        default=None,
        metadata={
            "help": "Sampling temperature; 0 = greedy. Default: the model's generation_config (0.7 for CharGPT)."
        },
    )
    top_k: int | None = field(default=None, metadata={"help": "Keep the k most likely tokens (0 = off)."})
    top_p: float | None = field(default=None, metadata={"help": "Nucleus sampling mass in (0, 1]."})
    repetition_penalty: float | None = field(default=None, metadata={"help": "> 1 discourages repeats (1 = off)."})
    max_new_tokens: int | None = field(
        default=None,
        metadata={"help": "Longest reply/continuation; must leave room for the prompt in the context (default 64)."},
    )
    seed: int | None = field(default=None, metadata={"help": "Random seed, for reproducible samples."})

    def generation_kwargs(self) -> dict:
        return sampling_kwargs(self.temperature, self.top_k, self.top_p, self.repetition_penalty, self.max_new_tokens)


@dataclass
class ChatArguments:
    script: str | None = field(
        default=None,
        metadata={
            "help": "Non-interactive: read the user's turns from this file, one per line (commands like /reset work). "
            "Without it, a piped (non-terminal) standard input is read the same way."
        },
    )
    transcript: str | None = field(
        default=None,
        metadata={"help": "Write the conversation here: JSON lines if the name ends in .jsonl/.json, else text."},
    )
    max_prompt_tokens: int | None = field(
        default=None,
        metadata={"help": "Keep the history within this many tokens (default: n_positions - max_new_tokens)."},
    )


@dataclass
class GenerateArguments:
    prompt: list[str] = field(default_factory=list, metadata={"help": "Prompts (also: positional after MODEL_DIR)."})
    prompt_file: str | None = field(
        default=None,
        metadata={"help": "More prompts: a text file (one per line) or CSV/JSON lines with --text_column."},
    )
    text_column: str | None = field(default=None, metadata={"help": "Column of --prompt_file (default: text)."})
    num_return_sequences: int = field(default=1, metadata={"help": "Samples per prompt."})
    output: str | None = field(default=None, metadata={"help": "Also write the samples to this .jsonl or .csv file."})


@dataclass
class ClassifyArguments:
    text: list[str] = field(default_factory=list, metadata={"help": "Texts (also: positional after MODEL_DIR)."})
    input_file: str | None = field(
        default=None,
        metadata={"help": "Texts to label: a text file (one per line), CSV/TSV with a header, or JSON lines."},
    )
    text_column: str | None = field(default=None, metadata={"help": "Column/key holding the text (default: text)."})
    batch_size: int = field(default=32, metadata={"help": "Texts per forward pass."})
    output: str | None = field(
        default=None,
        metadata={"help": "Write the labels here (.csv or .jsonl); default: JSON lines on standard output."},
    )


@dataclass
class SimilarityArguments:
    text: list[str] = field(
        default_factory=list,
        metadata={"help": "Two texts to compare (also: positional after MODEL_DIR); with --query, extra candidates."},
    )
    query: str | None = field(default=None, metadata={"help": "Find the candidates most similar to this text."})
    candidates_file: str | None = field(
        default=None,
        metadata={"help": "Candidates for --query: a text file (one per line) or CSV/JSON lines with --text_column."},
    )
    text_column: str | None = field(default=None, metadata={"help": "Column of --candidates_file (default: text)."})
    top_k: int = field(default=5, metadata={"help": "How many candidates to show."})
    batch_size: int = field(default=32, metadata={"help": "Texts per forward pass."})
    output: str | None = field(default=None, metadata={"help": "Also write the ranking to this .jsonl or .csv file."})


@dataclass
class ExportArguments:
    output_dir: str = field(metadata={"help": "Where to write the int8 export (second positional argument)."})
    overwrite: bool = field(default=False, metadata={"help": "Replace output_dir if it exists."})
    eval_file: str | None = field(
        default=None,
        metadata={
            "help": "Measure agreement with the float model on these texts (perplexity for a causal LM; accuracy for a "
            "classifier, with --label_column): a text file or CSV/JSON lines."
        },
    )
    text_column: str | None = field(default=None, metadata={"help": "Text column of --eval_file (default: text)."})
    label_column: str | None = field(default=None, metadata={"help": "Label column of --eval_file (classifiers)."})
    max_eval_texts: int = field(default=500, metadata={"help": "Use at most this many texts of --eval_file."})
    num_threads: int | None = field(default=None, metadata={"help": "ONNX Runtime threads for the checks."})


EXPORT_FORMATS = ("transformers", "gguf", "int8")


@dataclass
class FormatArguments:
    format: Literal[EXPORT_FORMATS] = field(
        metadata={
            "help": "transformers: a native checkpoint (Qwen3 for modern models, GPT-2 for course models) that loads "
            "without remote code in transformers, transformers serve, vLLM and SGLang; gguf: one file for "
            "llama.cpp and ollama (OUTPUT ends in .gguf); int8: the ONNX Runtime int8 export (as export-int8)."
        }
    )
    type: Literal["f32", "f16", "q8_0"] = field(
        default="f32",
        metadata={
            "help": "GGUF weight type: f32 (exact), f16 or q8_0 (8-bit blocks; smaller and faster in llama.cpp)."
        },
    )


@dataclass
class ServeArguments:
    host: str = field(
        default="127.0.0.1",
        metadata={
            "help": "Address to listen on. The default answers this machine only; 0.0.0.0 opens it to the network."
        },
    )
    port: int = field(default=8000, metadata={"help": "Port to listen on."})
    model_name: str | None = field(
        default=None, metadata={"help": "The model's name in the API (the `model` field; default: the folder's name)."}
    )
    max_queue: int = field(
        default=32, metadata={"help": "Requests that may wait for the model; more are answered 503 with Retry-After."}
    )
    log_level: str = field(default="info", metadata={"help": "uvicorn's log level (warning, info, debug)."})


# ----------------------------------------------------------------------------------------------------------------------
# Subcommands
# ----------------------------------------------------------------------------------------------------------------------


def _load(model_args: ModelArguments, task: str):
    return load_model_and_tokenizer(
        model_args.model_dir,
        task=task,
        device=model_args.device,
        dtype=model_args.dtype,
        compile=model_args.compile,
        trust_remote_code=model_args.trust_remote_code,
    )


def _write(text: str):
    sys.stdout.write(text)
    sys.stdout.flush()


def _warn(text: str):
    print(text, file=sys.stderr)


def run_chat(model_args: ModelArguments, sampling: SamplingArguments, chat_args: ChatArguments) -> int:
    kwargs = sampling.generation_kwargs()  # validate flags before the (slow) model load
    model, tokenizer = _load(model_args, "causal-lm")
    if sampling.seed is not None:
        set_seed(sampling.seed)
    session = ChatSession(model, tokenizer, kwargs, chat_args.max_prompt_tokens)
    records: list[dict] = []
    stack = contextlib.ExitStack()
    with stack:
        if chat_args.script is not None:
            if not os.path.isfile(chat_args.script):
                raise ValueError(f"--script {chat_args.script!r} does not exist.")
            lines = iter(stack.enter_context(open(chat_args.script, encoding="utf-8-sig")))
            read_line, interactive = (lambda: next(lines, None)), False
        elif sys.stdin is not None and sys.stdin.isatty():
            with contextlib.suppress(ImportError):
                import readline  # noqa: F401  (line editing and history for input())
            read_line, interactive = (lambda: input("User: ")), True
        else:
            read_line, interactive = (lambda: sys.stdin.readline() or None), False
        if interactive:
            _write(f"Chatting with {model_args.model_dir}. {COMMANDS_HELP}\n")
        try:
            chat_loop(session, read_line, _write, echo_user=not interactive, records=records)
        finally:
            if chat_args.transcript:
                fmt = "jsonl" if chat_args.transcript.lower().endswith((".jsonl", ".json")) else "text"
                atomic_write_text(chat_args.transcript, format_transcript(records, fmt))
    if interactive:
        _write("Bye.\n")
    return 0


def _texts_from(args_texts: list[str], path: str | None, text_column: str | None, what: str):
    """(records to use, records skipped for being empty) from the command line or a file (rows numbered as there,
    so outputs map back to the input; the two are not mixed, which would make row numbers ambiguous)."""
    if args_texts and path is not None:
        raise ValueError(f"Give the {what} either on the command line or in a file, not both.")
    if path is not None:
        records = read_records(path, text_column)
    else:
        if text_column is not None:
            raise ValueError("--text_column applies to an input file.")
        records = [make_record(i, text) for i, text in enumerate(args_texts, start=1)]
    if not records:
        raise ValueError(f"No {what} given: pass them after the model directory or in a file.")
    return [r for r in records if r.text is not None], [r for r in records if r.text is None]


def _report_skipped(skipped, what: str):
    if skipped:
        rows = ", ".join(str(r.row) for r in skipped[:20]) + (" ..." if len(skipped) > 20 else "")
        _warn(f"Skipped {len(skipped)} empty {what} (rows {rows}).")


def run_generate(model_args: ModelArguments, sampling: SamplingArguments, gen_args: GenerateArguments) -> int:
    kwargs = sampling.generation_kwargs()
    used, skipped = _texts_from(gen_args.prompt, gen_args.prompt_file, gen_args.text_column, "prompts")
    model, tokenizer = _load(model_args, "causal-lm")
    if sampling.seed is not None:
        set_seed(sampling.seed)
    results = generate_texts(model, tokenizer, [r.text for r in used], gen_args.num_return_sequences, **kwargs)
    rows = []
    for record, result in zip(used, results):
        _write(f"=== prompt (row {record.row}): {result.prompt}\n")
        if result.prompt_tokens_dropped:
            _warn(
                f"Prompt at row {record.row} was too long: kept its last part, dropping "
                f"{result.prompt_tokens_dropped} characters."
            )
        for j, sample in enumerate(result.samples, start=1):
            _write(f"--- sample {j}\n{result.prompt}{sample}\n")
            rows.append(
                {
                    "row": record.row,
                    "prompt": result.prompt,
                    "sample": j,
                    "continuation": sample,
                    "prompt_chars_dropped": result.prompt_tokens_dropped,
                }
            )
    _report_skipped(skipped, "prompts")
    if gen_args.output:
        write_rows(rows, gen_args.output)
    return 0


def run_classify(model_args: ModelArguments, cls_args: ClassifyArguments) -> int:
    used, skipped = _texts_from(cls_args.text, cls_args.input_file, cls_args.text_column, "texts")
    model, tokenizer = _load(model_args, "sequence-classification")
    results = classify_texts(model, tokenizer, [r.text for r in used], cls_args.batch_size) if used else []
    names = label_names(model.config)
    fmt = "csv" if cls_args.output and cls_args.output.lower().endswith(".csv") else "jsonl"
    by_row = {id(r): res for r, res in zip(used, results)}
    rows = []
    for record in sorted(used + skipped, key=lambda r: r.row):
        rows.append(_classification_row(record, by_row.get(id(record)), names, fmt))
    columns = ["row", "text", "label", "score"] + [f"prob_{n}" for n in names] + ["truncated", "error"]
    text = write_rows(rows, cls_args.output, columns if fmt == "csv" else None, fmt)
    if cls_args.output is None:
        _write(text)
    summary = [f"Labelled {len(used)} texts"]
    if skipped:
        errors = ", ".join(sorted({r.error for r in skipped}))
        summary.append(f"{len(skipped)} empty rows kept with an error field ({errors})")
    truncated = sum(bool(r["truncated"]) for r in results)
    if truncated:
        summary.append(
            f"{truncated} texts longer than the context were cut to their first {model.config.n_positions} tokens"
        )
    _warn("; ".join(summary) + ".")
    return 0


def _classification_row(record, result, names, fmt) -> dict:
    row = {
        "row": record.row,
        "text": record.text if record.text is not None else "",
        "label": "",
        "score": "",
        "truncated": False,
        "error": record.error,
    }
    if result is None:
        return row if fmt == "csv" else {**row, "probabilities": {}}
    row.update(label=result["label"], score=round(result["score"], 6), truncated=result["truncated"])
    probs = {n: round(p, 6) for n, p in result["probabilities"].items()}
    if fmt == "csv":
        row.update({f"prob_{n}": probs.get(n, "") for n in names})
    else:
        row["probabilities"] = probs
        if "labels" in result:
            row["labels"] = result["labels"]
    return row


def run_similarity(model_args: ModelArguments, sim_args: SimilarityArguments) -> int:
    if sim_args.query is None:
        if sim_args.candidates_file is not None or len(sim_args.text) != 2:
            raise ValueError(
                "Give exactly two texts to compare, or --query TEXT with candidates (texts after the "
                "model directory, or --candidates_file)."
            )
        empty = [i + 1 for i, t in enumerate(sim_args.text) if not t.strip()]
        if empty:
            raise ValueError(f"Text {empty[0]} is empty; there is nothing to compare.")
        model, tokenizer = _load(model_args, "base")
        _write(f"{cosine_similarity(model, tokenizer, *sim_args.text):.6f}\n")
        return 0
    if not sim_args.query.strip():
        raise ValueError("--query is empty.")
    used, skipped = _texts_from(sim_args.text, sim_args.candidates_file, sim_args.text_column, "candidates")
    if not used:
        raise ValueError("All candidate texts are empty.")
    model, tokenizer = _load(model_args, "base")
    ranking = most_similar(
        model, tokenizer, sim_args.query, [r.text for r in used], sim_args.top_k, sim_args.batch_size
    )
    rows = [
        {"rank": k, "score": round(score, 6), "row": used[i].row, "text": used[i].text}
        for k, (i, score) in enumerate(ranking, start=1)
    ]
    for row in rows:
        _write(f"{row['rank']}\t{row['score']:.4f}\trow {row['row']}\t{row['text']}\n")
    _report_skipped(skipped, "candidates")
    if sim_args.output:
        write_rows(rows, sim_args.output)
    return 0


def run_export(model_args: ModelArguments, export_args: ExportArguments) -> int:
    from .int8 import export_int8, is_int8_export

    if os.path.realpath(export_args.output_dir) == os.path.realpath(model_args.model_dir):
        raise ValueError("output_dir must differ from the model directory.")
    if is_int8_export(model_args.model_dir):
        raise ValueError(f"{model_args.model_dir} is already an int8 export; export the float model.")
    if model_args.device not in ("cpu", "auto") or model_args.dtype not in ("auto", "float32") or model_args.compile:
        raise ValueError("export-int8 reads the model in float32 on CPU; drop --device, --dtype and --compile.")
    task = detect_task(load_config(model_args.model_dir, model_args.trust_remote_code))
    model, tokenizer = _load(ModelArguments(model_args.model_dir, model_args.trust_remote_code), task)
    texts, labels = _eval_data(export_args, model.config, task)
    info = export_int8(
        model,
        tokenizer,
        export_args.output_dir,
        source=model_args.model_dir,
        overwrite=export_args.overwrite,
        num_threads=export_args.num_threads,
        eval_texts=texts,
        eval_labels=labels,
    )
    _write(
        f"Wrote {export_args.output_dir} ({task}): int8 weights {info['int8_weights_bytes'] / 1e6:.2f} MB, "
        f"{info['size_ratio']:.3f} of the float32 weights ({info['source_weights_bytes'] / 1e6:.2f} MB).\n"
        f"Check against the float model (int8): {info['checks']['int8']}\n"
    )
    if info["checks"]["int8"]["top1_agreement"] < 0.9:
        _warn(
            "Warning: the int8 model's top-1 predictions differ from the float model's on more than 10% of the "
            "probe positions; check the export with --eval_file on real text before using it."
        )
    if "evaluation" in info:
        _write(f"Agreement on {export_args.eval_file}: {info['evaluation']}\n")
    _write(f"Load it with chargpt.int8.load_int8({export_args.output_dir!r}) or any chargpt command.\n")
    return 0


def run_export_format(model_args: ModelArguments, export_args: ExportArguments, format_args: FormatArguments) -> int:
    """`chargpt export`: one door to every export format."""
    if format_args.format == "int8":
        return run_export(model_args, export_args)
    if format_args.type != "f32" and format_args.format != "gguf":
        raise ValueError(
            f"--type {format_args.type} applies to --format gguf only; a {format_args.format} export "
            f"keeps the model's float32 weights."
        )
    if export_args.eval_file is not None:
        raise ValueError(
            "--eval_file is for --format int8; the transformers and gguf exports check themselves "
            "against the model as they are written."
        )
    if model_args.device not in ("cpu", "auto") or model_args.dtype not in ("auto", "float32") or model_args.compile:
        raise ValueError("export reads the model in float32 on CPU; drop --device, --dtype and --compile.")
    output = export_args.output_dir
    if format_args.format == "gguf" and not output.endswith(".gguf"):
        raise ValueError(f"--format gguf writes one file: name it with .gguf (got {output!r}).")
    if format_args.format == "transformers" and output.endswith(".gguf"):
        raise ValueError(f"--format transformers writes a folder, not {output!r}; did you mean --format gguf?")
    task = detect_task(load_config(model_args.model_dir, model_args.trust_remote_code))
    model, tokenizer = _load(ModelArguments(model_args.model_dir, model_args.trust_remote_code), task)
    if format_args.format == "transformers":
        from .export import export_native

        info = export_native(model, tokenizer, output, source=model_args.model_dir, overwrite=export_args.overwrite)
        _write(
            f"Wrote {output}: {info['class']} (transformers' own {info['target']} class; no remote code).\n"
            f"Check against the CharGPT model: {info['checks']}\n"
            f"Load it with AutoModelFor{'CausalLM' if task == 'causal-lm' else 'SequenceClassification'}"
            f".from_pretrained({output!r}) and AutoTokenizer; it runs in {', '.join(info['engines'])}.\n"
        )
        return 0
    from .export.gguf import export_gguf

    info = export_gguf(model, tokenizer, output, file_type=format_args.type, overwrite=export_args.overwrite)
    _write(
        f"Wrote {output}: llama.cpp's qwen3, {format_args.type}, {info['bytes'] / 1e6:.2f} MB "
        f"({info['size_ratio']:.3f} of float32).\nCheck against the CharGPT model: {info['checks']}\n"
        f"Run it with llama.cpp (llama-server -m {output} --jinja) or ollama (docs/export.md). llama.cpp does not "
        f"apply the tokenizer's normalisation: normalise texts with chargpt.normalize_text first.\n"
    )
    return 0


def _eval_data(export_args: ExportArguments, config, task: str):
    if export_args.eval_file is None:
        if export_args.label_column:
            raise ValueError("--label_column needs --eval_file.")
        return None, None
    records = [r for r in read_records(export_args.eval_file, export_args.text_column) if r.text is not None]
    records = records[: export_args.max_eval_texts]
    if not records:
        raise ValueError(f"{export_args.eval_file} has no non-empty texts.")
    if task != "sequence-classification" or export_args.label_column is None:
        return [r.text for r in records], None
    label2id = {str(k): int(v) for k, v in (getattr(config, "label2id", None) or {}).items()}
    labels = []
    for r in records:
        if export_args.label_column not in r.fields:
            raise ValueError(
                f"{export_args.eval_file} row {r.row} has no column {export_args.label_column!r}; "
                f"columns: {', '.join(r.fields)}."
            )
        value = str(r.fields[export_args.label_column]).strip()
        if value in label2id:
            labels.append(label2id[value])
        elif value.lstrip("-").isdigit() and 0 <= int(value) < config.num_labels:
            labels.append(int(value))
        else:
            raise ValueError(
                f"{export_args.eval_file} row {r.row}: label {value!r} is neither a label name "
                f"({', '.join(label2id)}) nor an id in [0, {config.num_labels})."
            )
    return [r.text for r in records], labels


def run_publish(model_args: ModelArguments, publish_args: PublishArguments) -> int:
    if model_args.device not in ("cpu", "auto") or model_args.dtype not in ("auto", "float32") or model_args.compile:
        raise ValueError("publish saves float32 weights from CPU; drop --device, --dtype and --compile.")
    report = publish(model_args.model_dir, publish_args, trust_remote_code=model_args.trust_remote_code)
    _write(f"Wrote {publish_args.output_dir}: {', '.join(report['files'])}\n")
    for line in report["notes"]:
        _warn(line)
    return 0


def run_serve(model_args: ModelArguments, serve_args: ServeArguments) -> int:
    from .serving import load_served_model
    from .serving.app import serve

    if model_args.compile:
        raise ValueError("chargpt serve does not compile the model; drop --compile.")
    served = load_served_model(
        model_args.model_dir, serve_args.model_name, model_args.trust_remote_code, model_args.device, model_args.dtype
    )
    _write(
        f"Serving {served.name} ({type(served.model).__name__}, context {served.context_length}) on "
        f"http://{serve_args.host}:{serve_args.port}/ : the chat page at /, the OpenAI API under /v1.\n"
    )
    serve(served, serve_args.host, serve_args.port, serve_args.max_queue, serve_args.log_level)
    return 0


# ----------------------------------------------------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class Command:
    run: Callable
    groups: tuple
    help: str
    positionals: tuple = ("model_dir",)  # names given by position; "*name" takes all remaining positionals


COMMANDS = {
    "chat": Command(
        run_chat,
        (ModelArguments, SamplingArguments, ChatArguments),
        "Talk with a causal LM in the terminal (or run a script of user turns).",
    ),
    "generate": Command(
        run_generate,
        (ModelArguments, SamplingArguments, GenerateArguments),
        "Continue prompts, several samples each.",
        ("model_dir", "*prompt"),
    ),
    "classify": Command(
        run_classify,
        (ModelArguments, ClassifyArguments),
        "Label texts with a sequence classifier, with probabilities.",
        ("model_dir", "*text"),
    ),
    "similarity": Command(
        run_similarity,
        (ModelArguments, SimilarityArguments),
        "Cosine similarity of sentence embeddings; nearest lines of a file.",
        ("model_dir", "*text"),
    ),
    "export": Command(
        run_export_format,
        (ModelArguments, ExportArguments, FormatArguments),
        "Export the model for other engines: a native transformers checkpoint, a GGUF file or int8.",
        ("model_dir", "output_dir"),
    ),
    "export-int8": Command(
        run_export,
        (ModelArguments, ExportArguments),
        "Write a dynamic int8 ONNX Runtime export for fast CPU inference.",
        ("model_dir", "output_dir"),
    ),
    "serve": Command(
        run_serve,
        (ModelArguments, ServeArguments),
        "Serve a chat model: an OpenAI-compatible API (/v1) and a chat page (/).",
    ),
    "publish": Command(
        run_publish,
        (ModelArguments, PublishArguments),
        "Write a hub-ready directory with code, weights, tokenizer and a model card.",
        ("model_dir", "output_dir"),
    ),
}


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, HfArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="chargpt", description="Use a trained CharGPT model. `chargpt COMMAND --help` shows a command's options."
    )
    parser.add_argument("--version", action="version", version=f"chargpt {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=HfArgumentParser)
    parsers = {}
    for name, command in COMMANDS.items():
        usage = " ".join(p.lstrip("*").upper() + (" ..." if p.startswith("*") else "") for p in command.positionals)
        parsers[name] = subparsers.add_parser(
            name,
            dataclass_types=command.groups,
            help=command.help,
            description=command.help,
            usage=f"chargpt {name} {usage} [options]  |  chargpt {name} ARGS.json",
        )
    return parser, parsers


def _positionals_to_options(argv: list[str], names: tuple) -> list[str]:
    """Rewrite leading positional arguments as the options they stand for (MODEL_DIR -> --model_dir MODEL_DIR)."""
    leading = []
    while len(leading) < len(argv) and not argv[len(leading)].startswith("-"):
        leading.append(argv[len(leading)])
    rest, options = argv[len(leading) :], []
    for name in names:
        if not leading:
            break
        if name.startswith("*"):
            options += [f"--{name[1:]}", *leading]
            leading = []
        else:
            options += [f"--{name}", leading.pop(0)]
    if leading:
        raise SystemExit(f"chargpt: error: unexpected argument(s) {' '.join(leading)}")
    return options + rest


def parse_command(argv: list[str]):
    """(Command, its dataclass instances) from a command line."""
    parser, parsers = build_parser()
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv or ["--help"])  # prints help or a usage error and exits
        parser.error(f"unknown command {argv[0]!r}")
    name, rest = argv[0], argv[1:]
    if len(rest) == 1 and rest[0].endswith(".json") and os.path.isfile(rest[0]):
        return COMMANDS[name], parsers[name].parse_json_file(os.path.abspath(rest[0]))
    return COMMANDS[name], parsers[name].parse_args_into_dataclasses(
        args=_positionals_to_options(rest, COMMANDS[name].positionals)
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_warning()
    command, args = parse_command(argv)
    name = argv[0]
    try:
        return command.run(*args)
    except (ValueError, ImportError, OSError) as err:
        print(f"chargpt {name}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nchargpt {name}: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
