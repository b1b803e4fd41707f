"""The held-out evaluation of one model directory, as `train_scripts/run_evaluation.py` runs it: a classifier is
scored on the balanced ChnSentiCorp test and the cross-domain test, a causal LM on LCCC-base held-out perplexity and
on its sampled replies to the held-out posts (with the model's own generation config). Every figure comes with its 95%
percentile-bootstrap interval (`<name>_ci95`: over the test rows, dialogues or replies; the method is recorded once,
under `intervals`), and the model's difference from the TF-IDF floor with its paired interval
(`model_minus_tfidf_logreg`). `EvaluationArguments` holds the options (each with its `--help`), `evaluate_model`
returns the report."""

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field

from transformers.utils import logging

from chargpt.data import CleaningConfig, balance_classes, first_rows, load_labelled
from chargpt.evaluation.baselines import tfidf_predictions
from chargpt.evaluation.classification import classification_difference, classification_scores
from chargpt.evaluation.intervals import bootstrap_settings
from chargpt.evaluation.replies import reply_metrics
from chargpt.evaluation.scoring import classifier_predictions, corpus_perplexity
from chargpt.loading import detect_task, load_config, load_model_and_tokenizer
from chargpt.tasks import sample_replies

from .dialogue_splits import LCCC_BASE_FILES, lccc_base_splits
from .sentiment_splits import (
    CHNSENTICORP_FILE,
    DEFAULT_HOLDOUT_CATEGORY,
    ONLINE_SHOPPING_FILE,
    chnsenticorp_splits,
    cross_domain_splits,
)


logger = logging.get_logger(__name__)

# The evaluations each kind of model gets; the first two need a classifier, the last two a causal LM.
TASKS = {"sequence-classification": ("sentiment", "cross_domain"), "causal-lm": ("perplexity", "replies")}
_SAMPLES_KEPT = 10  # post / reply / reference triples written into the report
# What the report's intervals resample, recorded beside the bootstrap's settings.
_RESAMPLED = {
    "resampled": "test rows (classification), dialogues (perplexity), replies (reply metrics)",
    "paired": "model_minus_tfidf_logreg: the model and the floor scored on the same resampled rows",
    "distinct_n": "through its jackknife linearization (chargpt.evaluation.replies.distinct_statistic)",
}


@dataclass
class EvaluationArguments:
    """Arguments of `run_evaluation.py`. The data files default to their places in `--data_dir` (the shared data)."""

    model_name_or_path: str = field(metadata={"help": "A CharGPT classifier or causal-LM directory."})
    output_file: str | None = field(
        default=None, metadata={"help": "Where the JSON report goes (default: MODEL_DIR/heldout_evaluation.json)."}
    )
    tasks: list[str] = field(
        default_factory=list,
        metadata={
            "help": "What to measure: sentiment and/or cross_domain for a classifier, perplexity and/or replies for a "
            "causal LM (default: both of the model's kind)."
        },
    )
    data_dir: str = field(default="../shared/data", metadata={"help": "Folder of the shared data (see its README)."})
    chnsenticorp_file: str | None = field(default=None, metadata={"help": f"Default: DATA_DIR/{CHNSENTICORP_FILE}."})
    online_shopping_file: str | None = field(
        default=None, metadata={"help": f"Default: DATA_DIR/{ONLINE_SHOPPING_FILE}."}
    )
    lccc_base_files: list[str] = field(
        default_factory=list, metadata={"help": f"Default: DATA_DIR/{' and DATA_DIR/'.join(LCCC_BASE_FILES)}."}
    )
    holdout_category: str = field(
        default=DEFAULT_HOLDOUT_CATEGORY,
        metadata={
            "help": "The online-shopping category of the cross-domain test (Chinese or English name), or several, "
            "comma-separated: one pooled test, also scored category by category."
        },
    )
    seed: int = field(default=42, metadata={"help": "Seed of the splits and of the sampled replies."})
    n_posts: int = field(default=500, metadata={"help": "Held-out LCCC-base posts the model replies to."})
    batch_size: int = field(default=32, metadata={"help": "Texts, dialogues or posts per forward pass."})
    max_new_tokens: int | None = field(
        default=None, metadata={"help": "Longest reply (default: the model's generation config)."}
    )
    tfidf_baseline: bool = field(
        default=False,
        metadata={"help": "Also fit the character TF-IDF + logistic-regression floor on each training split."},
    )
    tfidf_balance_train: bool = field(
        default=True,
        metadata={
            "help": "Fit the floor on the training split down-sampled to balanced classes (as train_classifier.py "
            "--balance train trains); false: on all of it."
        },
    )
    tfidf_train_files: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Labelled files (CSV/TSV/JSONL with text and label columns) to fit the floor on instead of the "
            "test's own training split: the classifier's --train_files, so that both learn from the same data. "
            "The report also counts test reviews whose text occurs in them."
        },
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Score only this many rows of each test (quick runs; not comparable)."}
    )
    device: str = field(default="cpu", metadata={"help": "cpu, cuda, or auto."})
    cache_dir: str | None = field(
        default=None, metadata={"help": "Where the read corpora are cached (default: the datasets cache)."}
    )

    def __post_init__(self):
        known = {task for tasks in TASKS.values() for task in tasks}
        unknown = [task for task in self.tasks if task not in known]
        if unknown:
            raise ValueError(f"Unknown --tasks {unknown}; choose from {sorted(known)}.")
        if self.n_posts < 1 or self.batch_size < 1:
            raise ValueError(f"--n_posts and --batch_size must be >= 1, got {self.n_posts} and {self.batch_size}.")

    def data_file(self, given, default: str) -> str:
        return given or os.path.join(self.data_dir, default)


def _sentiment(args: EvaluationArguments, model, tokenizer, task: str) -> dict:
    """One classification test (`sentiment` or `cross_domain`): the model's scores and, if asked, the floor's and the
    model's paired difference from it."""
    if task == "sentiment":
        path = args.data_file(args.chnsenticorp_file, CHNSENTICORP_FILE)
        splits, info = chnsenticorp_splits(path, args.seed, cache_dir=args.cache_dir)
    else:
        path = args.data_file(args.online_shopping_file, ONLINE_SHOPPING_FILE)
        splits, info = cross_domain_splits(path, args.holdout_category, args.seed, cache_dir=args.cache_dir)
    test = first_rows(splits["test"], args.max_eval_samples)
    predictions, truncated = classifier_predictions(model, tokenizer, test, args.batch_size)
    scores = classification_scores(test["label"], predictions, intervals=True)
    result = {"split": info, "model": {**scores, "truncated": truncated}}
    if len(info.get("holdout_categories", [])) > 1:
        result["by_category"] = _by_category(test, predictions)
    # Row by row, so that two models' reports on the same test (the same rows_sha256) can be compared paired.
    result["predictions"] = {"rows_sha256": rows_digest(test), "labels": list(test["label"]), "model": predictions}
    if args.tfidf_baseline:
        result.update(_tfidf_floor(args, splits["train"], test, predictions))
    logger.info(f"{task}: {result['model']}")
    return result


def rows_digest(test) -> str:
    """The SHA-256 of a labelled test's rows (text and label, in order): equal digests, equal tests."""
    rows = json.dumps(list(zip(test["text"], test["label"])), ensure_ascii=False)
    return hashlib.sha256(rows.encode("utf-8")).hexdigest()


def _by_category(test, predictions: list[int]) -> dict:
    """The model's scores on each held-out category of a pooled cross-domain test, with their intervals."""
    rows = {}
    for i, group in enumerate(test["group"]):
        rows.setdefault(group, []).append(i)
    labels = test["label"]
    return {
        group: classification_scores([labels[i] for i in idx], [predictions[i] for i in idx], intervals=True)
        for group, idx in rows.items()
    }


def _tfidf_floor(args: EvaluationArguments, train, test, model_predictions: list[int]) -> dict:
    """The TF-IDF floor's scores on `test` (fit on the test's training split or on --tfidf_train_files) and the
    model's difference from it on the same rows."""
    result = {}
    if args.tfidf_train_files:
        train, _ = load_labelled(
            list(args.tfidf_train_files),
            label_names=test.features["label"].names,
            cleaning=CleaningConfig(min_turns=1),
            cache_dir=args.cache_dir,
        )
        seen = set(train["text"])
        result["test_rows_in_tfidf_train_files"] = sum(text in seen for text in test["text"])
    # On an unbalanced training split (ChnSentiCorp's, 3 positive to 1 negative) an unbalanced fit leans to the
    # majority class, which costs accuracy on the balanced test: the balanced fit is the stronger floor (on the
    # recipe's nearly balanced hotel + shopping files the two score within 0.2 points on validation).
    train = balance_classes(train, seed=args.seed) if args.tfidf_balance_train else train
    floor = tfidf_predictions(list(zip(train["text"], train["label"])), test["text"])
    result["tfidf_logreg"] = {
        **classification_scores(test["label"], floor, intervals=True),
        "train_rows": len(train),
        "train_files": list(args.tfidf_train_files) or "the split's training part",
        "balanced_train": args.tfidf_balance_train,
    }
    result["model_minus_tfidf_logreg"] = classification_difference(test["label"], model_predictions, floor)
    return result


def _dialogue(args: EvaluationArguments, model, tokenizer, tasks: list[str]) -> dict:
    """Perplexity on the held-out dialogues and the reply metrics on the held-out posts, as asked."""
    files = args.lccc_base_files or [os.path.join(args.data_dir, f) for f in LCCC_BASE_FILES]
    splits, info = lccc_base_splits(files, args.seed, n_posts=args.n_posts, cache_dir=args.cache_dir)
    results = {}
    if "perplexity" in tasks:
        test = first_rows(splits["test"], args.max_eval_samples)
        scores = corpus_perplexity(model, tokenizer, test, args.batch_size, intervals=True)
        results["perplexity"] = {"split": info, "model": scores}
    if "replies" in tasks:
        posts = first_rows(splits["posts"], args.max_eval_samples)
        kwargs = {"max_new_tokens": args.max_new_tokens} if args.max_new_tokens else {}
        replies = sample_replies(model, tokenizer, posts["post"], args.batch_size, args.seed, **kwargs)
        results["replies"] = {
            "split": info,
            "model": reply_metrics(replies, intervals=True),
            "references": reply_metrics(posts["reply"], intervals=True),
            "generation_config": _generation_settings(model, kwargs),
            "samples": [
                {"post": p, "reply": r, "reference": ref}
                for p, r, ref in list(zip(posts["post"], replies, posts["reply"]))[:_SAMPLES_KEPT]
            ],
        }
    return results


def _generation_settings(model, overrides: dict) -> dict:
    """The sampling settings the replies were drawn with, for the report."""
    config = getattr(model, "generation_config", None)
    settings = config.to_diff_dict() if config is not None else {}
    return {**settings, **overrides}


def evaluate_model(args: EvaluationArguments) -> dict:
    """Load the model directory, run the evaluations of its kind (`args.tasks`, default all of them) and return
    the report: the arguments, the model's kind, how the intervals were computed and one entry per task with its
    split's description."""
    kind = detect_task(load_config(args.model_name_or_path))
    tasks = list(args.tasks) or list(TASKS[kind])
    wrong = [task for task in tasks if task not in TASKS[kind]]
    if wrong:
        raise ValueError(
            f"{args.model_name_or_path} holds a {kind} model, which cannot be measured on {wrong}; its tasks are "
            f"{list(TASKS[kind])}."
        )
    model, tokenizer = load_model_and_tokenizer(args.model_name_or_path, task=kind, device=args.device)
    report = {"arguments": asdict(args), "model_kind": kind, "intervals": {**bootstrap_settings(), **_RESAMPLED}}
    for task in tasks:
        if kind == "sequence-classification":
            report[task] = _sentiment(args, model, tokenizer, task)
    if kind == "causal-lm":
        report.update(_dialogue(args, model, tokenizer, tasks))
    return report


__all__ = [
    "TASKS",
    "EvaluationArguments",
    "evaluate_model",
    "rows_digest",
]
