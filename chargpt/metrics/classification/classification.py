"""Accuracy, precision, recall and F1 for single-label classification, as one `evaluate` metric module.

Shipped inside chargpt so that it loads offline: `evaluate.load("accuracy")` fetches its script from the Hugging
Face Hub, while `evaluate.load(path_to_this_folder)` needs nothing but this file. `chargpt.training.load_metric`
finds the path for you.
"""

import datasets
import evaluate
import numpy as np


_DESCRIPTION = """
Accuracy is the share of predictions equal to their reference. For each class, precision is the share of rows
predicted as that class that belong to it, recall the share of the class's rows predicted as it, and F1 their
harmonic mean. `average="macro"` (the default) averages the per-class scores with equal weight, so a minority class
counts as much as a majority class; `"weighted"` weights classes by their number of references; `"micro"` pools all
rows (micro precision = micro recall = micro F1 = accuracy for single-label data); `"binary"` reports the class
`pos_label` alone. A class that is never predicted has precision 0 (and never present, recall 0) rather than an error.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted class ids.
    references (`list` of `int`): true class ids.
    average (`str`, defaults to `"macro"`): `"macro"`, `"weighted"`, `"micro"` or `"binary"`.
    pos_label (`int`, defaults to 1): the class reported with `average="binary"`.
    num_labels (`int`, *optional*): number of classes, so that classes absent from this batch count in the macro
        average (with zero scores); defaults to the classes seen in predictions and references.
Returns:
    `accuracy`, `precision`, `recall`, `f1` (floats in [0, 1]).
Example:
    >>> metric = evaluate.load("path/to/chargpt/metrics/classification")
    >>> metric.compute(predictions=[0, 1, 1], references=[0, 1, 0])
    {'accuracy': 0.666..., 'precision': 0.75, 'recall': 0.75, 'f1': 0.666...}
"""

_AVERAGES = ("macro", "weighted", "micro", "binary")


def _safe_divide(numerator, denominator):
    return np.divide(numerator, denominator, out=np.zeros_like(numerator, dtype=np.float64), where=denominator > 0)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Classification(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, average="macro", pos_label=1, num_labels=None):
        if average not in _AVERAGES:
            raise ValueError(f"average must be one of {_AVERAGES}, got {average!r}.")
        predictions, references = np.asarray(predictions, dtype=np.int64), np.asarray(references, dtype=np.int64)
        if predictions.size == 0:
            raise ValueError("No predictions to score.")
        if min(predictions.min(), references.min()) < 0:
            raise ValueError("Class ids must be non-negative.")
        n = int(max(predictions.max(), references.max()) + 1)
        n = max(n, num_labels or 0)
        confusion = np.zeros((n, n), dtype=np.int64)  # rows: reference class, columns: predicted class
        np.add.at(confusion, (references, predictions), 1)
        true_pos = np.diag(confusion).astype(np.float64)
        predicted, actual = confusion.sum(axis=0), confusion.sum(axis=1)
        accuracy = float(true_pos.sum() / predictions.size)
        if average == "micro":
            return {"accuracy": accuracy, "precision": accuracy, "recall": accuracy, "f1": accuracy}
        precision = _safe_divide(true_pos, predicted)
        recall = _safe_divide(true_pos, actual)
        f1 = _safe_divide(2 * precision * recall, precision + recall)
        if average == "binary":
            if not 0 <= pos_label < n:
                raise ValueError(f"pos_label {pos_label} is not a class id in [0, {n}).")
            pick = lambda scores: float(scores[pos_label])  # noqa: E731
        elif average == "weighted":
            pick = lambda scores: float((scores * actual).sum() / actual.sum())  # noqa: E731
        else:
            classes = n if num_labels else np.count_nonzero(predicted + actual)
            pick = lambda scores: float(scores.sum() / classes)  # noqa: E731
        return {"accuracy": accuracy, "precision": pick(precision), "recall": pick(recall), "f1": pick(f1)}
