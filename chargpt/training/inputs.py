"""From corpora to the datasets the pipelines train on: dialogues read, split and turned into token sequences for the
causal LM, labelled texts read, split, balanced and counted for the classifier."""

from transformers.utils import logging as hf_logging

from ..data import (
    balance_classes,
    build_lm_dataset,
    label_counts,
    load_dialogues,
    load_labelled,
    pack_sequences,
    split_dataset,
)
from .arguments import DialogueDataArguments, LabelledDataArguments


logger = hf_logging.get_logger(__name__)


def _limit(dataset, n):
    return dataset.select(range(min(n, len(dataset)))) if n is not None else dataset


def _read_splits(load, train_files, validation_files, test_files, val_size, test_size, seed, stratify=None):
    """Train/validation/test datasets and their read summaries: given files, or seeded splits of the training data."""
    train, summary = load(train_files)
    summaries = {"train": summary.as_dict()}
    splits = split_dataset(
        train,
        0 if validation_files else val_size,
        0 if test_files else test_size,
        seed=seed,
        stratify_by_column=stratify,
    )
    for name, files in (("validation", validation_files), ("test", test_files)):
        if files:
            splits[name], summary = load(files)
            summaries[name] = summary.as_dict()
    return splits, summaries


def _lm_datasets(data_args: DialogueDataArguments, cleaning, tokenizer, max_length, seed):
    def load(files):
        return load_dialogues(
            files,
            format=data_args.data_format,
            cleaning=cleaning,
            on_error=data_args.on_error,
            json_split=data_args.json_split,
        )

    splits, summaries = _read_splits(
        load,
        data_args.train_files,
        data_args.validation_files,
        data_args.test_files,
        data_args.validation_split_size,
        data_args.test_split_size,
        seed,
    )
    splits["train"] = _limit(splits["train"], data_args.max_train_samples)
    features = {}
    for name, dialogues in splits.items():
        if name != "train":
            dialogues = _limit(dialogues, data_args.max_eval_samples)
        encoded, too_long = build_lm_dataset(
            dialogues,
            tokenizer,
            max_length,
            data_args.max_turns,
            data_args.max_history_chars,
            data_args.preprocessing_num_workers,
        )
        summaries.setdefault(name, {})["dialogues"] = len(dialogues)
        summaries[name]["too_long_for_context"] = too_long
        if data_args.packing:
            encoded = pack_sequences(encoded, data_args.block_size or max_length, data_args.preprocessing_num_workers)
        summaries[name]["sequences"] = len(encoded)
        if len(encoded) == 0 and name != "train":
            logger.warning(f"The {name} split holds no sequences (too few tokens for a packed block?); it is left out.")
            continue
        features[name] = encoded
    if len(features["train"]) == 0:
        raise ValueError(
            f"No training sequences: {summaries['train']}. Check the files and the cleaning/length options."
        )
    return features, summaries


def _classifier_datasets(data_args: LabelledDataArguments, cleaning, seed):
    names = data_args.class_names or None

    def load(files):
        return load_labelled(
            files,
            format=data_args.data_format,
            text_column=data_args.text_column,
            label_column=data_args.label_column,
            label_names=names,
            cleaning=cleaning,
            on_error=data_args.on_error,
        )

    if data_args.balance not in ("none", "train", "all"):
        raise ValueError(f"balance must be 'none', 'train' or 'all', got {data_args.balance!r}.")
    train, summary = load(data_args.train_files)
    summaries = {"train": summary.as_dict()}
    if data_args.balance == "all":
        train = balance_classes(train, seed=seed)
    splits = split_dataset(
        train,
        0 if data_args.validation_files else data_args.validation_split_size,
        0 if data_args.test_files else data_args.test_split_size,
        seed=seed,
        stratify_by_column="label",
    )
    for name, files in (("validation", data_args.validation_files), ("test", data_args.test_files)):
        if files:
            splits[name], summary = load(files)
            summaries[name] = summary.as_dict()
            if splits[name].features["label"].names != splits["train"].features["label"].names:
                raise ValueError(
                    f"The {name} files have the labels {splits[name].features['label'].names} but the training files "
                    f"{splits['train'].features['label'].names}; pass --class_names to fix one order for all."
                )
    if data_args.balance == "train":
        splits["train"] = balance_classes(splits["train"], seed=seed)
    splits["train"] = _limit(splits["train"], data_args.max_train_samples)
    for name in ("validation", "test"):
        if name in splits:
            splits[name] = _limit(splits[name], data_args.max_eval_samples)
    for name, split in splits.items():
        summaries.setdefault(name, {})["rows"] = len(split)
        summaries[name]["label_counts"] = label_counts(split)
    return splits, summaries
