"""`chargpt publish`: turn a trained CharGPT directory into one a user can upload to the Hugging Face Hub as it is.

The published directory holds the modeling/configuration/tokenizer code with an `auto_map` for every Auto class (so
it loads with `trust_remote_code=True` where chargpt is not installed), config.json, model.safetensors, the tokenizer
files with the chat template, generation_config.json (causal LMs) and a model card README.md rendered from
chargpt/templates/modelcard_template.md: Hub metadata (language, license, library_name, pipeline_tag, tags, datasets,
metrics, model-index with the measured results), architecture table, training data and settings, evaluation results
and curves from the training output, usage, limitations and, for chat models, three sample conversations of at least
ten turns produced by the chat session. The directory is built in a temporary sibling and checked (the card parses
back with the expected metadata; the model loads in a fresh Python that cannot import chargpt and gives the same
logits) before it replaces `output_dir`.
"""

import datetime
import glob
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Literal

import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from transformers import set_seed

from .chat import ChatSession, chat_loop
from .export.native import check_native, choose_target, write_native
from .files import atomic_output_dir
from .loading import detect_task, load_config, load_model_and_tokenizer


logger = logging.getLogger(__name__)

TEMPLATE_PATH = os.path.join(os.path.dirname(__file__), "templates", "modelcard_template.md")
MIN_SCRIPT_TURNS = 5  # user turns per sample conversation: with the replies, at least ten turns

# Three everyday conversations (six user turns each) for the card's samples; written for this package.
BUILTIN_CHAT_SCRIPTS = [
    ["你好！", "今天天气怎么样？", "我想去公园散步，你要一起吗？",
     "你平时喜欢做什么？", "最近有没有看什么好电影？", "好的，下次见！"],
    ["我饿了，晚饭吃什么好呢？", "你喜欢吃辣的吗？", "我觉得火锅最好吃了。",
     "你会做饭吗？", "周末我们一起去吃烤鸭吧。", "谢谢你的建议！"],
    ["最近工作好累啊。", "你觉得怎么才能放松一下？", "我打算周末去爬山。",
     "你去过哪些地方旅游？", "明年我想去云南看看。", "那我们到时候再聊吧。"],
]

# Licence ids the Hub accepts in card metadata (the common ones; others: use "other" with license_name/link).
KNOWN_LICENSES = {
    "apache-2.0", "mit", "openrail", "bigscience-openrail-m", "creativeml-openrail-m", "bigcode-openrail-m",
    "cc0-1.0", "cc-by-2.0", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0", "cc-by-sa-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0",
    "cc-by-nc-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0", "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0",
    "cc-by-nc-sa-4.0", "gpl", "gpl-2.0", "gpl-3.0", "lgpl", "lgpl-2.1", "lgpl-3.0", "agpl-3.0", "bsd", "bsd-2-clause",
    "bsd-3-clause", "mpl-2.0", "epl-2.0", "afl-3.0", "artistic-2.0", "unlicense", "wtfpl", "odc-by", "odbl", "other",
    "unknown",
}
_PIPELINE_TAGS = {"causal-lm": "text-generation", "sequence-classification": "text-classification"}
_SKIPPED_RESULT_KEYS = ("runtime", "samples_per_second", "steps_per_second", "epoch", "samples",
                        "model_preparation_time", "step", "total_flos")


@dataclass
class PublishArguments:
    output_dir: str = field(metadata={"help": "Directory to write (second positional argument)."})
    training_dir: str | None = field(default=None, metadata={
        "help": "Training output with trainer_state.json, eval_results.json/test_results.json, training_args.json "
                "and *.png curves (default: the model directory; its newest checkpoint-* as a fallback)."})
    model_name: str | None = field(default=None, metadata={"help": "Name in the card (default: output_dir's name)."})
    repo_id: str | None = field(default=None, metadata={"help": "Hub id used in the card's code (user/name)."})
    description: str | None = field(default=None, metadata={"help": "A paragraph introducing the model."})
    license: str = field(default="apache-2.0", metadata={"help": "Hub licence id of the weights."})
    language: str = field(default="zh", metadata={"help": "Language code for the card metadata."})
    datasets: list[str] = field(default_factory=list, metadata={
        "help": "Hub ids of the training datasets (e.g. thu-coai/lccc), for the card metadata."})
    dataset_name: str | None = field(default=None, metadata={
        "help": "Readable name of the evaluation data in model-index (default: the first --datasets, or 'custom')."})
    training_data: str | None = field(default=None, metadata={"help": "A sentence or two describing the data."})
    tags: list[str] = field(default_factory=list, metadata={"help": "Extra tags for the card."})
    chat_scripts: list[str] = field(default_factory=list, metadata={
        "help": f"Files of user turns (one per line, >= {MIN_SCRIPT_TURNS}) for the sample conversations; default: "
                f"three built-in scripts of six turns."})
    seed: int = field(default=0, metadata={"help": "Sampling seed of the sample conversations."})
    card_template: str | None = field(default=None, metadata={"help": "A Jinja model-card template of your own."})
    format: Literal["remote-code", "transformers"] = field(default="remote-code", metadata={
        "help": "remote-code (default): CharGPT's own classes, with their code, for every option (mean pooling, "
                "embeddings); loads with trust_remote_code=True. transformers: the native export (Qwen3 or GPT-2), no "
                "code, for transformers without remote code, transformers serve, vLLM and SGLang; refuses options "
                "those classes cannot express."})
    overwrite: bool = field(default=False, metadata={"help": "Replace output_dir if it exists."})
    verify_load: bool = field(default=True, metadata={
        "help": "Load the result in a fresh Python without chargpt (trust_remote_code) and compare its logits."})
    validate_online: bool = field(default=False, metadata={
        "help": "Also validate the card with the Hub's API (needs network); the offline checks always run."})


def publish(model_dir, args: PublishArguments, trust_remote_code: bool = False) -> dict:
    """Write the hub-ready directory; returns {"files": [...], "notes": [warnings], "verify": {...}}."""
    from .int8 import is_int8_export

    if is_int8_export(model_dir):
        raise ValueError(f"{model_dir} is an int8 export; publish the float model it came from.")
    if os.path.realpath(args.output_dir) == os.path.realpath(model_dir):
        raise ValueError("output_dir must differ from the model directory.")
    if args.license not in KNOWN_LICENSES:
        raise ValueError(f"--license {args.license!r} is not a Hub licence id; use one of e.g. apache-2.0, mit, "
                         f"cc-by-4.0, cc-by-nc-4.0, or 'other'.")
    scripts = _chat_scripts(args.chat_scripts)
    template = args.card_template or TEMPLATE_PATH
    if not os.path.isfile(template):
        raise ValueError(f"Model card template {template!r} not found.")
    task = detect_task(load_config(model_dir, trust_remote_code))
    model, tokenizer = load_model_and_tokenizer(model_dir, task=task, trust_remote_code=trust_remote_code)
    native = choose_target(model.config, task) if args.format == "transformers" else None  # refuse before writing
    notes = []
    training = collect_training_info(args.training_dir or model_dir, task, notes)
    with atomic_output_dir(args.output_dir, overwrite=args.overwrite, source=model_dir) as staging:
        if native is None:
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            _check_hub_files(staging, task)
        else:
            write_native(model, tokenizer, native, task, staging)
            native_checks = check_native(model, tokenizer, staging, task)
        curves = _copy_curves([args.training_dir, model_dir, training.get("state_dir")], staging, training, notes)
        conversations = _sample_conversations(model, tokenizer, scripts, args.seed) if task == "causal-lm" else []
        card_path = os.path.join(staging, "README.md")
        card = build_card(model, tokenizer, task, args, training, curves, conversations, template, native)
        card.save(card_path)
        validate_card(card_path, task, len(training["eval_rows"]), args.validate_online)
        if native is not None:
            verify = native_checks  # loaded back by transformers' own classes and compared as it was written
        else:
            verify = verify_load(staging, task, model, tokenizer) if args.verify_load else {}
        files = sorted(os.listdir(staging))
    if not args.datasets:
        notes.append("No --datasets given: the card's metadata names no training dataset.")
    return {"files": files, "notes": notes, "verify": verify}


def _chat_scripts(paths: list[str]) -> list[list[str]]:
    if not paths:
        return BUILTIN_CHAT_SCRIPTS
    scripts = []
    for path in paths:
        if not os.path.isfile(path):
            raise ValueError(f"Chat script {path!r} does not exist.")
        with open(path, encoding="utf-8-sig") as f:
            lines = [line.rstrip("\r\n") for line in f if line.strip()]
        turns = [line for line in lines if not line.strip().startswith("/")]
        if len(turns) < MIN_SCRIPT_TURNS:
            raise ValueError(f"Chat script {path} has {len(turns)} user turns; the model card's sample conversations "
                             f"need at least {MIN_SCRIPT_TURNS} (ten turns with the replies).")
        scripts.append(lines)
    return scripts


def _check_hub_files(directory: str, task: str):
    """The files a Hub user needs, and an auto_map entry for every Auto class, or an error naming what is missing."""
    needed = ["config.json", "model.safetensors", "configuration_chargpt.py", "modeling_chargpt.py",
              "tokenization_chargpt.py", "tokenizer_config.json", "vocab.json"]
    if task == "causal-lm":
        needed.append("generation_config.json")
    missing = [n for n in needed if not os.path.isfile(os.path.join(directory, n))]
    with open(os.path.join(directory, "config.json"), encoding="utf-8") as f:
        auto_map = json.load(f).get("auto_map", {})
    missing += [f"config.json auto_map[{c}]" for c in ("AutoConfig", "AutoModel", "AutoModelForCausalLM",
                                                       "AutoModelForSequenceClassification") if c not in auto_map]
    with open(os.path.join(directory, "tokenizer_config.json"), encoding="utf-8") as f:
        tokenizer_config = json.load(f)
    if "AutoTokenizer" not in tokenizer_config.get("auto_map", {}):
        missing.append("tokenizer_config.json auto_map[AutoTokenizer]")
    if not (os.path.isfile(os.path.join(directory, "chat_template.jinja")) or tokenizer_config.get("chat_template")):
        missing.append("chat template")
    if missing:
        raise ValueError(
            f"The saved directory lacks {', '.join(missing)}. Is the model a CharGPT class registered for the Auto "
            f"classes (import chargpt before loading it)?"
        )


# ----------------------------------------------------------------------------------------------------------------------
# Training information
# ----------------------------------------------------------------------------------------------------------------------

_TRAINING_ARGS_KEYS = (
    "learning_rate", "lr_scheduler_type", "warmup_ratio", "warmup_steps", "weight_decay", "adam_beta1", "adam_beta2",
    "max_grad_norm", "per_device_train_batch_size", "gradient_accumulation_steps", "num_train_epochs", "max_steps",
    "block_size", "max_seq_length", "seed", "bf16", "fp16",
)


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err


def _find_trainer_state(directory: str) -> str | None:
    """trainer_state.json in the directory, else in its newest checkpoint-N."""
    if os.path.isfile(os.path.join(directory, "trainer_state.json")):
        return directory
    checkpoints = [d for d in glob.glob(os.path.join(directory, "checkpoint-*"))
                   if os.path.isfile(os.path.join(d, "trainer_state.json")) and d.rsplit("-", 1)[-1].isdigit()]
    return max(checkpoints, key=lambda d: int(d.rsplit("-", 1)[-1])) if checkpoints else None


def collect_training_info(directory: str, task: str, notes: list[str]) -> dict:
    """Settings, evaluation rows (split, metric, value) and log history from a Trainer output directory."""
    if not os.path.isdir(directory):
        raise ValueError(f"Training directory {directory!r} does not exist.")
    info = {"state_dir": _find_trainer_state(directory), "settings": [], "eval_rows": [], "baseline_rows": [],
            "log_history": [], "data_rows": []}
    if info["state_dir"] is None:
        notes.append(f"No trainer_state.json in {directory}: the card has no training log or settings from it.")
    else:
        state = _read_json(os.path.join(info["state_dir"], "trainer_state.json"))
        info["log_history"] = state.get("log_history", [])
        info["settings"] += _state_settings(state, info["log_history"])
    args_path = os.path.join(directory, "training_args.json")
    if os.path.isfile(args_path):
        args = _read_json(args_path)
        info["settings"] += [(k, args[k]) for k in _TRAINING_ARGS_KEYS if isinstance(args.get(k), (int, float, str))]
    train_results = os.path.join(directory, "train_results.json")
    if os.path.isfile(train_results):
        results = _read_json(train_results)
        info["settings"] += [(label, _round(results[key])) for key, label in (
            ("train_samples", "training examples"), ("train_loss", "mean training loss")) if key in results]
    summary = os.path.join(directory, "data_summary.json")
    info["data_rows"] = _data_summary_rows(_read_json(summary)) if os.path.isfile(summary) else []
    heldout, info["baseline_rows"] = heldout_rows(directory)
    info["eval_rows"] = _eval_rows(directory, task, info["log_history"]) + heldout
    if not info["eval_rows"]:
        notes.append(f"No evaluation results (eval_results.json, test_results.json or eval entries in the log) in "
                     f"{directory}: the card has no model-index.")
    return info


def _data_summary_rows(summary: dict) -> list[tuple]:
    """(part, text) rows from the training scripts' data_summary.json: counts per split, sources, cleaning."""
    rows = []
    for key, value in summary.items():
        if isinstance(value, dict):
            pieces = [f"{k}: {v}" for k, v in value.items()
                      if isinstance(v, (int, float, str)) and not isinstance(v, bool) and k != "from_cache"]
            pieces += [f"{k}: {v}" for k, v in value.items() if isinstance(v, bool)] if key == "cleaning" else []
            if isinstance(value.get("dropped"), dict) and value["dropped"]:
                pieces.append("dropped: " + ", ".join(f"{k} {v}" for k, v in value["dropped"].items()))
            if isinstance(value.get("sources"), list) and value["sources"]:
                pieces.append("sources: " + ", ".join(os.path.basename(str(s)) for s in value["sources"]))
            if pieces:
                rows.append((key, "; ".join(pieces)))
        elif isinstance(value, (int, float, str)) and not isinstance(value, bool):
            rows.append((key, value))
        elif isinstance(value, list) and value and all(isinstance(v, (str, int)) for v in value):
            rows.append((key, ", ".join(map(str, value))))
    return rows


def _state_settings(state: dict, history: list[dict]) -> list[tuple]:
    rows = [("optimizer steps", state.get("global_step")), ("epochs", _round(state.get("epoch"))),
            ("batch size per device", state.get("train_batch_size"))]
    losses = [e["loss"] for e in history if "loss" in e]
    rates = [e["learning_rate"] for e in history if "learning_rate" in e]
    runtime = [e["train_runtime"] for e in history if "train_runtime" in e]
    if losses:
        rows.append(("final training loss", _round(losses[-1])))
    if rates:
        rows.append(("peak learning rate", f"{max(rates):.3g}"))
    if runtime:
        rows.append(("training time", f"{runtime[-1] / 60:.1f} min"))
    return [(k, v) for k, v in rows if v is not None]


def _round(value, digits: int = 4):
    return round(value, digits) if isinstance(value, float) else value


def _eval_rows(directory: str, task: str, history: list[dict]) -> list[tuple]:
    """(split, metric, value) from eval_results.json / test_results.json (or all_results.json), else the last eval
    entry of the log. A causal LM's loss also gives its perplexity (exp of the mean token loss) if none is recorded."""
    sources = {}
    all_results = os.path.join(directory, "all_results.json")
    for split, name, prefix in (("validation", "eval_results.json", "eval_"), ("test", "test_results.json", "test_")):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            sources[split] = _read_json(path)
        elif os.path.isfile(all_results):
            picked = {k: v for k, v in _read_json(all_results).items() if k.startswith(prefix)}
            if picked:
                sources[split] = picked
    if not sources:
        evals = [e for e in history if "eval_loss" in e]
        if evals:
            sources["validation"] = evals[-1]
    rows = []
    for split, results in sources.items():
        metrics = {}
        for key, value in results.items():
            name = key.removeprefix("eval_").removeprefix("test_")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or name.endswith(_SKIPPED_RESULT_KEYS):
                continue
            if not math.isfinite(value):
                continue
            metrics[name] = value
        if task == "causal-lm" and "loss" in metrics and "perplexity" not in metrics and metrics["loss"] < 50:
            metrics["perplexity"] = math.exp(metrics["loss"])
        rows += [(split, name, round(float(v), 4)) for name, v in metrics.items()]
    return rows


def heldout_rows(directory: str) -> tuple[list[tuple], list[tuple]]:
    """Rows from the held-out report that train_scripts/run_evaluation.py writes (heldout_evaluation.json), if the
    directory has one: the model's (split, metric, value) on the fixed sentiment and cross-domain tests, LCCC-base
    held-out perplexity and its replies to the held-out posts; and apart, the baselines measured in the same run
    (split, baseline, metric, value): the TF-IDF floor and the human references. Only the model's rows go into the
    model-index, where every result is read as the model's."""
    path = os.path.join(directory, "heldout_evaluation.json")
    if not os.path.isfile(path):
        return [], []
    report, rows, baselines = _read_json(path), [], []
    for task in ("sentiment", "cross_domain"):
        if task in report:
            split = report[task]["split"]
            test = "ChnSentiCorp balanced held-out test" if task == "sentiment" else (
                f"cross-domain test (held-out category {split.get('holdout_category', '?')})")
            rows += [(test, metric, _round(report[task]["model"][metric])) for metric in ("accuracy", "macro_f1")]
            if "tfidf_logreg" in report[task]:
                floor = report[task]["tfidf_logreg"]
                baselines += [(test, "TF-IDF character 1-3-grams + logistic regression, same training files", metric,
                               _round(floor[metric])) for metric in ("accuracy", "macro_f1") if metric in floor]
    if "perplexity" in report:
        rows.append(("LCCC-base held-out dialogues", "perplexity", _round(report["perplexity"]["model"]["perplexity"])))
    if "replies" in report:
        replies = report["replies"]
        split = f"replies to {replies['model']['n']} held-out posts"
        metrics = ("distinct_1", "distinct_2", "repetition_share")
        rows += [(split, metric, _round(replies["model"][metric])) for metric in metrics]
        if "references" in replies:
            baselines += [(split, "the human replies to the same posts", metric,
                           _round(replies["references"][metric])) for metric in metrics]
    return rows, baselines


def _copy_curves(directories: list, staging: str, training: dict, notes: list[str]) -> list[str]:
    """Copy the training curves (*.png) of the training/model directories; draw them from the log if there are none
    (matplotlib permitting)."""
    copied = []
    for directory in directories:
        for path in sorted(glob.glob(os.path.join(directory, "*.png"))) if directory else []:
            name = os.path.basename(path)
            if os.path.islink(path) or not os.path.isfile(path):
                # only the directory's own regular files: a link may point anywhere (a secret, another project)
                notes.append(f"Skipped {path}: a symbolic link or not a regular file; copy the image itself there.")
                continue
            if name not in copied:
                shutil.copyfile(path, os.path.join(staging, name))
                copied.append(name)
    if copied:
        return copied
    points = [e for e in training["log_history"] if "loss" in e and "step" in e]
    if len(points) < 2:
        notes.append("No training curves: no *.png in the training directory and too little log history to draw one.")
        return []
    try:
        _plot_history(training["log_history"], os.path.join(staging, "training_curves.png"))
    except ImportError:
        notes.append("No training curves: no *.png found and matplotlib is not installed (pip install "
                     "'chargpt[plots]') to draw them from trainer_state.json.")
        return []
    return ["training_curves.png"]


def _plot_history(history: list[dict], path: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for key, label in (("loss", "training loss"), ("eval_loss", "validation loss")):
        points = [(e["step"], e[key]) for e in history if key in e and "step" in e]
        if points:
            ax.plot(*zip(*points), marker="." if key == "eval_loss" else None, label=label)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------------------------------
# The card
# ----------------------------------------------------------------------------------------------------------------------


def _sample_conversations(model, tokenizer, scripts: list[list[str]], seed: int) -> list[dict]:
    """Run the chat session on each script, with the model's own sampling settings and a fixed seed."""
    from .chat import format_transcript

    conversations = []
    for k, script in enumerate(scripts, start=1):
        set_seed(seed + k)
        lines = iter(script)
        session = ChatSession(model, tokenizer, catch_interrupts=False)  # Ctrl-C stops publish, no partial card
        records = chat_loop(session, lambda: next(lines, None), lambda text: None)
        turns = 2 * sum(1 for r in records if "turn" in r)
        if turns < 2 * MIN_SCRIPT_TURNS:
            raise ValueError(f"Sample conversation {k} has only {turns} turns (some script lines were empty or "
                             f"commands); give at least {MIN_SCRIPT_TURNS} user messages.")
        conversations.append({"title": f"Conversation {k}", "turns": turns, "max_new_tokens": session.max_new_tokens,
                              "text": format_transcript(records, "text").rstrip("\n")})
    return conversations


def _architecture_options(config) -> dict:
    """The architecture fields of a config, with the course design's values for a config written (or by remote code)
    from before they existed."""
    defaults = {"position_embedding_type": "learned", "rope_theta": 10000.0, "normalization": "layernorm",
                "gated_mlp": False, "qk_norm": False}
    return {name: getattr(config, name, default) for name, default in defaults.items()}


def architecture_summary(config) -> str:
    """The decoder's design in a few words for the card's first paragraph, e.g. 'pre-LayerNorm, learned positions'."""
    options = _architecture_options(config)
    parts = ["pre-RMSNorm" if options["normalization"] == "rmsnorm" else "pre-LayerNorm",
             "rotary positions" if options["position_embedding_type"] == "rope" else "learned positions"]
    if options["gated_mlp"]:
        act = config.activation_function
        parts.append("SwiGLU feed-forward" if act == "silu" else f"gated {act} feed-forward")
    if options["qk_norm"]:
        parts.append("QK-norm")
    return ", ".join(parts)


def _architecture_rows(model, task: str, tokenizer) -> list[tuple]:
    c = model.config
    options = _architecture_options(c)
    params = sum(p.numel() for p in model.parameters())
    rotary = options["position_embedding_type"] == "rope"
    rows = [
        ("Parameters", f"{params:,} ({params / 1e6:.2f} M)"),
        ("Layers", c.n_layer), ("Attention heads", c.n_head), ("Hidden size", c.n_embd),
        ("Feed-forward size", c.n_inner), ("Context length (characters)", c.n_positions),
        ("Vocabulary (characters and 5 special tokens)", c.vocab_size), ("Activation", c.activation_function),
        ("Positions", f"rotary (theta {options['rope_theta']:g})" if rotary else "learned"),
        ("Normalisation", "RMSNorm" if options["normalization"] == "rmsnorm" else "LayerNorm"),
        ("Gated feed-forward", "yes" if options["gated_mlp"] else "no"),
        ("QK-norm", "yes" if options["qk_norm"] else "no"),
    ]
    if task == "causal-lm":
        rows.append(("Input/output embeddings tied", "yes" if c.tie_word_embeddings else "no"))
    else:
        from .tasks import label_names

        rows.append(("Labels", ", ".join(f"{i}: {n}" for i, n in enumerate(label_names(c)))))
    if getattr(tokenizer, "normalization", None):
        rows.append(("Unicode normalisation", tokenizer.normalization))
    return rows


def build_card(model, tokenizer, task: str, args: PublishArguments, training: dict, curves: list[str],
               conversations: list[dict], template: str, native=None) -> ModelCard:
    """The model card. `native`: the export target (chargpt.export.native.Target) when the folder is a native
    checkpoint, None for CharGPT's own classes with their code."""
    name = args.model_name or os.path.basename(os.path.abspath(args.output_dir))
    pipeline_tag = _PIPELINE_TAGS[task]
    dataset_id = args.datasets[0] if args.datasets else "custom"
    eval_results = [
        EvalResult(task_type=pipeline_tag, dataset_type=dataset_id, dataset_name=args.dataset_name or dataset_id,
                   dataset_split=split, metric_type=metric, metric_value=value)
        for split, metric, value in training["eval_rows"]
    ]
    tags = list(dict.fromkeys(["chargpt", "character-level", "gpt", "chinese"]
                              + (["conversational"] if task == "causal-lm" else []) + list(args.tags)))
    card_data = ModelCardData(
        language=args.language, license=args.license, library_name="transformers", pipeline_tag=pipeline_tag,
        tags=tags, datasets=args.datasets or None, eval_results=eval_results or None,
        model_name=name if eval_results else None,  # model-index needs a name; without results, no extra key
        metrics=sorted({metric for _, metric, _ in training["eval_rows"]}) or None,
    )
    gen = getattr(model, "generation_config", None)
    from . import __version__

    card = ModelCard.from_template(
        card_data, template_path=template,
        title=name,
        intro=args.description,
        is_lm=task == "causal-lm",
        auto_class="AutoModelForCausalLM" if task == "causal-lm" else "AutoModelForSequenceClassification",
        native_class=native.classes[task] if native is not None else None,
        engines=list(native.engines) if native is not None else ["transformers (trust_remote_code=True)",
                                                                  "chargpt"],
        repo=args.repo_id or name,
        architecture=architecture_summary(model.config),
        pooling=("the mean of its characters' hidden states" if getattr(model.config, "classifier_pooling", "last")
                 == "mean" else "the hidden state of its last character"),
        arch_rows=_architecture_rows(model, task, tokenizer),
        weights_mb=f"{sum(p.numel() * p.element_size() for p in model.parameters()) / 1e6:.1f}",
        data_description=args.training_data,
        dataset_ids=args.datasets,
        data_rows=training["data_rows"],
        train_rows=training["settings"],
        eval_table=training["eval_rows"],
        baseline_table=training.get("baseline_rows", []),
        curves=curves,
        conversations=conversations,
        sampling=_sampling_summary(gen, conversations[0]["max_new_tokens"]) if conversations else "",
        reply_tokens=min(64, model.config.n_positions // 2),
        seed=args.seed,
        context=model.config.n_positions,
        chargpt_version=__version__,
        date=datetime.date.today().isoformat(),
    )
    # Jinja blocks leave runs of blank lines behind; one blank line between blocks is what Markdown needs.
    return ModelCard(re.sub(r"\n{3,}", "\n\n", str(card)))


def _sampling_summary(gen, max_new_tokens: int) -> str:
    """The sampling settings of the card's conversations, in words."""
    parts = [f"temperature {gen.temperature}", f"top-p {gen.top_p}", f"top-k {gen.top_k or 'off'}"]
    if gen.repetition_penalty and gen.repetition_penalty != 1.0:
        parts.append(f"repetition penalty {gen.repetition_penalty}")
    if gen.no_repeat_ngram_size:
        parts.append(f"no repeated {gen.no_repeat_ngram_size}-grams")
    return ", ".join(parts) + f", at most {max_new_tokens} characters per reply"


def validate_card(path: str, task: str, n_eval_rows: int, online: bool = False):
    """Parse the card back and check the metadata the Hub relies on. `ModelCard.validate()` posts the card to the
    Hub's API, which needs network; it runs only when `online`."""
    card = ModelCard.load(path)
    data = card.data
    problems = [f"metadata '{key}' is missing" for key in ("language", "license", "library_name", "pipeline_tag",
                                                             "tags") if not getattr(data, key, None)]
    if data.library_name != "transformers":
        problems.append(f"library_name is {data.library_name!r}, not 'transformers'")
    if data.pipeline_tag != _PIPELINE_TAGS[task]:
        problems.append(f"pipeline_tag is {data.pipeline_tag!r}, expected {_PIPELINE_TAGS[task]!r}")
    if data.license not in KNOWN_LICENSES:
        problems.append(f"license {data.license!r} is not a Hub licence id")
    if len(data.eval_results or []) != n_eval_rows:
        problems.append(f"model-index holds {len(data.eval_results or [])} results, expected {n_eval_rows}")
    if problems:
        raise ValueError(f"The model card {path} failed validation: " + "; ".join(problems))
    if online:
        try:
            card.validate()
        except ValueError:
            raise  # the Hub rejected the card; its message says why
        except Exception as err:  # no network, offline mode, HTTP errors: say so instead of a traceback
            raise ValueError(f"Could not validate the card online ({type(err).__name__}: {err}); the offline checks "
                             f"passed. Run without --validate_online where the Hub is unreachable.") from err
    return card


# ----------------------------------------------------------------------------------------------------------------------
# Loading check in a Python that cannot import chargpt
# ----------------------------------------------------------------------------------------------------------------------

_VERIFY_SCRIPT = r"""
import json, sys
sys.modules["chargpt"] = None  # the directory must load with the code it carries, not an installed chargpt
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
path, task, text = sys.argv[1], sys.argv[2], sys.argv[3]
auto = AutoModelForCausalLM if task == "causal-lm" else AutoModelForSequenceClassification
tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
model = auto.from_pretrained(path, trust_remote_code=True).eval()
out = {"model_class": type(model).__name__, "model_module": type(model).__module__,
       "tokenizer_class": type(tokenizer).__name__}
with torch.no_grad():
    out["logits"] = model(**tokenizer(text, return_tensors="pt")).logits[0, -1].tolist()
    if task == "causal-lm":  # the card's usage snippet, greedily
        messages = [{"role": "user", "content": text}]
        inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                               return_dict=True)
        reply = model.generate(**inputs, max_new_tokens=8, do_sample=False)
        out["greedy_reply_ids"] = reply[0, inputs["input_ids"].shape[1]:].tolist()
print("VERIFY " + json.dumps(out))
"""

VERIFY_TEXT = "你好，今天天气很好。"


@torch.no_grad()
def verify_load(directory: str, task: str, model, tokenizer, timeout: int = 300) -> dict:
    """Load `directory` with trust_remote_code in a fresh Python where `import chargpt` fails and check that it
    gives the same last-token logits (and, for a causal LM, the same greedy chat reply) as `model`."""
    with tempfile.TemporaryDirectory() as modules_cache:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": modules_cache,
               "TOKENIZERS_PARALLELISM": "false"}
        proc = subprocess.run([sys.executable, "-c", _VERIFY_SCRIPT, directory, task, VERIFY_TEXT], env=env,
                              cwd=modules_cache, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("VERIFY ")]
    if proc.returncode != 0 or not lines:
        raise ValueError(f"The published directory does not load without chargpt:\n{proc.stderr[-3000:]}")
    result = json.loads(lines[-1][len("VERIFY "):])
    expected = model(**tokenizer(VERIFY_TEXT, return_tensors="pt")).logits[0, -1]
    diff = float((torch.tensor(result["logits"]) - expected.float()).abs().max())
    if diff > 1e-4:
        raise ValueError(f"The published model's logits differ from the source model's by {diff:.2e}.")
    result["max_abs_logit_diff"] = diff
    if task == "causal-lm":
        inputs = tokenizer.apply_chat_template([{"role": "user", "content": VERIFY_TEXT}], add_generation_prompt=True,
                                               return_tensors="pt", return_dict=True)
        reply = model.generate(**inputs, max_new_tokens=8, do_sample=False)[0, inputs["input_ids"].shape[1]:]
        if reply.tolist() != result["greedy_reply_ids"]:
            raise ValueError("The published model's greedy reply differs from the source model's.")
    del result["logits"]
    return result


__all__ = ["PublishArguments", "publish", "collect_training_info", "build_card", "validate_card", "verify_load",
           "architecture_summary", "BUILTIN_CHAT_SCRIPTS", "TEMPLATE_PATH"]
