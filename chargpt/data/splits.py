"""Seeded train / validation / test splits (stratified by label when asked, or a fixed number of rows per class held
out), class balancing by down-sampling, capping a split without losing a class, and the rows per class that logs and
model cards report."""

import itertools
from collections import Counter

import numpy as np
from datasets import Dataset, DatasetDict
from transformers.utils import logging


logger = logging.get_logger(__name__)


def _split_size(size: float | int, n: int, name: str) -> int:
    count = int(round(size * n)) if isinstance(size, float) and size < 1 else int(size)
    if count < 0 or count >= n:
        raise ValueError(
            f"{name}={size} leaves no training rows out of {n}; give a fraction in [0, 1) or a smaller count."
        )
    return count


def split_dataset(
    dataset: Dataset,
    validation_size: float | int = 0.1,
    test_size: float | int = 0.1,
    seed: int = 42,
    stratify_by_column: str | None = None,
) -> DatasetDict:
    """Shuffle with `seed` and split into `train`, `validation`, `test` (sizes as fractions of the whole or as
    counts; a size of 0 leaves that split out). Stratified by `stratify_by_column` when given (a `ClassLabel`)."""
    n = len(dataset)
    n_test = _split_size(test_size, n, "test_size")
    n_val = _split_size(validation_size, n, "validation_size")
    if n - n_test - n_val <= 0:
        raise ValueError(f"Splitting {n} rows into validation={n_val} and test={n_test} leaves no training rows.")
    splits, rest = {}, dataset

    def cut(data, count):
        try:
            return data.train_test_split(test_size=count, seed=seed, stratify_by_column=stratify_by_column)
        except ValueError as e:  # e.g. a class with a single row cannot be stratified
            if stratify_by_column is None:
                raise
            logger.warning(f"Stratified split impossible ({e}); splitting without stratification.")
            return data.train_test_split(test_size=count, seed=seed)

    if n_test:
        parts = cut(rest, n_test)
        rest, splits["test"] = parts["train"], parts["test"]
    if n_val:
        parts = cut(rest, n_val)
        rest, splits["validation"] = parts["train"], parts["test"]
    if not n_test and not n_val:
        rest = rest.shuffle(seed=seed)
    return DatasetDict({"train": rest, **{k: splits[k] for k in ("validation", "test") if k in splits}})


def balance_classes(dataset: Dataset, label_column: str = "label", seed: int = 42) -> Dataset:
    """Down-sample every class to the size of the smallest one (chosen with `seed`); rows keep their order."""
    labels = np.asarray(dataset[label_column])
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        return dataset
    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.choice(np.flatnonzero(labels == c), size=counts.min(), replace=False) for c in classes])
    logger.info(f"Balanced classes: {dict(zip(classes.tolist(), counts.tolist()))} -> {counts.min()} each.")
    return dataset.select(np.sort(keep))


def holdout_per_class(
    dataset: Dataset, per_class: dict[str, int], seed: int = 42, label_column: str = "label"
) -> DatasetDict:
    """Hold out a fixed number of rows of every class for each split named in `per_class` (in its order, e.g.
    `{"test": 250, "validation": 250}`), the rest is `train`: a balanced held-out set from an unbalanced corpus.
    Each class's rows are permuted once with `seed` and cut in that order; rows keep their corpus order in every
    split, and no row is in two splits."""
    labels = np.asarray(dataset[label_column])
    rng = np.random.default_rng(seed)
    needed = sum(per_class.values())
    chosen = {name: [] for name in per_class}
    for cls in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == cls))
        if len(rows) <= needed:
            raise ValueError(
                f"Class {cls} has {len(rows)} rows, but {needed} are held out of each class ({per_class}) and some "
                f"must be left to train on; hold out fewer per class."
            )
        start = 0
        for name, count in per_class.items():
            chosen[name].append(rows[start : start + count])
            start += count
    held = {name: np.sort(np.concatenate(parts)) for name, parts in chosen.items()}
    train = np.setdiff1d(np.arange(len(dataset)), np.concatenate(list(held.values())))
    return DatasetDict({"train": dataset.select(train), **{name: dataset.select(rows) for name, rows in held.items()}})


def first_rows(dataset: Dataset, n: int | None, label_column: str = "label") -> Dataset:
    """The first `n` rows, or all of them when `n` is None. Of a labelled dataset, the first rows of each class in
    turn, so that a capped split of a file listing one class after the other still holds every class; the rows keep
    their order."""
    if n is None or n >= len(dataset):
        return dataset
    if label_column not in dataset.column_names:
        return dataset.select(range(n))
    by_class = {}
    for index, label in enumerate(dataset[label_column]):
        by_class.setdefault(label, []).append(index)
    interleaved = [i for group in itertools.zip_longest(*by_class.values()) for i in group if i is not None]
    return dataset.select(sorted(interleaved[:n]))


def label_counts(dataset: Dataset, label_column: str = "label") -> dict[str, int]:
    """Rows per class name, for logs and model cards."""
    names = dataset.features[label_column].names
    counts = Counter(dataset[label_column])
    return {names[i]: counts.get(i, 0) for i in range(len(names))}


__all__ = [
    "split_dataset",
    "holdout_per_class",
    "balance_classes",
    "label_counts",
    "first_rows",
]
