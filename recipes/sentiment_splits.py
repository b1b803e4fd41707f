"""The fixed sentiment evaluation splits.

- ChnSentiCorp (`chnsenticorp_splits`): a balanced test of 250 positive + 250 negative hotel reviews and a balanced
  validation split of 250 + 250, both drawn with `seed` from each class (`chargpt.data.holdout_per_class`); every
  other review trains, in its natural class mix (about 3 positive to 1 negative; `--balance train` of
  train_classifier.py evens it out). The test is balanced so that accuracy reads the same as macro-F1 and a
  majority-class guess scores 50%.
- Cross-domain (`cross_domain_splits`): the nine-category online-shopping reviews; the held-out category (or
  several, comma-separated, pooled into one test), all of it, is the test, and the other categories train, less a
  validation split stratified by label (drawn with `seed`). A model chosen on this validation split has never seen
  the test's categories.

Both read their file with the library's labelled reader and default cleaning (`CleaningConfig(min_turns=1)`), which
drops empty and repeated reviews first, so no review text is in two splits; the splits depend only on the file, the
seed and the sizes.
"""

from datasets import DatasetDict

from chargpt.data import CleaningConfig, holdout_per_class, label_counts, load_labelled, split_dataset


# Paths inside the shared data folder (../shared/data from the project root); any copy of the files will do.
CHNSENTICORP_FILE = "chnsenticorp/ChnSentiCorp_htl_train.csv"
ONLINE_SHOPPING_FILE = "online_shopping/online_shopping_9_cats.csv"
SENTIMENT_LABELS = ["negative", "positive"]  # ids 0 and 1, as the files' `label` column writes them
# The online-shopping categories as the file names them, by their English names (the data README's).
ONLINE_SHOPPING_CATEGORIES = {
    "books": "书籍",
    "tablets": "平板",
    "phones": "手机",
    "fruit": "水果",
    "shampoo": "洗发水",
    "water_heaters": "热水器",
    "milk": "蒙牛",
    "clothes": "衣服",
    "computers": "计算机",
}
DEFAULT_HOLDOUT_CATEGORY = "books"  # the category furthest from the others: reviews of content, not of a product


def _read_reviews(path, cache_dir, group_column=None):
    return load_labelled(
        [str(path)],
        label_names=SENTIMENT_LABELS,
        cleaning=CleaningConfig(min_turns=1),
        group_column=group_column,
        cache_dir=cache_dir,
    )


def _describe(splits: DatasetDict, summary, protocol: str, seed: int) -> dict:
    return {
        "protocol": protocol,
        "seed": seed,
        "rows": {name: len(split) for name, split in splits.items()},
        "label_counts": {name: label_counts(split) for name, split in splits.items()},
        "read": summary.as_dict(),
    }


def chnsenticorp_splits(
    path, seed: int = 42, test_per_class: int = 250, validation_per_class: int = 250, cache_dir: str | None = None
) -> tuple[DatasetDict, dict]:
    """`train`, `validation` and `test` (columns `text`, `label`: 0 negative, 1 positive) of a ChnSentiCorp CSV,
    and a description of the split for reports (protocol, sizes, label counts, the read's summary)."""
    dataset, summary = _read_reviews(path, cache_dir)
    splits = holdout_per_class(dataset, {"test": test_per_class, "validation": validation_per_class}, seed)
    splits = DatasetDict({name: splits[name] for name in ("train", "validation", "test")})
    protocol = (
        f"{test_per_class} reviews of each class = test, the next {validation_per_class} of each class = validation "
        f"(each class permuted with numpy.random.default_rng({seed})), the rest = train"
    )
    return splits, _describe(splits, summary, protocol, seed)


def resolve_category(name: str, categories: list[str]) -> str:
    """The category of the file that `name` stands for: the file's own (Chinese) name, or its English name from
    `ONLINE_SHOPPING_CATEGORIES` (case and `_`/space alike)."""
    if name in categories:
        return name
    key = name.strip().lower().replace(" ", "_").replace("-", "_")
    category = ONLINE_SHOPPING_CATEGORIES.get(key)
    if category in categories:
        return category
    english = {v: k for k, v in ONLINE_SHOPPING_CATEGORIES.items()}
    known = ", ".join(f"{c} ({english[c]})" if c in english else c for c in sorted(categories))
    raise ValueError(f"No category {name!r} in the file; choose --holdout_category from: {known}.")


def resolve_categories(names: str, categories: list[str]) -> list[str]:
    """The categories of the file that a comma-separated `names` stands for (`resolve_category` each), in order."""
    resolved = [resolve_category(name.strip(), categories) for name in names.split(",") if name.strip()]
    if not resolved:
        raise ValueError(f"--holdout_category names no category (got {names!r}); give one or more, comma-separated.")
    if len(set(resolved)) < len(resolved):
        raise ValueError(f"--holdout_category names a category twice: {names!r}.")
    return resolved


def holdout_file_stem(categories: list[str]) -> str:
    """The name the cross-domain split files share: online_shopping_holdout_<English names joined by +>."""
    english = {v: k for k, v in ONLINE_SHOPPING_CATEGORIES.items()}
    return "online_shopping_holdout_" + "+".join(english.get(c, c) for c in categories)


def cross_domain_splits(
    path,
    holdout_category: str = DEFAULT_HOLDOUT_CATEGORY,
    seed: int = 42,
    validation_size: float | int = 2000,
    category_column: str = "cat",
    cache_dir: str | None = None,
) -> tuple[DatasetDict, dict]:
    """`train`, `validation` (the other categories) and `test` (all of `holdout_category`: one category, or several
    comma-separated) of the online-shopping CSV, with columns `text`, `label` and `group` (the category), and a
    description of the split (`holdout_category`: the held-out categories as the file names them, comma-separated;
    `holdout_categories`: the same as a list)."""
    dataset, summary = _read_reviews(path, cache_dir, group_column=category_column)
    groups = dataset["group"]
    categories = resolve_categories(holdout_category, sorted(set(groups)))
    held = [i for i, group in enumerate(groups) if group in categories]
    rest = [i for i, group in enumerate(groups) if group not in categories]
    if not rest:
        raise ValueError(f"{path} holds only the categories {categories}; nothing is left to train on.")
    parts = split_dataset(dataset.select(rest), validation_size, 0, seed=seed, stratify_by_column="label")
    splits = DatasetDict({"train": parts["train"], "validation": parts["validation"], "test": dataset.select(held)})
    protocol = (
        f"{'categories' if len(categories) > 1 else 'category'} {', '.join(categories)} = test (all of it); the "
        f"other categories = train, less {validation_size} reviews stratified by label = validation (datasets' "
        f"train_test_split, seed {seed})"
    )
    info = _describe(splits, summary, protocol, seed)
    info["holdout_category"] = ",".join(categories)
    info["holdout_categories"] = categories
    return splits, info


__all__ = [
    "CHNSENTICORP_FILE",
    "holdout_file_stem",
    "resolve_categories",
    "ONLINE_SHOPPING_FILE",
    "ONLINE_SHOPPING_CATEGORIES",
    "DEFAULT_HOLDOUT_CATEGORY",
    "SENTIMENT_LABELS",
    "chnsenticorp_splits",
    "cross_domain_splits",
    "resolve_category",
]
