"""The model card of a published directory: the sample conversations (the chat session on fixed scripts), the
training curves, the architecture table, the Hub metadata with the measured results, the card rendered from its Jinja
template and validated when read back."""

import datetime
import glob
import os
import re
import shutil
from functools import partial

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from transformers import set_seed

from .. import __version__
from ..chat import ChatSession, chat_loop, format_transcript
from ..tasks import label_names
from .arguments import MIN_SCRIPT_TURNS, PublishArguments


# The template ships inside the package (pyproject's package-data `templates/*`), beside this folder.
TEMPLATE_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "templates", "modelcard_template.md")

# Three everyday conversations (six user turns each) for the card's samples; written for this package.
BUILTIN_CHAT_SCRIPTS = [
    [
        "你好！",
        "今天天气怎么样？",
        "我想去公园散步，你要一起吗？",
        "你平时喜欢做什么？",
        "最近有没有看什么好电影？",
        "好的，下次见！",
    ],
    [
        "我饿了，晚饭吃什么好呢？",
        "你喜欢吃辣的吗？",
        "我觉得火锅最好吃了。",
        "你会做饭吗？",
        "周末我们一起去吃烤鸭吧。",
        "谢谢你的建议！",
    ],
    [
        "最近工作好累啊。",
        "你觉得怎么才能放松一下？",
        "我打算周末去爬山。",
        "你去过哪些地方旅游？",
        "明年我想去云南看看。",
        "那我们到时候再聊吧。",
    ],
]

# Licence ids the Hub accepts in card metadata (the common ones; others: use "other" with license_name/link).
KNOWN_LICENSES = {
    "apache-2.0",
    "mit",
    "openrail",
    "bigscience-openrail-m",
    "creativeml-openrail-m",
    "bigcode-openrail-m",
    "cc0-1.0",
    "cc-by-2.0",
    "cc-by-3.0",
    "cc-by-4.0",
    "cc-by-sa-3.0",
    "cc-by-sa-4.0",
    "cc-by-nc-2.0",
    "cc-by-nc-3.0",
    "cc-by-nc-4.0",
    "cc-by-nd-4.0",
    "cc-by-nc-nd-3.0",
    "cc-by-nc-nd-4.0",
    "cc-by-nc-sa-2.0",
    "cc-by-nc-sa-3.0",
    "cc-by-nc-sa-4.0",
    "gpl",
    "gpl-2.0",
    "gpl-3.0",
    "lgpl",
    "lgpl-2.1",
    "lgpl-3.0",
    "agpl-3.0",
    "bsd",
    "bsd-2-clause",
    "bsd-3-clause",
    "mpl-2.0",
    "epl-2.0",
    "afl-3.0",
    "artistic-2.0",
    "unlicense",
    "wtfpl",
    "odc-by",
    "odbl",
    "other",
    "unknown",
}
PIPELINE_TAGS = {"causal-lm": "text-generation", "sequence-classification": "text-classification"}


def read_chat_scripts(paths: list[str]) -> list[list[str]]:
    """The user turns of each chat script file (the built-in scripts when none is given); refuses a short script."""
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
            raise ValueError(
                f"Chat script {path} has {len(turns)} user turns; the model card's sample conversations "
                f"need at least {MIN_SCRIPT_TURNS} (ten turns with the replies)."
            )
        scripts.append(lines)
    return scripts


# ----------------------------------------------------------------------------------------------------------------------
# Sample conversations and training curves
# ----------------------------------------------------------------------------------------------------------------------


def sample_conversations(model, tokenizer, scripts: list[list[str]], seed: int) -> list[dict]:
    """Run the chat session on each script, with the model's own sampling settings and a fixed seed: the replies are
    sampled as `chargpt chat` samples them (through `chargpt.tasks.sample_replies`)."""
    conversations = []
    for k, script in enumerate(scripts, start=1):
        set_seed(seed + k)
        session = ChatSession(model, tokenizer, catch_interrupts=False)  # Ctrl-C stops publish, no partial card
        records = chat_loop(session, partial(next, iter(script), None), lambda text: None)
        turns = 2 * sum(1 for r in records if "turn" in r)
        if turns < 2 * MIN_SCRIPT_TURNS:
            raise ValueError(
                f"Sample conversation {k} has only {turns} turns (some script lines were empty or "
                f"commands); give at least {MIN_SCRIPT_TURNS} user messages."
            )
        conversations.append(
            {
                "title": f"Conversation {k}",
                "turns": turns,
                "max_new_tokens": session.max_new_tokens,
                "text": format_transcript(records, "text").rstrip("\n"),
            }
        )
    return conversations


def copy_curves(directories: list, staging: str, training: dict, notes: list[str]) -> list[str]:
    """Copy the training curves (*.png) of the training/model directories; draw them from the log as training does
    (`save_training_plots`) if there are none, matplotlib permitting."""
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
    from ..training.outputs import save_training_plots  # the training package (Trainer, peft) only when drawing

    drawn = save_training_plots(training["log_history"], staging)
    if not drawn:
        notes.append(
            "No training curves: no *.png found and matplotlib is not installed (pip install "
            "'chargpt[plots]') to draw them from trainer_state.json."
        )
    return [path.name for path in drawn]


# ----------------------------------------------------------------------------------------------------------------------
# The card
# ----------------------------------------------------------------------------------------------------------------------


def _architecture_options(config) -> dict:
    """The architecture fields of a config, with the course design's values for a config written (or by remote code)
    from before they existed."""
    defaults = {
        "position_embedding_type": "learned",
        "rope_theta": 10000.0,
        "normalization": "layernorm",
        "gated_mlp": False,
        "qk_norm": False,
    }
    return {name: getattr(config, name, default) for name, default in defaults.items()}


def architecture_summary(config) -> str:
    """The decoder's design in a few words for the card's first paragraph, e.g. 'pre-LayerNorm, learned positions'."""
    options = _architecture_options(config)
    parts = [
        "pre-RMSNorm" if options["normalization"] == "rmsnorm" else "pre-LayerNorm",
        "rotary positions" if options["position_embedding_type"] == "rope" else "learned positions",
    ]
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
        ("Layers", c.n_layer),
        ("Attention heads", c.n_head),
        ("Hidden size", c.n_embd),
        ("Feed-forward size", c.n_inner),
        ("Context length (characters)", c.n_positions),
        ("Vocabulary (characters and 5 special tokens)", c.vocab_size),
        ("Activation", c.activation_function),
        ("Positions", f"rotary (theta {options['rope_theta']:g})" if rotary else "learned"),
        ("Normalisation", "RMSNorm" if options["normalization"] == "rmsnorm" else "LayerNorm"),
        ("Gated feed-forward", "yes" if options["gated_mlp"] else "no"),
        ("QK-norm", "yes" if options["qk_norm"] else "no"),
    ]
    if task == "causal-lm":
        rows.append(("Input/output embeddings tied", "yes" if c.tie_word_embeddings else "no"))
    else:
        rows.append(("Labels", ", ".join(f"{i}: {n}" for i, n in enumerate(label_names(c)))))
    if getattr(tokenizer, "normalization", None):
        rows.append(("Unicode normalisation", tokenizer.normalization))
    return rows


def build_card(
    model,
    tokenizer,
    task: str,
    args: PublishArguments,
    training: dict,
    curves: list[str],
    conversations: list[dict],
    template: str,
    native=None,
) -> ModelCard:
    """The model card. `native`: the export target (chargpt.export.native.Target) when the folder is a native
    checkpoint, None for CharGPT's own classes with their code."""
    name = args.model_name or os.path.basename(os.path.abspath(args.output_dir))
    gen = getattr(model, "generation_config", None)
    card = ModelCard.from_template(
        _card_data(task, args, training, name),
        template_path=template,
        **_model_values(model, tokenizer, task, args, name, native),
        data_description=args.training_data,
        dataset_ids=args.datasets,
        data_rows=training["data_rows"],
        train_rows=training["settings"],
        eval_table=[(split, metric, value, _interval_text(ci)) for split, metric, value, ci in training["eval_rows"]],
        baseline_table=[(*row[:4], _interval_text(row[4])) for row in training.get("baseline_rows", [])],
        eval_intervals=any(row[3] for row in training["eval_rows"]),
        baseline_intervals=any(row[4] for row in training.get("baseline_rows", [])),
        interval_method=_interval_method(training.get("intervals")),
        curves=curves,
        conversations=conversations,
        sampling=_sampling_summary(gen, conversations[0]["max_new_tokens"]) if conversations else "",
        seed=args.seed,
        chargpt_version=__version__,
        date=datetime.date.today().isoformat(),
    )
    # Jinja blocks leave runs of blank lines behind; one blank line between blocks is what Markdown needs.
    return ModelCard(re.sub(r"\n{3,}", "\n\n", str(card)))


def _interval_text(interval) -> str:
    """`[low, high]` for a table cell, empty without an interval."""
    return f"[{interval[0]}, {interval[1]}]" if interval else ""


def _interval_method(settings: dict | None) -> str:
    """How the held-out report's intervals were computed, in words, for the note under the tables."""
    if not settings:
        return ""
    return (
        f"{settings['confidence']:.0%} {settings['method']} intervals over the test rows, dialogues or replies "
        f"({settings['resamples']} resamples, seed {settings['seed']})"
    )


def _card_data(task: str, args: PublishArguments, training: dict, name: str) -> ModelCardData:
    """The Hub metadata: language, licence, library and pipeline, tags, datasets, metrics and the model-index."""
    pipeline_tag = PIPELINE_TAGS[task]
    dataset_id = args.datasets[0] if args.datasets else "custom"
    eval_results = [
        EvalResult(
            task_type=pipeline_tag,
            dataset_type=dataset_id,
            dataset_name=args.dataset_name or dataset_id,
            dataset_split=split,
            metric_type=metric,
            metric_value=value,
        )
        for split, metric, value, _ in training["eval_rows"]
    ]
    tags = list(
        dict.fromkeys(
            ["chargpt", "character-level", "gpt", "chinese"]
            + (["conversational"] if task == "causal-lm" else [])
            + list(args.tags)
        )
    )
    return ModelCardData(
        language=args.language,
        license=args.license,
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        tags=tags,
        datasets=args.datasets or None,
        eval_results=eval_results or None,
        model_name=name if eval_results else None,  # model-index needs a name; without results, no extra key
        metrics=sorted({row[1] for row in training["eval_rows"]}) or None,
    )


def _model_values(model, tokenizer, task: str, args: PublishArguments, name: str, native) -> dict:
    """The template's variables about the model itself and how to load it."""
    is_lm = task == "causal-lm"
    mean_pooling = getattr(model.config, "classifier_pooling", "last") == "mean"
    return {
        "title": name,
        "intro": args.description,
        "is_lm": is_lm,
        "auto_class": "AutoModelForCausalLM" if is_lm else "AutoModelForSequenceClassification",
        "native_class": native.classes[task] if native is not None else None,
        "engines": list(native.engines) if native is not None else ["transformers (trust_remote_code=True)", "chargpt"],
        "repo": args.repo_id or name,
        "architecture": architecture_summary(model.config),
        "pooling": (
            "the mean of its characters' hidden states" if mean_pooling else "the hidden state of its last character"
        ),
        "arch_rows": _architecture_rows(model, task, tokenizer),
        "weights_mb": f"{sum(p.numel() * p.element_size() for p in model.parameters()) / 1e6:.1f}",
        "reply_tokens": min(64, model.config.n_positions // 2),
        "context": model.config.n_positions,
    }


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
    problems = [
        f"metadata '{key}' is missing"
        for key in ("language", "license", "library_name", "pipeline_tag", "tags")
        if not getattr(data, key, None)
    ]
    if data.library_name != "transformers":
        problems.append(f"library_name is {data.library_name!r}, not 'transformers'")
    if data.pipeline_tag != PIPELINE_TAGS[task]:
        problems.append(f"pipeline_tag is {data.pipeline_tag!r}, expected {PIPELINE_TAGS[task]!r}")
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
            raise ValueError(
                f"Could not validate the card online ({type(err).__name__}: {err}); the offline checks "
                f"passed. Run without --validate_online where the Hub is unreachable."
            ) from err
    return card


__all__ = [
    "TEMPLATE_PATH",
    "BUILTIN_CHAT_SCRIPTS",
    "KNOWN_LICENSES",
    "PIPELINE_TAGS",
    "read_chat_scripts",
    "sample_conversations",
    "copy_curves",
    "architecture_summary",
    "build_card",
    "validate_card",
]
