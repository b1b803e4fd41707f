"""Measuring CharGPT models, for any data: classification scores (accuracy, macro-F1), reply metrics (Distinct-n,
the share of repetitive replies), the character TF-IDF + logistic-regression floor, a model's scores on a dataset
(classifier scores, corpus perplexity; replies are sampled by `chargpt.tasks.sample_replies`), the search for a chat
model's sampling defaults, and the writing of splits as the files the training scripts read.

The modules: `classification`, `replies`, `baselines`, `scoring`, `generation_search` and `split_files`. The fixed
held-out splits of the team's shared data, and the evaluation of a model directory on them, are experiments rather
than library: they live in the repository's `recipes/` (`sentiment_splits`, `dialogue_splits`, `heldout`), run by
`train_scripts/make_eval_splits.py` and `run_evaluation.py`.
"""

from .baselines import fit_tfidf_baseline, tfidf_baseline
from .classification import accuracy, classification_metrics, classification_scores, macro_f1, macro_scores
from .replies import distinct_n, ngrams, repeats_ngram, repetition_share, reply_metrics
from .scoring import classifier_scores, corpus_perplexity
from .split_files import write_split_files


__all__ = [
    "accuracy",
    "macro_f1",
    "macro_scores",
    "classification_scores",
    "classification_metrics",
    "ngrams",
    "distinct_n",
    "repeats_ngram",
    "repetition_share",
    "reply_metrics",
    "fit_tfidf_baseline",
    "tfidf_baseline",
    "classifier_scores",
    "corpus_perplexity",
    "write_split_files",
]
