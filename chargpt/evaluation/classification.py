"""Accuracy and macro-averaged precision, recall and F1 of class predictions: the one implementation behind the
figures of evaluation, the benchmark report and training (`classification_metrics`, the Trainer's
`compute_metrics`), their bootstrap statistics (`chargpt.evaluation.intervals`) and the paired difference of two
classifiers on the same rows."""

from collections import Counter

import numpy as np

from .intervals import Statistic, mean_statistic, paired_difference_interval, with_intervals


def _check(labels: list[int], predictions: list[int], name: str) -> None:
    if len(labels) != len(predictions) or not labels:
        raise ValueError(
            f"{name} needs two equally long, non-empty label lists; got {len(labels)} labels and "
            f"{len(predictions)} predictions."
        )


def accuracy(labels: list[int], predictions: list[int]) -> float:
    _check(labels, predictions, "accuracy")
    return sum(a == b for a, b in zip(labels, predictions)) / len(labels)


def macro_scores(labels: list[int], predictions: list[int], num_labels: int | None = None) -> dict:
    """`macro_precision`, `macro_recall` and `macro_f1`: unweighted means over classes, so a minority class counts as
    much as a majority one. The classes are those in `labels` or `predictions`, or with `num_labels` every id below
    it too (a class absent from both then scores 0). A class never predicted has precision 0, one never present
    recall 0, and F1 is 0 without true positives."""
    _check(labels, predictions, "macro_scores")
    pairs = Counter(zip(labels, predictions))
    classes = set(labels) | set(predictions) | set(range(num_labels or 0))
    precisions, recalls, f1s = [], [], []
    for cls in classes:
        tp = pairs[(cls, cls)]
        predicted = sum(n for (_, b), n in pairs.items() if b == cls)
        actual = sum(n for (a, _), n in pairs.items() if a == cls)
        precisions.append(tp / predicted if predicted else 0.0)
        recalls.append(tp / actual if actual else 0.0)
        f1s.append(2 * tp / (predicted + actual) if tp else 0.0)  # = 2PR / (P + R)
    return {
        "macro_precision": sum(precisions) / len(classes),
        "macro_recall": sum(recalls) / len(classes),
        "macro_f1": sum(f1s) / len(classes),
    }


def macro_f1(labels: list[int], predictions: list[int]) -> float:
    """Unweighted mean over classes (those in `labels` or `predictions`) of F1 (see `macro_scores`)."""
    return macro_scores(labels, predictions)["macro_f1"]


def accuracy_statistic(labels: list[int], predictions: list[int]) -> Statistic:
    """`accuracy` of each resample of the rows (see `chargpt.evaluation.intervals`)."""
    _check(labels, predictions, "accuracy_statistic")
    return mean_statistic(np.asarray(labels) == np.asarray(predictions))


def macro_f1_statistic(labels: list[int], predictions: list[int]) -> Statistic:
    """`macro_f1` of each resample of the rows: per class, F1 = 2 tp / (predicted + actual), averaged over the
    classes present in the resample's labels or predictions, as `macro_f1` would on the resampled lists."""
    _check(labels, predictions, "macro_f1_statistic")
    n = len(labels)
    classes, codes = np.unique(np.concatenate([np.asarray(labels), np.asarray(predictions)]), return_inverse=True)
    k = len(classes)
    cells = codes[:n] * k + codes[n:]  # each row's cell of the k x k confusion matrix (label, prediction)

    def statistic(indices: np.ndarray) -> np.ndarray:
        resamples = len(indices)
        offsets = cells[indices] + k * k * np.arange(resamples)[:, None]  # (resamples, n): one matrix per resample
        confusion = np.bincount(offsets.ravel(), minlength=resamples * k * k).reshape(resamples, k, k)
        tp = np.diagonal(confusion, axis1=1, axis2=2)  # (resamples, k)
        both = confusion.sum(axis=2) + confusion.sum(axis=1)  # actual + predicted, per class
        f1 = np.divide(2 * tp, both, out=np.zeros(both.shape), where=both > 0)
        return f1.sum(axis=1) / (both > 0).sum(axis=1)

    return statistic


def classification_scores(labels: list[int], predictions: list[int], intervals: bool = False) -> dict:
    """`accuracy`, `macro_f1` and the number of rows `n`; with `intervals`, each figure followed by its 95%
    bootstrap interval over the rows (`accuracy_ci95`, `macro_f1_ci95`)."""
    scores = {"accuracy": accuracy(labels, predictions), "macro_f1": macro_f1(labels, predictions), "n": len(labels)}
    if not intervals:
        return scores
    statistics = {
        "accuracy": accuracy_statistic(labels, predictions),
        "macro_f1": macro_f1_statistic(labels, predictions),
    }
    return with_intervals(scores, statistics, len(labels))


def classification_difference(labels: list[int], predictions_a: list[int], predictions_b: list[int]) -> dict:
    """System a's accuracy and macro-F1 minus system b's on the same rows, each with the 95% interval of the paired
    bootstrap (both systems scored on the same resampled rows): `accuracy`, `accuracy_ci95`, `macro_f1`,
    `macro_f1_ci95` and `n`. An interval that excludes 0 says that a is better (or worse) beyond resampling noise."""
    difference = {}
    for name, metric, statistic in (
        ("accuracy", accuracy, accuracy_statistic),
        ("macro_f1", macro_f1, macro_f1_statistic),
    ):
        difference[name] = metric(labels, predictions_a) - metric(labels, predictions_b)
        difference[name + "_ci95"] = paired_difference_interval(
            statistic(labels, predictions_a), statistic(labels, predictions_b), len(labels)
        )
    return {**difference, "n": len(labels)}


def classification_metrics(num_labels: int):
    """`compute_metrics` for Trainer: `accuracy`, `macro_precision`, `macro_recall` and `macro_f1` (logged with the
    `eval_` / `test_` prefix), every one of the `num_labels` classes counting in the averages."""

    def compute(eval_pred) -> dict:
        logits, labels = eval_pred.predictions, eval_pred.label_ids
        if isinstance(logits, tuple):  # extra model outputs come after the logits
            logits = logits[0]
        predictions = logits.argmax(axis=-1) if logits.ndim > 1 else logits  # (N, num_labels) -> (N,)
        labels, predictions = labels.reshape(-1).tolist(), predictions.reshape(-1).tolist()
        return {"accuracy": accuracy(labels, predictions), **macro_scores(labels, predictions, num_labels)}

    return compute


__all__ = [
    "accuracy",
    "macro_scores",
    "macro_f1",
    "accuracy_statistic",
    "macro_f1_statistic",
    "classification_scores",
    "classification_difference",
    "classification_metrics",
]
