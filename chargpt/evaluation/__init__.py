"""Measuring CharGPT models, for any data: classification scores (accuracy, macro-F1), reply metrics (Distinct-n,
the share of repetitive replies), the character TF-IDF + logistic-regression floor, a model's scores on a dataset
(classifier scores, corpus perplexity; replies are sampled by `chargpt.tasks.sample_replies`), the search for a chat
model's sampling defaults, and the writing of splits as the files the training scripts read. Every held-out figure
can carry a 95% percentile-bootstrap interval (`intervals`; `intervals=True` on the scoring functions), and two
systems scored on the same rows get a paired interval of their difference (`classification_difference`).

The modules: `intervals`, `classification`, `replies`, `baselines`, `scoring`, `generation_search` and
`split_files`. The fixed held-out splits of the team's shared data, and the evaluation of a model directory on them,
are experiments rather than library: they live in the repository's `recipes/` (`sentiment_splits`,
`dialogue_splits`, `heldout`), run by `train_scripts/make_eval_splits.py` and `run_evaluation.py`.
"""

from .baselines import fit_tfidf_baseline, tfidf_baseline, tfidf_predictions
from .classification import (
    accuracy,
    accuracy_statistic,
    classification_difference,
    classification_metrics,
    classification_scores,
    macro_f1,
    macro_f1_statistic,
    macro_scores,
)
from .intervals import (
    bootstrap_interval,
    bootstrap_settings,
    mean_statistic,
    paired_difference_interval,
    percentile_interval,
    ratio_statistic,
    resample_indices,
    with_intervals,
)
from .replies import distinct_n, distinct_statistic, ngrams, repeats_ngram, repetition_share, reply_metrics
from .scoring import (
    classifier_predictions,
    classifier_scores,
    corpus_perplexity,
    dialogue_losses,
    loss_statistic,
    perplexity_statistic,
)
from .split_files import write_split_files


__all__ = [
    "accuracy",
    "macro_f1",
    "macro_scores",
    "classification_scores",
    "classification_metrics",
    "accuracy_statistic",
    "macro_f1_statistic",
    "classification_difference",
    "bootstrap_settings",
    "resample_indices",
    "percentile_interval",
    "bootstrap_interval",
    "paired_difference_interval",
    "with_intervals",
    "mean_statistic",
    "ratio_statistic",
    "ngrams",
    "distinct_n",
    "repeats_ngram",
    "repetition_share",
    "distinct_statistic",
    "reply_metrics",
    "fit_tfidf_baseline",
    "tfidf_predictions",
    "tfidf_baseline",
    "classifier_predictions",
    "classifier_scores",
    "dialogue_losses",
    "loss_statistic",
    "perplexity_statistic",
    "corpus_perplexity",
    "write_split_files",
]
