"""Accuracy and macro-F1 of class predictions, without a metric-loading step: the figures evaluation and the
benchmark report. They agree with the `evaluate` module that training reports (`chargpt/metrics/classification`,
average="macro"); the tests check that."""


def _check(labels: list[int], predictions: list[int], name: str) -> None:
    if len(labels) != len(predictions) or not labels:
        raise ValueError(
            f"{name} needs two equally long, non-empty label lists; got {len(labels)} labels and "
            f"{len(predictions)} predictions."
        )


def accuracy(labels: list[int], predictions: list[int]) -> float:
    _check(labels, predictions, "accuracy")
    return sum(a == b for a, b in zip(labels, predictions)) / len(labels)


def macro_f1(labels: list[int], predictions: list[int]) -> float:
    """Unweighted mean over classes (those in `labels` or `predictions`) of F1; a class with no true positives
    scores 0."""
    _check(labels, predictions, "macro_f1")
    scores = []
    for cls in sorted(set(labels) | set(predictions)):
        tp = sum(1 for a, b in zip(labels, predictions) if a == cls and b == cls)
        fp = sum(1 for a, b in zip(labels, predictions) if a != cls and b == cls)
        fn = sum(1 for a, b in zip(labels, predictions) if a == cls and b != cls)
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def classification_scores(labels: list[int], predictions: list[int]) -> dict:
    """`accuracy`, `macro_f1` and the number of rows `n`."""
    return {"accuracy": accuracy(labels, predictions), "macro_f1": macro_f1(labels, predictions), "n": len(labels)}


__all__ = [
    "accuracy",
    "macro_f1",
    "classification_scores",
]
