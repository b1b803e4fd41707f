"""Accuracy and macro-averaged precision, recall and F1 of class predictions: the one implementation behind the
figures of evaluation, the benchmark report and training (`classification_metrics`, the Trainer's
`compute_metrics`)."""

from collections import Counter


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


def classification_scores(labels: list[int], predictions: list[int]) -> dict:
    """`accuracy`, `macro_f1` and the number of rows `n`."""
    return {"accuracy": accuracy(labels, predictions), "macro_f1": macro_f1(labels, predictions), "n": len(labels)}


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
    "classification_scores",
    "classification_metrics",
]
