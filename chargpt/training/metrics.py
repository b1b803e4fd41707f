"""What evaluation reports: classification metrics from the `evaluate` module shipped in `chargpt/metrics/` (so
they work offline), and a `Trainer` that logs perplexity beside every causal-LM evaluation loss."""

from pathlib import Path



# chargpt/metrics/ sits beside the training package, so two levels up from this file.
METRICS_DIR = Path(__file__).resolve().parent.parent / "metrics"


def load_metric(name: str = "classification", **kwargs):
    """An `evaluate` metric module shipped in `chargpt/metrics/` (works offline, unlike `evaluate.load("accuracy")`)."""
    import evaluate

    folder = METRICS_DIR / name
    if not (folder / f"{name}.py").is_file():
        available = sorted(p.name for p in METRICS_DIR.iterdir() if (p / f"{p.name}.py").is_file())
        raise ValueError(f"No metric module {name!r} in {METRICS_DIR}; available: {available}.")
    return evaluate.load(str(folder), **kwargs)


def classification_metrics(num_labels: int):
    """`compute_metrics` for Trainer: accuracy and macro-averaged precision, recall and F1."""
    metric = load_metric("classification")

    def compute(eval_pred):
        logits, labels = eval_pred.predictions, eval_pred.label_ids
        if isinstance(logits, tuple):  # extra model outputs come after the logits
            logits = logits[0]
        predictions = logits.argmax(axis=-1) if logits.ndim > 1 else logits
        scores = metric.compute(predictions=predictions, references=labels, average="macro", num_labels=num_labels)
        return {
            "accuracy": scores["accuracy"],
            "macro_precision": scores["precision"],
            "macro_recall": scores["recall"],
            "macro_f1": scores["f1"],
        }

    return compute


__all__ = [
    "load_metric",
    "classification_metrics",
]
