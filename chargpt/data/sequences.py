"""From cleaned corpora to what the tokenizer and the model see: every cleaned text (for building a vocabulary),
dialogues as chat-template token ids (latest turns that fit), causal-LM packing into fixed blocks, and labelled
texts as `input_ids` with `labels`."""

from collections.abc import Iterable, Iterator

from datasets import Dataset
from transformers.utils import logging

from .dialogue import iter_dialogues
from .labelled import iter_labelled


logger = logging.get_logger(__name__)


def _chat_messages(turns: list[str]) -> list[dict]:
    """Alternating user/assistant messages ending with the assistant, the reply the model learns to write."""
    n = len(turns)
    return [{"role": "assistant" if (n - 1 - i) % 2 == 0 else "user", "content": t} for i, t in enumerate(turns)]


def dialogue_to_input_ids(
    turns: list[str],
    tokenizer,
    max_length: int,
    max_turns: int | None = None,
    max_history_chars: int | None = None,
    min_turns: int = 2,
) -> list[int] | None:
    """Token ids of a dialogue through the tokenizer's chat template (the format used at inference), keeping the
    latest turns that fit: at most `max_turns` turns, at most `max_history_chars` characters before the last turn,
    at most `max_length` tokens. The oldest turns go first; a turn is never cut. None when even the last `min_turns`
    turns do not fit."""
    start = max(0, len(turns) - max_turns) if max_turns else 0
    if max_history_chars is not None:
        while start < len(turns) - 1 and sum(len(t) for t in turns[start:-1]) > max_history_chars:
            start += 1
    while len(turns) - start >= min(min_turns, len(turns)):
        ids = tokenizer.apply_chat_template(_chat_messages(turns[start:]), tokenize=True, return_dict=False)
        if len(ids) <= max_length:
            return list(ids)
        start += 1
    return None


def build_lm_dataset(
    dialogues: Dataset,
    tokenizer,
    max_length: int,
    max_turns: int | None = None,
    max_history_chars: int | None = None,
    num_proc: int | None = None,
) -> tuple[Dataset, int]:
    """Dialogues -> `input_ids` through the chat template (see `dialogue_to_input_ids`); also returns how many
    dialogues did not fit `max_length` and were dropped. Labels are made by the collator (= input_ids)."""

    def encode(batch):
        out = [dialogue_to_input_ids(t, tokenizer, max_length, max_turns, max_history_chars) for t in batch["turns"]]
        return {"input_ids": [ids for ids in out if ids is not None]}

    encoded = dialogues.map(
        encode, batched=True, remove_columns=dialogues.column_names, num_proc=num_proc, desc="chat template"
    )
    dropped = len(dialogues) - len(encoded)
    if dropped:
        logger.warning(
            f"{dropped} of {len(dialogues)} dialogues do not fit {max_length} tokens even with only their last turns; "
            "dropped."
        )
    return encoded, dropped


def pack_sequences(dataset: Dataset, block_size: int, num_proc: int | None = None) -> Dataset:
    """Causal-LM packing: concatenate the `input_ids` of consecutive samples and cut them into blocks of exactly
    `block_size` tokens (the tail of each 1000-sample group that does not fill a block is dropped). Each sample keeps
    its `<bos>`/`<eos>`, so the model sees where one dialogue ends and the next begins."""
    if block_size < 2:
        raise ValueError(f"block_size must be >= 2, got {block_size}.")

    def group(batch):
        flat = [t for ids in batch["input_ids"] for t in ids]
        usable = len(flat) // block_size * block_size
        return {"input_ids": [flat[i : i + block_size] for i in range(0, usable, block_size)]}

    return dataset.map(
        group, batched=True, batch_size=1000, remove_columns=dataset.column_names, num_proc=num_proc, desc="packing"
    )


def tokenize_labelled(dataset: Dataset, tokenizer, max_length: int, num_proc: int | None = None) -> Dataset:
    """`text`, `label` -> `input_ids`, `attention_mask`, `labels` (texts longer than `max_length` keep their start)."""

    def encode(batch):
        enc = tokenizer(batch["text"], truncation=True, max_length=max_length)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": batch["label"]}

    return dataset.map(encode, batched=True, remove_columns=dataset.column_names, num_proc=num_proc, desc="tokenizing")


def iterate_texts(sources: Iterable, kind: str, **options) -> Iterator[str]:
    """Every cleaned text of dialogue (`kind="dialogues"`: each turn) or labelled (`"labelled"`) sources, for
    building a vocabulary. `options` go to `iter_dialogues` / `iter_labelled`."""
    if kind == "dialogues":
        for row in iter_dialogues(sources, **options):
            yield from row["turns"]
    elif kind == "labelled":
        for row in iter_labelled(sources, **options):
            yield row["text"]
    else:
        raise ValueError(f"kind must be 'dialogues' or 'labelled', got {kind!r}.")


__all__ = [
    "dialogue_to_input_ids",
    "build_lm_dataset",
    "pack_sequences",
    "tokenize_labelled",
    "iterate_texts",
]
