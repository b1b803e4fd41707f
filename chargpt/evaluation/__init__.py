"""Fixed-seed evaluation of CharGPT models: the held-out splits, the metrics and the baseline every recipe model is
measured with, and the code that runs a model over them (`train_scripts/run_evaluation.py` is the command line).

The splits (each function returns a `DatasetDict` and a description of the protocol for reports; all are
deterministic for a given file, seed and sizes, and disjoint):

- `chnsenticorp_splits`: ChnSentiCorp hotel reviews; a balanced test of 250 positive + 250 negative reviews, a
  balanced validation split, the rest trains;
- `cross_domain_splits`: the online-shopping reviews; one category (`holdout_category`, by its Chinese or English
  name) is the test, the other eight train (less a validation split);
- `lccc_base_splits`: LCCC-base dialogues, grouped by first turn; 500 held-out posts with their reference replies
  (reply metrics), held-out dialogues (perplexity), validation, train.

The modules: `sentiment` and `dialogue` (the splits), `classification` (accuracy, macro-F1), `replies` (Distinct-n,
the share of repetitive replies), `baselines` (character TF-IDF + logistic regression), `scoring` (a model's scores,
perplexity and sampled replies), `split_files` (the splits as files for the training scripts) and `heldout` (the
evaluation of a model directory that `train_scripts/run_evaluation.py` runs).
"""

from .baselines import fit_tfidf_baseline, tfidf_baseline
from .classification import accuracy, classification_scores, macro_f1
from .dialogue import LCCC_BASE_FILES, lccc_base_splits
from .heldout import EvaluationArguments, evaluate_model
from .replies import distinct_n, ngrams, repeats_ngram, repetition_share, reply_metrics
from .scoring import classifier_scores, corpus_perplexity, sample_replies
from .sentiment import (
    CHNSENTICORP_FILE,
    DEFAULT_HOLDOUT_CATEGORY,
    ONLINE_SHOPPING_CATEGORIES,
    ONLINE_SHOPPING_FILE,
    SENTIMENT_LABELS,
    chnsenticorp_splits,
    cross_domain_splits,
    resolve_category,
)
from .split_files import write_split_files


__all__ = [
    "CHNSENTICORP_FILE",
    "ONLINE_SHOPPING_FILE",
    "ONLINE_SHOPPING_CATEGORIES",
    "DEFAULT_HOLDOUT_CATEGORY",
    "SENTIMENT_LABELS",
    "LCCC_BASE_FILES",
    "chnsenticorp_splits",
    "cross_domain_splits",
    "resolve_category",
    "lccc_base_splits",
    "accuracy",
    "macro_f1",
    "classification_scores",
    "ngrams",
    "distinct_n",
    "repeats_ngram",
    "repetition_share",
    "reply_metrics",
    "fit_tfidf_baseline",
    "tfidf_baseline",
    "classifier_scores",
    "corpus_perplexity",
    "sample_replies",
    "write_split_files",
    "EvaluationArguments",
    "evaluate_model",
]
